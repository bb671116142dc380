"""A user's plug-ins for benchmarks/plugin_overhead.py: the seed's CNN and Fashion-MNIST, written as a user would.

``seed_cnn`` is the built-in ``SeedCNN`` on 1×28×28 images, layer for layer
(5×5 convolutions, each pooled then ReLU'd, three linear layers), as a plain
``nn.Sequential``; ``fashion_mnist`` loads the arrays through torchvision,
from ``$FASHION_MNIST_ROOT`` (default ``data``), where the built-in dataset
has unpacked them.
"""

from __future__ import annotations

import os

import torch
import torchvision
from torch import nn


def seed_cnn(input_shape, n_classes, conv1, conv2, fc1, fc2):
    channels, height, width = input_shape
    side = lambda s: ((s - 4) // 2 - 4) // 2  # noqa: E731 (two unpadded 5×5 convolutions, each pooled)
    return nn.Sequential(
        nn.Conv2d(channels, conv1, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(conv1, conv2, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(conv2 * side(height) * side(width), fc1), nn.ReLU(),
        nn.Linear(fc1, fc2), nn.ReLU(), nn.Linear(fc2, n_classes),
    )


def fashion_mnist():
    root = os.environ.get("FASHION_MNIST_ROOT", "data")
    parts = [torchvision.datasets.FashionMNIST(root, train=train, download=False) for train in (True, False)]
    return {
        "x_train": parts[0].data[:, None], "y_train": parts[0].targets,
        "x_test": parts[1].data[:, None], "y_test": torch.as_tensor(parts[1].targets),
    }

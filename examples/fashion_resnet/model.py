"""A small ResNet for Fashion-MNIST's 1×28×28 images, built by scaling-optuna's [model] builder."""

import torch
from torch import nn


class Block(nn.Module):
    """Two 3×3 convolutions with batch norm, added to their input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def resnet(input_shape: tuple[int, ...], n_classes: int, width: int = 16, blocks: int = 2) -> nn.Module:
    """A stride-2 stem, `blocks` residual blocks, global average pooling, a linear classifier."""
    stem = nn.Sequential(nn.Conv2d(input_shape[0], width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
    return nn.Sequential(stem, *(Block(width) for _ in range(blocks)), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))

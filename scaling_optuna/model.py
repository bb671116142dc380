"""The models a trial trains: the seed's 5-layer CNN, an MLP for vectors, or the user's own.

All take raw inputs: their first step standardises them with the mean and
standard deviation of the training subset they were built for (registered
buffers, so they travel with the weights), or leaves them as they are. The
user's network (``[model] builder``) gets that step in front of it
(:class:`PluginModel`), so it sees standardised inputs as the built-in ones do.

Example::

    from scaling_optuna.model import build_model, count_parameters

    net = build_model("cnn", (3, 32, 32), 10, {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84})
    print(count_parameters(net))  # 62006, the PyTorch tutorial's network
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from scaling_optuna.plugins import Plugin
from scaling_optuna.plugins import PluginError
from scaling_optuna.spec import TRAINER_PARAMS

InputStats = tuple[torch.Tensor, torch.Tensor]
# The smallest side that two unpadded 5×5 convolutions, each followed by a 2×2 pooling, leave
# at least one pixel of: (16 - 4) // 2 = 6, (6 - 4) // 2 = 1.
_SEED_KERNEL_MIN_SIDE = 16


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel (images, C×1×1) or per feature (vectors, D).

    Without statistics it is the identity (mean 0, std 1), and the statistics
    of a saved model come back with its state dict. ``train_model`` standardises
    its tensors once per run and trains inside :meth:`bypassed`, instead of
    paying for it in every batch.
    """

    def __init__(self, input_shape: tuple[int, ...], stats: InputStats | None = None) -> None:
        super().__init__()
        shape = (input_shape[0], 1, 1) if len(input_shape) == 3 else tuple(input_shape)
        mean, std = stats if stats is not None else (torch.zeros(shape), torch.ones(shape))
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ValueError(f"input statistics of shape {tuple(mean.shape)} do not fit inputs of shape {input_shape}")
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())
        self._bypassed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self._bypassed else self.apply_to(x)

    def apply_to(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(x - mean) / std``, into ``out`` if given (whose memory layout it keeps)."""
        # One fused op, x * (1/std) + (-mean/std): one batch-sized buffer where
        # (x - mean) / std allocates two.
        return torch.addcmul(-self.mean / self.std, x, self.std.reciprocal(), out=out)

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """Pass inputs through unchanged inside the block: they arrive standardised already."""
        self._bypassed = True
        try:
            yield
        finally:
            self._bypassed = False


class SeedCNN(nn.Module):
    """conv → pool → conv → pool → fc → fc → fc, the PyTorch tutorial's network.

    On 32×32 inputs it is exactly the seed's model (5×5 convolutions without
    padding); other images of at least 16×16 (Fashion-MNIST's 28×28) get the
    same layers. Smaller images cannot take two unpadded 5×5 convolutions and
    two poolings, so there the convolutions are 3×3 with padding 1.
    """

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, conv1: int, conv2: int, fc1: int, fc2: int,
        *, input_stats: InputStats | None = None,
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        kernel, padding = (5, 0) if min(height, width) >= _SEED_KERNEL_MIN_SIDE else (3, 1)
        side_h = _after_block(_after_block(height, kernel, padding), kernel, padding)
        side_w = _after_block(_after_block(width, kernel, padding), kernel, padding)
        if side_h < 1 or side_w < 1:
            raise ValueError(f"images of {height}×{width} are too small for two conv+pool blocks")
        self.standardize = Standardize(input_shape, input_stats)
        self.conv1 = nn.Conv2d(channels, conv1, kernel, padding=padding)
        self.conv2 = nn.Conv2d(conv1, conv2, kernel, padding=padding)
        self.fc1 = nn.Linear(conv2 * side_h * side_w, fc1)
        self.fc2 = nn.Linear(fc1, fc2)
        self.fc3 = nn.Linear(fc2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        # The tutorial's pool(relu(conv)) equals relu(pool(conv)), gradients included,
        # since ReLU is monotonic; pooling first runs the ReLU on a quarter of the values
        # (1.1–1.2× faster training on CPU, see BENCHMARKS.md).
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """Two hidden ReLU layers for vector data (any input shape is flattened)."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, fc1: int, fc2: int, *, input_stats: InputStats | None = None
    ) -> None:
        super().__init__()
        features = 1
        for dim in input_shape:
            features *= dim
        self.standardize = Standardize(input_shape, input_stats)
        self.fc1 = nn.Linear(features, fc1)
        self.fc2 = nn.Linear(fc1, fc2)
        self.fc3 = nn.Linear(fc2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.standardize(x), 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class PluginModel(nn.Module):
    """The user's network (``net``) behind the experiment's input standardisation."""

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], input_stats: InputStats | None = None) -> None:
        super().__init__()
        self.standardize = Standardize(input_shape, input_stats)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.standardize(x))


def build_model(
    kind: str, input_shape: tuple[int, ...], num_classes: int, params: Mapping[str, Any],
    input_stats: InputStats | None = None, *, builder: Plugin | None = None,
) -> nn.Module:
    """Build ``kind`` ("cnn" or "mlp") with the layer widths in ``params``, or the user's model.

    ``input_stats`` (mean, std) standardises raw inputs inside the model; see
    ``Dataset.input_stats``. Without it the model takes its inputs as they are
    until a state dict with statistics is loaded.

    With ``builder`` (``[model] builder``, imported) the network is
    ``builder(input_shape=..., n_classes=..., **model_params(params, builder))``
    inside a :class:`PluginModel`.

    Raises:
        PluginError: the builder raised, or returned something that is not a ``torch.nn.Module``.
    """
    if builder is not None:
        kwargs = model_params(params, builder)
        net = builder.call(input_shape=tuple(input_shape), n_classes=num_classes, **kwargs)
        if not isinstance(net, nn.Module):
            raise PluginError(
                f"{builder.key} {builder.path} returned {type(net).__name__}, not a torch.nn.Module; return the network"
            )
        return PluginModel(net, tuple(input_shape), input_stats)
    if kind == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"the cnn model needs images (C×H×W); this data has rows of shape {input_shape}")
        widths = (int(params["conv1"]), int(params["conv2"]), int(params["fc1"]), int(params["fc2"]))
        return SeedCNN(input_shape, num_classes, *widths, input_stats=input_stats)
    if kind == "mlp":
        return MLP(input_shape, num_classes, int(params["fc1"]), int(params["fc2"]), input_stats=input_stats)
    raise ValueError(f"unknown model kind {kind!r}")


def model_params(params: Mapping[str, Any], builder: Plugin) -> dict[str, Any]:
    """The parameters ``builder`` gets: all but the trainer's own (lr, weight_decay, momentum, batch_size).

    Where the builder has no ``**kwargs``, only the names its signature takes:
    the others are the hyperparameters of a ``[trainer] objective``.
    """
    model = {k: v for k, v in params.items() if k not in TRAINER_PARAMS}
    if builder.takes_any_keyword():
        return model
    return {k: v for k, v in model.items() if k in builder.parameters()}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _after_block(side: int, kernel: int, padding: int) -> int:
    return (side + 2 * padding - kernel + 1) // 2

"""Training one model: a plain tensor loop with early stopping.

Data stay in memory (on the training device) as tensors; each epoch indexes
them with a fresh permutation, so there is no per-sample Python and no
DataLoader in the hot loop. After every epoch the validation loss goes to
``on_epoch``, which may stop the run (Optuna's pruner raises
``optuna.TrialPruned`` there). The test set is evaluated once, with the
weights of the best validation epoch.

Images are trained in the channels-last layout, and the optimiser is the
fused SGD kernel where there is one; on CUDA the forward pass runs under
bf16 autocast. On the CPU, evaluation runs in cache-sized batches. A model
that standardises its raw inputs (``model.Standardize``) gets its tensors
standardised once per run, in the layout copy, instead of once per batch.
``benchmarks/trainer_throughput.py`` measures each choice (see BENCHMARKS.md);
none of them changes what is trained, only how fast
(``tests/test_train_quality.py`` holds the trainer to a textbook loop).

``train_model`` changes nothing outside the model it trains: no global seed,
no backend flag. The process-wide settings that speed training up (glibc
keeping freed memory, cuDNN's autotuning) are :func:`configure_process`'s,
called once when a worker starts.

Example::

    configure_process(torch.device("cpu"))
    x, y = data.train_subset(240)
    result = train_model(net, (x, y), (data.x_val, data.y_val), (data.x_test, data.y_test),
                         lr=0.01, momentum=0.9, weight_decay=1e-5, batch_size=64,
                         max_epochs=15, patience=3)
    print(result.val_loss, result.test_error)
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import math
import sys
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from scaling_optuna.model import Standardize

Tensors = tuple[torch.Tensor, torch.Tensor]

# Measured on CIFAR- and digits-shaped CNNs: within 10% of the best batch for
# every width, where 2048 is up to 1.8× slower (BENCHMARKS.md).
CPU_EVAL_BATCH = 128
# Steps without improvement that early stopping waits for at least. With 150 the
# best trials of digits and mnist1d reached the test error of running every epoch
# at every size; with patience in epochs alone they did not at the smallest sizes.
PATIENCE_STEPS = 150


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class StopRequested(RuntimeError):
    """``should_stop`` asked the trainer to stop (it is asked before every training step)."""


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Metrics of the best validation epoch, and how the run went."""

    val_loss: float
    val_error: float
    test_loss: float
    test_error: float
    best_epoch: int
    epochs_run: int
    stopped_reason: str
    wall_time_s: float
    state_dict: dict[str, torch.Tensor] = dataclasses.field(repr=False)


def train_model(
    model: nn.Module,
    train: Tensors,
    val: Tensors,
    test: Tensors,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    eval_batch_size: int = 2048,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    channels_last: bool | None = None,
    mixed_precision: bool | None = None,
    patience_steps: int = PATIENCE_STEPS,
    standardize_once: bool = True,
) -> TrainResult:
    """Train ``model`` with SGD; stop early after ``patience`` epochs without improvement.

    Tensors must already be on the model's device. ``on_epoch(epoch, val_loss,
    val_error)`` is called after every epoch (epochs count from 1).

    Args:
        seed: seeds the shuffling of every epoch (its own generator; the global torch seed is left alone:
            seed it before building the model to fix the initial weights).
        patience: epochs without improvement before stopping; they must also add up to ``patience_steps``
            optimiser steps, so that on a small training set, whose epochs are a few steps each, a run gets
            past its initial plateau before patience can end it.
        eval_batch_size: the largest batch for validation and test. On the CPU batches stop at
            ``CPU_EVAL_BATCH`` images, whose activations stay in the cache; larger ones are up to 1.8×
            slower there.
        channels_last: train images (4-D inputs) in the channels-last layout. The default, ``None``, does so
            on the CPU and CUDA: oneDNN's and cuDNN's convolutions and max-pooling are faster in it. Image
            tensors that are already channels-last are used as they are; others are copied once per call.
        mixed_precision: run the forward pass under bf16 autocast (weights and the optimiser stay fp32). The
            default, ``None``, enables it on CUDA only; CPUs without native bf16 would emulate it slowly.
        standardize_once: a model with a ``Standardize`` module gets its training, validation and test
            inputs standardised once, in the layout copy above, and trains with the module bypassed; False
            leaves it to the model, batch by batch. The numbers are the same either way; once costs nothing
            per step.

    Raises:
        DivergedError: the training or validation loss is not finite.
        StopRequested: ``should_stop()``, asked before every training step, returned true.
    """
    start = time.perf_counter()
    settings = _Settings(
        lr=lr, momentum=momentum, weight_decay=weight_decay, batch_size=batch_size, max_epochs=max_epochs,
        patience=patience, patience_steps=patience_steps, eval_batch_size=eval_batch_size, seed=seed,
        mixed_precision=mixed_precision, on_epoch=on_epoch, should_stop=should_stop,
    )
    standardize, (train, val, test) = _prepared_data(model, (train, val, test), channels_last, standardize_once)
    # Inputs standardised above: the model's own standardisation is skipped, and restored after.
    with standardize.bypassed() if standardize is not None else contextlib.nullcontext():
        return _train_and_test(model, train, val, test, settings, start)


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What :func:`train_model`'s loop reads of its arguments (the layout ones go to the data's preparation)."""

    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    max_epochs: int
    patience: int
    patience_steps: int
    eval_batch_size: int
    seed: int
    mixed_precision: bool | None
    on_epoch: Callable[[int, float, float], None] | None
    should_stop: Callable[[], bool] | None


@dataclasses.dataclass
class _Best:
    """The best validation epoch so far, and the epochs since it: early stopping's state."""

    loss: float = math.inf
    error: float = 1.0
    epoch: int = 0
    state: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)
    stale: int = 0

    def update(self, model: nn.Module, epoch: int, val_loss: float, val_error: float) -> None:
        """Keep ``model``'s weights if ``val_loss`` is the lowest yet, else count one more stale epoch."""
        if val_loss < self.loss:
            self.loss, self.error, self.epoch, self.stale = val_loss, val_error, epoch, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1


def _prepared_data(
    model: nn.Module, data: tuple[Tensors, Tensors, Tensors], channels_last: bool | None, standardize_once: bool
) -> tuple[Standardize | None, tuple[Tensors, Tensors, Tensors]]:
    """The model in the training layout, and its inputs in it (standardised, if the model's module is skipped).

    Returns the ``Standardize`` module the inputs were standardised by (None: they were not) with the
    training, validation and test tensors.
    """
    layout = _layout(data[0][0], channels_last)
    if layout is torch.channels_last:
        model.to(memory_format=layout)
    standardize = _standardize_module(model) if standardize_once else None
    # One copy here (a no-op for data already in the layout, when nothing is standardised);
    # the per-batch gathers then keep the layout without a copy per step.
    train, val, test = ((_prepared(x, layout, standardize), y) for x, y in data)
    return standardize, (train, val, test)


def _train_and_test(
    model: nn.Module, train: Tensors, val: Tensors, test: Tensors, settings: _Settings, start: float
) -> TrainResult:
    """Epochs until early stopping or ``max_epochs``, then the test of the best epoch's weights.

    This is :func:`train_model` on tensors already prepared; ``start`` is when that call began.
    """
    device = train[0].device
    amp_dtype = _amp_dtype(device, settings.mixed_precision)
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay,
        **_sgd_kernel(device),
    )
    steps_per_epoch = math.ceil(len(train[1]) / settings.batch_size)
    best = _Best()
    epochs_run, reason = 0, "max_epochs"
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        order = torch.randperm(len(train[1]), generator=generator).to(device)
        train_loss = _train_epoch(model, optimizer, train, order, settings, amp_dtype, epoch)
        epochs_run = epoch
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch}")

        val_loss, val_error = evaluate(model, val, settings.eval_batch_size, mixed_precision=settings.mixed_precision)
        if not math.isfinite(val_loss):
            raise DivergedError(f"validation loss became {val_loss} in epoch {epoch}")
        best.update(model, epoch, val_loss, val_error)
        if settings.on_epoch is not None:
            settings.on_epoch(epoch, val_loss, val_error)
        # Small training sets have epochs of a dozen steps: three of them stopped the seed's
        # own settings on their initial plateau, at chance, on digits' smallest sizes
        # (BENCHMARKS.md). Patience therefore also spans a number of steps.
        if best.stale >= settings.patience and best.stale * steps_per_epoch >= settings.patience_steps:
            reason = f"early_stopped: no improvement for {best.stale} epochs"
            break

    model.load_state_dict(best.state)
    test_loss, test_error = evaluate(model, test, settings.eval_batch_size, mixed_precision=settings.mixed_precision)
    return TrainResult(
        val_loss=best.loss,
        val_error=best.error,
        test_loss=test_loss,
        test_error=test_error,
        best_epoch=best.epoch,
        epochs_run=epochs_run,
        stopped_reason=reason,
        wall_time_s=time.perf_counter() - start,
        state_dict={k: v.cpu() for k, v in best.state.items()},
    )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Tensors,
    order: torch.Tensor,
    settings: _Settings,
    amp_dtype: torch.dtype | None,
    epoch: int,
) -> float:
    """One pass over ``train`` in ``order``; its mean training loss.

    The loop is plain tensor work on locals: the loss is summed on the device and read once, at
    the end (reading it every step would wait for the accelerator).
    """
    x_train, y_train = train
    batch_size, should_stop, device = settings.batch_size, settings.should_stop, x_train.device
    loss_sum = torch.zeros((), device=device)
    for i in range(0, len(y_train), batch_size):
        if should_stop is not None and should_stop():
            # Every step, not only every epoch: an epoch of a wide model on a large size takes minutes.
            raise StopRequested(f"stop requested in epoch {epoch}")
        idx = order[i : i + batch_size]
        with _autocast(device, amp_dtype):
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach(), alpha=len(idx))
    return float(loss_sum) / len(y_train)


def evaluate(
    model: nn.Module, data: Tensors, batch_size: int = 2048, *, mixed_precision: bool | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` on ``data``, in batches of at most ``batch_size``."""
    x, y = data
    if x.device.type == "cpu":
        batch_size = min(batch_size, CPU_EVAL_BATCH)
    amp_dtype = _amp_dtype(x.device, mixed_precision)
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    wrong = torch.zeros((), device=x.device, dtype=torch.int64)
    with torch.inference_mode(), _autocast(x.device, amp_dtype):
        for i in range(0, len(y), batch_size):
            logits = model(x[i : i + batch_size]).float()
            target = y[i : i + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
            wrong += (logits.argmax(dim=1) != target).sum()
    return float(loss_sum) / len(y), float(wrong) / len(y)


def configure_process(device: torch.device) -> None:
    """Process-wide settings that speed up training on ``device``; call once per process.

    On the CPU (Linux with glibc) freed memory is kept for reuse instead of
    being returned to the kernel; on CUDA cuDNN autotunes its convolutions for
    the (fixed) batch shapes of a run. Neither changes what is trained.
    """
    if device.type == "cpu":
        _keep_freed_memory()
    if device.type == "cuda":
        # Batch shapes are fixed within a run, so cuDNN's autotuning pays for itself.
        torch.backends.cudnn.benchmark = True


def _standardize_module(model: nn.Module) -> Standardize | None:
    return next((m for m in model.modules() if isinstance(m, Standardize)), None)


def _prepared(x: torch.Tensor, layout: torch.memory_format, standardize: Standardize | None) -> torch.Tensor:
    """``x`` in ``layout``, standardised by ``standardize`` on the way if given (one copy either way)."""
    if standardize is None:
        return x.contiguous(memory_format=layout)
    return standardize.apply_to(x, out=torch.empty_like(x, memory_format=layout))


def _layout(x: torch.Tensor, channels_last: bool | None) -> torch.memory_format:
    if channels_last is None:
        # Measured on the CPU (BENCHMARKS.md); cuDNN's bf16 convolutions want it too. Unmeasured elsewhere.
        channels_last = x.device.type in ("cpu", "cuda")
    return torch.channels_last if channels_last and x.dim() == 4 else torch.contiguous_format


def _amp_dtype(device: torch.device, mixed_precision: bool | None) -> torch.dtype | None:
    """bf16 where the forward pass should autocast, else None."""
    if mixed_precision is None:
        # bf16 halves memory traffic on CUDA for free; on CPUs without native bf16 it is emulated and slow.
        mixed_precision = device.type == "cuda"
    return torch.bfloat16 if mixed_precision else None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks instead of returning them to the kernel.

    By default it unmaps or trims the multi-megabyte activation buffers that
    every step frees, so the next step page-faults on them again: for the
    widest CIFAR CNN 11,000 faults and a sixth of the CPU time per step went
    to the kernel zeroing pages. Other C libraries lack ``mallopt``; nothing
    changes there.
    """
    global _MEMORY_KEPT
    if _MEMORY_KEPT or not sys.platform.startswith("linux"):
        return
    _MEMORY_KEPT = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest heap-served block; bigger ones are mmapped
    mallopt(m_trim_threshold, 1 << 30)


_MEMORY_KEPT = False


def _sgd_kernel(device: torch.device) -> dict[str, bool]:
    # The fused kernel updates all parameters in one call instead of a few small ops
    # per tensor, which matters for these small models' short steps.
    return {"fused": True} if device.type in ("cpu", "cuda") else {}

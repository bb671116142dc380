"""Training one model: a plain tensor loop with early stopping.

Data stay in memory (on the training device) as tensors; each epoch indexes
them with a fresh permutation, so there is no per-sample Python and no
DataLoader in the hot loop. After every epoch the validation loss goes to
``on_epoch``, which may stop the run (Optuna's pruner raises
``optuna.TrialPruned`` there). The test set is evaluated once, with the
weights of the best validation epoch.

Example::

    result = train_model(net, (x, y), (x_val, y_val), (x_test, y_test),
                         lr=0.01, momentum=0.9, weight_decay=1e-5, batch_size=64,
                         max_epochs=15, patience=3)
    print(result.val_loss, result.test_error)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

Tensors = tuple[torch.Tensor, torch.Tensor]


class DivergedError(RuntimeError):
    """The loss became NaN or infinite."""


class StopRequested(RuntimeError):
    """``should_stop`` asked the trainer to stop at an epoch boundary."""


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
    examples_trained: int
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
) -> TrainResult:
    """Train ``model`` with SGD; stop early after ``patience`` epochs without improvement.

    Tensors must already be on the model's device. ``on_epoch(epoch, val_loss,
    val_error)`` is called after every epoch (epochs count from 1).

    Raises:
        DivergedError: the training or validation loss is not finite.
        StopRequested: ``should_stop()`` returned true at an epoch boundary.
    """
    start = time.perf_counter()
    x_train, y_train = train
    device = x_train.device
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    autocast = _autocast(device)
    n = len(y_train)

    best_loss, best_error, best_epoch = math.inf, 1.0, 0
    best_state: dict[str, torch.Tensor] = {}
    epochs_run, stale, reason = 0, 0, "max_epochs"
    for epoch in range(1, max_epochs + 1):
        if should_stop is not None and should_stop():
            raise StopRequested(f"stop requested before epoch {epoch}")
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            with autocast:
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
        epochs_run = epoch
        train_loss = float(loss_sum) / n
        if not math.isfinite(train_loss):
            raise DivergedError(f"training loss became {train_loss} in epoch {epoch}")

        val_loss, val_error = evaluate(model, val, eval_batch_size)
        if not math.isfinite(val_loss):
            raise DivergedError(f"validation loss became {val_loss} in epoch {epoch}")
        if val_loss < best_loss:
            best_loss, best_error, best_epoch, stale = val_loss, val_error, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if on_epoch is not None:
            on_epoch(epoch, val_loss, val_error)
        if stale >= patience:
            reason = f"early_stopped: no improvement for {patience} epochs"
            break

    model.load_state_dict(best_state)
    test_loss, test_error = evaluate(model, test, eval_batch_size)
    return TrainResult(
        val_loss=best_loss,
        val_error=best_error,
        test_loss=test_loss,
        test_error=test_error,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        stopped_reason=reason,
        wall_time_s=time.perf_counter() - start,
        examples_trained=n * epochs_run,
        state_dict={k: v.cpu() for k, v in best_state.items()},
    )


def evaluate(model: nn.Module, data: Tensors, batch_size: int = 2048) -> tuple[float, float]:
    """Mean cross-entropy and error rate of ``model`` on ``data``."""
    x, y = data
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    wrong = torch.zeros((), device=x.device, dtype=torch.int64)
    with torch.inference_mode(), _autocast(x.device):
        for i in range(0, len(y), batch_size):
            logits = model(x[i : i + batch_size]).float()
            target = y[i : i + batch_size]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
            wrong += (logits.argmax(dim=1) != target).sum()
    return float(loss_sum) / len(y), float(wrong) / len(y)


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 on CUDA halves memory traffic for free; on the CPU it is slower for these small layers.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)

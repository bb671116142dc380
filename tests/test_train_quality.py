"""The fast trainer trains the same models as a textbook PyTorch loop; its speed comes from elsewhere.

The reference is the plain loop every tutorial writes: a DataLoader over a
TensorDataset, NCHW tensors, the for-loop SGD, evaluation under no_grad. Both
start from the same initial weights and shuffle with the same seeded
generator, so they differ only in kernels, layouts and summation order.
"""

from __future__ import annotations

import copy
import math
import statistics
import types

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torch.utils.data import TensorDataset

from scaling_optuna.data import load_dataset
from scaling_optuna.model import MLP
from scaling_optuna.model import SeedCNN
from scaling_optuna.spec import parse_spec
from scaling_optuna.train import StopRequested
from scaling_optuna.train import _amp_dtype
from scaling_optuna.train import configure_process
from scaling_optuna.train import evaluate
from scaling_optuna.train import train_model

SEEDS = (0, 1, 2, 3, 4)
EPOCHS = 12
HPARAMS = dict(lr=0.05, momentum=0.9, weight_decay=1e-5, batch_size=32)
CHANCE = 0.9


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny: a second OpenMP thread only waits at barriers, and on a
    # loaded machine those waits made this module 15× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    spec = parse_spec({"name": "quality", "data": {"dataset": "digits"}, "sizes": {"counts": [1000]}})
    return load_dataset(spec)


def reference_loop(model: nn.Module, train, val, test, *, lr, momentum, weight_decay, batch_size, epochs, seed) -> float:
    """Textbook training; keeps the best validation epoch's weights like train_model. Returns the test error."""
    loader = DataLoader(TensorDataset(*train), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    best_loss, best_state = math.inf, None
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(val[0]), val[1]).item()
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    with torch.no_grad():
        return (model(test[0]).argmax(dim=1) != test[1]).float().mean().item()


def fast(model: nn.Module, data, seed: int, **options) -> float:
    result = train_model(
        model,
        (data.x_pool, data.y_pool),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
        max_epochs=EPOCHS,
        patience=EPOCHS,
        seed=seed,
        **HPARAMS,
        **options,
    )
    assert result.epochs_run == EPOCHS
    return result.test_error


def reference(model: nn.Module, data, seed: int) -> float:
    return reference_loop(
        model,
        (data.x_pool, data.y_pool),
        (data.x_val, data.y_val),
        (data.x_test, data.y_test),
        epochs=EPOCHS,
        seed=seed,
        **HPARAMS,
    )


def twin_models(make, seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    model = make()
    return model, copy.deepcopy(model)


def seed_cnn(data, widths=(6, 16, 120, 84)) -> nn.Module:
    """The CNN on digits, standardising its raw inputs with the training pool's statistics."""
    return SeedCNN((1, 8, 8), 10, *widths, input_stats=data.input_stats(data.pool_size))


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, make",
    [
        ("cnn", lambda data: seed_cnn(data)),
        ("mlp", lambda data: MLP((1, 8, 8), 10, 120, 84, input_stats=data.input_stats(data.pool_size))),
    ],
)
def test_fast_trainer_matches_textbook_loop(digits, kind, make) -> None:
    fast_mean, reference_mean = mean_errors(
        lambda: make(digits), lambda m, seed: fast(m, digits, seed), lambda m, seed: reference(m, digits, seed)
    )
    assert fast_mean < 0.15 and reference_mean < 0.15 < CHANCE
    # 359 test images; seeds of either loop differ by up to 2.5 points (float differences grow
    # chaotically over 400 steps), so the means of five seeds agree to about a point.
    assert abs(fast_mean - reference_mean) <= 0.02, kind


def test_pool_before_relu_is_the_tutorial_network_exactly() -> None:
    torch.manual_seed(0)
    net = SeedCNN((3, 32, 32), 10, 6, 16, 120, 84)
    x = torch.randn(8, 3, 32, 32)

    def tutorial(x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(net.conv1(x)), 2)
        x = F.max_pool2d(F.relu(net.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return net.fc3(F.relu(net.fc2(F.relu(net.fc1(x)))))

    ours, theirs = net(x), tutorial(x)
    assert torch.equal(ours, theirs)
    grads_ours = torch.autograd.grad(ours.square().sum(), list(net.parameters()))
    grads_theirs = torch.autograd.grad(theirs.square().sum(), list(net.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(grads_ours, grads_theirs))


def mean_errors(make, first, second) -> tuple[float, float]:
    """Mean test errors over SEEDS of two ways to train twin models."""
    errors = [(first(a, seed), second(b, seed)) for seed in SEEDS for a, b in [twin_models(make, seed)]]
    return statistics.mean(e[0] for e in errors), statistics.mean(e[1] for e in errors)


@pytest.mark.slow
def test_layouts_train_the_same_model(digits) -> None:
    cl, nchw = mean_errors(
        lambda: seed_cnn(digits, (8, 16, 64, 32)),
        lambda m, seed: fast(m, digits, seed, channels_last=True),
        lambda m, seed: fast(m, digits, seed, channels_last=False),
    )
    assert abs(cl - nchw) <= 0.02


@pytest.mark.slow
def test_bf16_mixed_precision_path_trains_well_on_cpu(digits) -> None:
    # The path CUDA takes by default, exercised here on the CPU's bf16 autocast.
    bf16, fp32 = mean_errors(
        lambda: seed_cnn(digits),
        lambda m, seed: fast(m, digits, seed, mixed_precision=True),
        lambda m, seed: fast(m, digits, seed, mixed_precision=False),
    )
    assert bf16 < 0.15 and abs(bf16 - fp32) <= 0.02


def test_mixed_precision_policy() -> None:
    assert _amp_dtype(torch.device("cuda"), None) is torch.bfloat16
    assert _amp_dtype(torch.device("cuda", 1), None) is torch.bfloat16
    assert _amp_dtype(torch.device("cpu"), None) is None
    assert _amp_dtype(torch.device("cpu"), True) is torch.bfloat16
    assert _amp_dtype(torch.device("cuda"), False) is None


def test_evaluate_is_independent_of_batch_size(digits) -> None:
    torch.manual_seed(0)
    net = seed_cnn(digits)
    whole = evaluate(net, (digits.x_test, digits.y_test), 4096)
    pieces = evaluate(net, (digits.x_test, digits.y_test), 7)
    assert whole[1] == pieces[1] and whole[0] == pytest.approx(pieces[0], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_keeps_data_on_device_and_matches_cpu(digits) -> None:
    import warnings

    device = torch.device("cuda:0")
    names = ("x_pool", "y_pool", "x_val", "y_val", "x_test", "y_test")
    moved = types.SimpleNamespace(**{name: getattr(digits, name).to(device) for name in names})
    # No host round trip per step: the device waits for the host a bounded number of
    # times per epoch (the permutation, the epoch's loss, evaluation), not per batch.
    torch.manual_seed(0)
    model = seed_cnn(digits).to(device)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fast(model, moved, 0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    steps_per_epoch = math.ceil(len(digits.y_pool) / HPARAMS["batch_size"])
    assert len(caught) < 8 * (EPOCHS + 1) < steps_per_epoch * EPOCHS
    assert next(model.parameters()).device == device
    # bf16 autocast (the CUDA default) trains as well as the CPU's fp32.
    gpu, cpu = mean_errors(
        lambda: seed_cnn(digits),
        lambda m, seed: fast(m.to(device), moved, seed),
        lambda m, seed: fast(m, digits, seed),
    )
    assert gpu < 0.15 and abs(gpu - cpu) <= 0.02


def test_patience_spans_a_minimum_of_steps(digits) -> None:
    def run(size: int, batch_size: int, lr: float, **options):
        torch.manual_seed(0)
        return train_model(
            SeedCNN((1, 8, 8), 10, 6, 16, 120, 84, input_stats=digits.input_stats(size)),
            (digits.x_pool[:size], digits.y_pool[:size]),
            (digits.x_val, digits.y_val), (digits.x_test, digits.y_test),
            lr=lr, momentum=0.9 if lr else 0.0, weight_decay=0.0, batch_size=batch_size, max_epochs=200, patience=3, **options,
        )

    # lr = 0 never improves. Epochs of 4 steps: 3 stale epochs are not 150 steps, 38 are.
    flat = run(100, 32, 0.0)
    assert flat.best_epoch == 1 and flat.epochs_run == 1 + 38
    assert run(100, 32, 0.0, patience_steps=0).epochs_run == 1 + 3
    # Epochs of 400 steps: patience in epochs decides.
    assert run(400, 1, 0.0).epochs_run == 1 + 3
    # A run that learns and then stops improving is stopped, well trained.
    learned = run(400, 16, 0.05)
    assert 1 < learned.best_epoch < learned.epochs_run < 200
    assert learned.stopped_reason.startswith("early_stopped") and learned.test_error < 0.3


def test_train_model_leaves_the_process_as_it_found_it(digits) -> None:
    torch.manual_seed(123)
    net = seed_cnn(digits)
    rng_before = torch.random.get_rng_state()
    benchmark_before = torch.backends.cudnn.benchmark
    train_model(net, (digits.x_pool[:64], digits.y_pool[:64]), (digits.x_val, digits.y_val), (digits.x_test, digits.y_test),
                max_epochs=2, patience=2, seed=7, **HPARAMS)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.backends.cudnn.benchmark == benchmark_before


def test_configure_process_holds_the_process_settings() -> None:
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        configure_process(torch.device("cpu"))
        assert torch.backends.cudnn.benchmark is False
        configure_process(torch.device("cuda"))  # only a flag: no GPU needed to set it
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cudnn.benchmark = before


def test_the_model_standardises_raw_inputs_like_a_normalize_transform(digits) -> None:
    mean, std = digits.input_stats(200)
    torch.manual_seed(0)
    inside = SeedCNN((1, 8, 8), 10, 6, 16, 120, 84, input_stats=(mean, std))
    outside = copy.deepcopy(inside)
    outside.standardize = nn.Identity()
    x = digits.x_test[:32]
    assert torch.allclose(inside(x), outside((x - mean) / std), atol=1e-6)
    # The statistics travel with the weights.
    restored = SeedCNN((1, 8, 8), 10, 6, 16, 120, 84)
    restored.load_state_dict(inside.state_dict())
    assert torch.equal(restored(x), inside(x))


def test_standardising_once_per_run_trains_exactly_what_the_model_would_batch_by_batch(digits) -> None:
    results = []
    for once in (True, False):
        torch.manual_seed(0)
        net = SeedCNN((1, 8, 8), 10, 6, 16, 120, 84, input_stats=digits.input_stats(200))
        result = train_model(net, (digits.x_pool[:200], digits.y_pool[:200]), (digits.x_val, digits.y_val),
                             (digits.x_test, digits.y_test), max_epochs=3, patience=3, standardize_once=once, **HPARAMS)
        results.append((result, net))
    (once, net_once), (per_batch, _) = results
    assert (once.val_loss, once.test_loss, once.test_error) == (per_batch.val_loss, per_batch.test_loss, per_batch.test_error)
    assert all(torch.equal(once.state_dict[k], per_batch.state_dict[k]) for k in once.state_dict)
    # Afterwards the model standardises raw inputs again, as best_model's copy does.
    assert evaluate(net_once, (digits.x_test, digits.y_test))[1] == once.test_error


def test_the_model_standardises_again_after_a_run_that_ends_in_an_exception(digits) -> None:
    net = seed_cnn(digits)
    with pytest.raises(StopRequested):
        train_model(net, (digits.x_pool[:64], digits.y_pool[:64]), (digits.x_val, digits.y_val),
                    (digits.x_test, digits.y_test), max_epochs=2, patience=2, should_stop=lambda: True, **HPARAMS)
    x = digits.x_test[:8]
    mean, std = net.standardize.mean, net.standardize.std
    assert not torch.equal(net.standardize(x), x)
    assert torch.allclose(net.standardize(x), (x - mean) / std, atol=1e-6)


def test_a_stop_request_is_honoured_at_the_next_step_mid_epoch(digits) -> None:
    asked = []

    def stop_on_the_third_ask() -> bool:
        asked.append(True)
        return len(asked) >= 3

    params = {**HPARAMS, "batch_size": 16}
    with pytest.raises(StopRequested, match="in epoch 1"):
        train_model(seed_cnn(digits), (digits.x_pool[:64], digits.y_pool[:64]), (digits.x_val, digits.y_val),
                    (digits.x_test, digits.y_test), max_epochs=2, patience=2, should_stop=stop_on_the_third_ask, **params)
    assert len(asked) == 3  # asked before each step: the third of the epoch's four never ran

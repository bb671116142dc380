"""Plug-ins: the user's model, data and training loop by import path, used as a user would.

The user's modules are real files beside the spec (``python_path = ["."]``) or on
``PYTHONPATH``; commands run as the CLI (in-process for the fast bad-input
table, as subprocesses end to end).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

import scaling_optuna
from scaling_optuna import DataError
from scaling_optuna import SpecError
from scaling_optuna.cli import main
from scaling_optuna.data import load_dataset
from scaling_optuna.objective import EpochReport
from scaling_optuna.spec import load_spec
from scaling_optuna.train import DivergedError
from scaling_optuna.train import StopRequested
from tests.conftest import run_cli
from tests.plugin_files import BUILDER
from tests.plugin_files import gray_images
from tests.plugin_files import plugin_spec
from tests.plugin_files import write_image_folder
from tests.plugin_files import write_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    # Decoded image folders are cached under $XDG_CACHE_HOME: each test has its own.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err.strip().splitlines()


# --- The spec: keys that do nothing are errors -------------------------------------------------


def test_a_parameter_the_built_in_model_does_not_take_is_refused():
    raw = {
        "name": "m", "data": {"dataset": "npz", "path": "x.npz"}, "sizes": {"counts": [4]}, "model": {"kind": "mlp"},
        "search_space": {"lr": 0.1, "weight_decay": 0.0, "momentum": 0.9, "fc1": 8, "fc2": 8, "conv1": 4},
    }
    with pytest.raises(SpecError, match="search_space.conv1: the mlp model and the trainer take no such parameter"):
        scaling_optuna.spec.parse_spec(raw)
    raw["search_space"] = {"lr": 0.1, "weight_decay": 0.0, "momentum": 0.9, "fc1": 8, "fcc2": 8}
    with pytest.raises(SpecError, match="did you mean 'fc2'"):
        scaling_optuna.spec.parse_spec(raw)


def test_a_builders_parameters_keep_their_types(tmp_path):
    write_module(tmp_path, "typed_net", BUILDER)
    space = (
        SPACE_BASE + 'width = { low = 4, high = 12 }\nact = { choices = ["relu", "gelu"] }\nnorm = true\n'
        "scale = { low = 0.5, high = 2.0 }\n"
    )
    spec = load_spec(plugin_spec(tmp_path, name="typed", model='builder = "typed_net:net"', space=space))
    assert spec.model == "builder" and spec.builder == "typed_net:net" and spec.python_path == (str(tmp_path),)
    assert spec.search_space["width"] == IntDistribution(4, 12)
    assert spec.search_space["act"] == CategoricalDistribution(["relu", "gelu"])
    assert spec.search_space["norm"] == CategoricalDistribution([True])
    assert spec.search_space["scale"].low == 0.5 and not isinstance(spec.search_space["scale"], IntDistribution)
    # Only lr, weight_decay and momentum are needed, for the built-in trainer.
    with pytest.raises(SpecError, match="missing momentum needed by the built-in trainer"):
        load_spec(plugin_spec(tmp_path, name="typed2", model='builder = "typed_net:net"', space="lr = 0.1\nweight_decay = 0.0\n"))


def test_specs_without_plug_ins_keep_their_compatibility_hash():
    # Stores created before plug-ins existed must open as before.
    hashes = {p.stem: load_spec(p).compatibility_hash() for p in (ROOT / "studies").glob("*.toml")}
    assert {k: hashes[k] for k in ("digits", "mnist1d", "cifar10")} == {
        "digits": "260d6cf8454e8f27", "mnist1d": "370628dae612fdbc", "cifar10": "8b4e98dc14fa95e8",
    }


SPACE_BASE = "lr = { low = 0.05, high = 0.2, log = true }\nweight_decay = 1e-5\nmomentum = 0.9\n"


# --- Bad plug-ins: one line naming the plug-in and the fix, exit 2, nothing written -------------

_GOOD_LOADER_ARRAYS = (
    "import numpy as np\n"
    "def arrays():\n"
    "    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)\n"
    "    return x, np.arange(10) % 2, x[:4], np.arange(4) % 2\n"
)


def _loader(body: str) -> str:
    return _GOOD_LOADER_ARRAYS + f"def load():\n    x_train, y_train, x_test, y_test = arrays()\n    {body}\n"


def _images(root: Path, layout: dict) -> None:
    write_image_folder(root, layout)


# (id, module source, spec parts, files to write, message fragments)
BAD_PLUGINS = [
    ("import-path-missing", None, {"model": 'builder = "nowhere_at_all:net"'}, None, ["model.builder: cannot import 'nowhere_at_all'", "PYTHONPATH"]),
    ("malformed-import-path", None, {"model": 'builder = "just_a_name"'}, None, ["model.builder: 'just_a_name' is not an import path", "package.module:function"]),
    ("function-missing", BUILDER, {"model": 'builder = "{module}:nett"'}, None, ["model.builder: {module} has no 'nett' (did you mean 'net'?)"]),
    ("module-raises-on-import", "raise RuntimeError('no GPU here')\n", {"model": 'builder = "{module}:net"'}, None, ["model.builder: importing {module} raised RuntimeError: no GPU here ({module}.py line 1); fix the module"]),
    ("builder-returns-no-module", "def net(input_shape, n_classes, width=8):\n    return 42\n", {"model": 'builder = "{module}:net"'}, None, ["model.builder {module}:net returned int, not a torch.nn.Module"]),
    ("builder-raises", "def net(input_shape, n_classes, width=8):\n    raise ValueError('width must be even')\n", {"model": 'builder = "{module}:net"'}, None, ["model.builder {module}:net raised ValueError: width must be even ({module}.py line 2); fix the builder"]),
    ("builder-fails-on-one-batch", "from torch import nn\ndef net(input_shape, n_classes, width=8):\n    return nn.Linear(10, n_classes)\n", {"model": 'builder = "{module}:net"'}, None, ["model.builder {module}:net: its model fails on one batch of the data", "inputs of 2×1×8×8"]),
    ("builder-wrong-output", "from torch import nn\ndef net(input_shape, n_classes, width=8):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))\n", {"model": 'builder = "{module}:net"'}, None, ["its model returns shape (2, 3) for a batch of 2; it must return (2, 10)"]),
    ("builder-lacks-a-name", BUILDER, {"model": 'builder = "{module}:net"', "space": SPACE_BASE + "widht = 8\n"}, None, ["search_space.widht: model.builder {module}:net takes no parameter 'widht' (did you mean 'width'?)"]),
    ("builder-without-input-shape", "def net(n_classes, width=8):\n    pass\n", {"model": 'builder = "{module}:net"'}, None, ["model.builder: {module}:net takes no input_shape", "add them to its signature"]),
    ("builder-requires-a-missing-name", "def net(input_shape, n_classes, width, depth):\n    pass\n", {"model": 'builder = "{module}:net"'}, None, ["search_space: missing depth, which model.builder {module}:net requires"]),
    ("builder-and-kind", None, {"model": 'kind = "cnn"\nbuilder = "x:y"'}, None, ["model: give kind (a built-in model) or builder (your own function), not both"]),
    ("python-path-missing", None, {"model": 'builder = "x:y"', "python_path": "nowhere"}, None, ["python_path: 'nowhere' is not a folder"]),
    ("mlp-with-conv1", None, {"model": 'kind = "mlp"', "space": SPACE_BASE + "fc1 = 8\nfc2 = 8\nconv1 = 4\n"}, None, ["search_space.conv1: the mlp model and the trainer take no such parameter"]),
    ("loader-mismatched-lengths", _loader("return x_train, y_train[:9], x_test, y_test"), {"data": 'loader = "{module}:load"'}, None, ["data.loader {module}:load: y_train has shape (9,) but x_train has 10 rows"]),
    ("loader-non-integer-labels", _loader("return x_train, y_train + 0.5, x_test, y_test"), {"data": 'loader = "{module}:load"'}, None, ["data.loader {module}:load: y_train has dtype float64; labels must be integers"]),
    ("loader-nan", _loader("x_train[3, 1] = float('nan'); return x_train, y_train, x_test, y_test"), {"data": 'loader = "{module}:load"'}, None, ["data.loader {module}:load: x_train holds NaN"]),
    ("loader-returns-nothing", _loader("pass"), {"data": 'loader = "{module}:load"'}, None, ["data.loader {module}:load returned nothing; return (x_train, y_train, x_test, y_test)"]),
    ("loader-raises", _loader("open('/no/such/file.csv')"), {"data": 'loader = "{module}:load"'}, None, ["data.loader {module}:load raised FileNotFoundError", "fix the loader"]),
    ("loader-and-dataset", None, {"data": 'dataset = "digits"\nloader = "x:y"'}, None, ["data: give dataset (a built-in one) or loader (your own function), not both"]),
    ("objective-returns-nothing", "def fit(report):\n    report(1, 0.5)\n", {"trainer": 'objective = "{module}:fit"'}, None, ["trainer.objective {module}:fit returned nothing", "fix the objective"]),
    ("objective-nan-every-epoch", "def fit(report):\n    for epoch in range(1, 100):\n        if report(epoch, float('nan')):\n            break\n    return {'val_loss': 1.0, 'test_error': 0.5}\n", {"trainer": 'objective = "{module}:fit"'}, None, ["trainer.objective {module}:fit reported a non-finite validation loss (nan) in every one of 3 epoch(s)"]),
    ("objective-unknown-argument", "def fit(modle, report):\n    pass\n", {"trainer": 'objective = "{module}:fit"'}, None, ["trainer.objective: {module}:fit takes 'modle' (did you mean 'model'?), which no trial gives"]),
    ("objective-raises", "def fit(train):\n    return 1 / 0\n", {"trainer": 'objective = "{module}:fit"'}, None, ["trainer.objective {module}:fit raised ZeroDivisionError: division by zero ({module}.py line 2); fix the objective"]),
    ("objective-returns-a-number", "def fit(report):\n    return 0.5\n", {"trainer": 'objective = "{module}:fit"'}, None, ["returned a float, not a dict of metrics"]),
    ("imagefolder-one-class", None, {"data": 'dataset = "imagefolder"\nroot = "{folder}/images"'}, {"only": gray_images(6, 100)}, ["imagefolder {folder}/images: one class folder (only); a classifier needs at least two"]),
    ("imagefolder-unreadable-image", None, {"data": 'dataset = "imagefolder"\nroot = "{folder}/images"'}, {"a": gray_images(6, 50), "b": gray_images(6, 200)}, ["cannot read image", "b/005.png", "replace or remove the file"]),
    ("imagefolder-mixed-sizes", None, {"data": 'dataset = "imagefolder"\nroot = "{folder}/images"'}, {"a": gray_images(6, 50), "b": gray_images(6, 200, side=9)}, ["is 9×9 pixels but", "resize the images to one size"]),
    ("imagefolder-empty-class", None, {"data": 'dataset = "imagefolder"\nroot = "{folder}/images"'}, {"a": gray_images(6, 50), "b": []}, ["imagefolder", "Found no valid file for the classes b", "one subfolder per class"]),
]


def _fill(text: str, module: str, folder: Path) -> str:
    return text.replace("{module}", module).replace("{folder}", str(folder))


def _bad_case(tmp_path: Path, case_id: str, source: str | None, parts: dict, images: dict | None) -> Path:
    module = "plug_" + case_id.replace("-", "_")
    if source is not None:
        write_module(tmp_path, module, source)
    if images is not None:
        write_image_folder(tmp_path / "images", images)
        if case_id == "imagefolder-unreadable-image":
            (tmp_path / "images" / "b" / "005.png").write_bytes(b"not a png")
    parts = {k: _fill(v, module, tmp_path) for k, v in parts.items()}
    python_path = parts.pop("python_path", None)
    defaults = {"model": "", "space": SPACE_BASE + "width = { low = 4, high = 12 }\n"}
    if "data" in parts and "builder" not in parts.get("model", ""):
        defaults = {"model": 'kind = "mlp"' if "loader" in parts["data"] else 'kind = "cnn"', "space": SPACE_BASE + "fc1 = 8\nfc2 = 8\n"}
        defaults["space"] += "" if "loader" in parts["data"] else "conv1 = 4\nconv2 = 4\n"
    if "trainer" in parts:
        defaults = {"model": 'kind = "cnn"', "space": SPACE_BASE + "conv1 = 4\nconv2 = 4\nfc1 = 8\nfc2 = 8\n"}
    counts = (4,) if "loader" in parts.get("data", "") else (6,) if "imagefolder" in parts.get("data", "") else (40, 80)
    spec = plugin_spec(tmp_path, name="bad", counts=counts, **{**defaults, **parts})
    if python_path is not None:
        spec.write_text(spec.read_text().replace('python_path = ["."]', f'python_path = ["{python_path}"]'))
    return spec


@pytest.mark.parametrize("case_id, source, parts, images, fragments", BAD_PLUGINS, ids=[c[0] for c in BAD_PLUGINS])
def test_a_bad_plug_in_is_one_line_and_writes_nothing(case_id, source, parts, images, fragments, tmp_path, capsys):
    spec = _bad_case(tmp_path, case_id, source, parts, images)
    module = "plug_" + case_id.replace("-", "_")
    db = tmp_path / "fresh.db"
    code, lines = _run_main(["create", str(spec), "--storage", f"sqlite:///{db}"], capsys)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert _fill(fragment, module, tmp_path) in lines[0], lines[0]
    assert not db.exists() and not Path(f"{db}-artifacts").exists()
    with pytest.raises((SpecError, DataError)):
        scaling_optuna.create_experiment(load_spec(spec), f"sqlite:///{db}")
    assert not db.exists()


# --- A plug-in failing inside one trial fails that trial, never the worker ---------------------


@pytest.mark.slow
def test_a_builder_failing_in_one_trial_fails_that_trial_and_the_worker_goes_on(tmp_path):
    write_module(tmp_path, "fussy_net", BUILDER + "\n\ndef fussy(input_shape, n_classes, width=8):\n"
                 "    if width > 20:\n        raise ValueError(f'width {width} is too wide')\n"
                 "    return net(input_shape, n_classes, width)\n")
    defaults = "[default_params]\nlr = 0.1\nweight_decay = 1e-5\nmomentum = 0.9\nwidth = 32\n"
    spec = plugin_spec(tmp_path, name="fussy", trials=3, counts=(60,), epochs=2, model='builder = "fussy_net:fussy"', default_params=defaults)
    url = f"sqlite:///{tmp_path / 'fussy.db'}"
    assert run_cli("create", str(spec), "--storage", url).returncode == 0
    done = run_cli("worker", str(spec), "--storage", url)
    assert done.returncode == 0, done.stderr
    assert "1 failed, 0 handed back" in done.stdout
    study = optuna.load_study(study_name="fussy-n0000060", storage=url)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 3  # the failed one was replaced
    (failed,) = study.get_trials(states=(TrialState.FAIL,))
    assert failed.user_attrs["baseline"] and failed.params["width"] == 32
    assert failed.user_attrs["error"] == (
        "PluginError: model.builder fussy_net:fussy raised ValueError: width 32 is too wide (fussy_net.py line 14)"
    )


# --- The user's training loop ------------------------------------------------------------------


def test_report_stops_at_patience_and_max_epochs_and_refuses_a_nan():
    report = EpochReport(max_epochs=10, patience=2)
    assert [report(e, loss) for e, loss in enumerate([1.0, 0.8, 0.9, 0.85], start=1)] == [False, False, False, True]
    assert report.best_epoch == 2 and report.epochs_run == 4 and report.stopped_reason == "early_stopped: no improvement for 2 epochs"
    capped = EpochReport(max_epochs=3, patience=5)
    assert [capped(e, 1.0 / e) for e in (1, 2, 3)] == [False, False, True] and capped.stopped_reason == "max_epochs"
    with pytest.raises(DivergedError, match="validation loss became nan in epoch 1"):
        EpochReport(max_epochs=3, patience=2)(1, math.nan)
    with pytest.raises(StopRequested):
        EpochReport(max_epochs=3, patience=2, should_stop=lambda: True)(1, 0.5)
    with pytest.raises(TypeError, match="epoch must be an integer"):
        EpochReport(max_epochs=3, patience=2)(0.5, 0.5)


@pytest.mark.slow
def test_an_objective_experiment_trains_prunes_and_keeps_the_models_weights(tmp_path):
    # The README's example of a training loop of one's own: Adam, in examples/fashion_resnet/train.py.
    space = SPACE_BASE.replace("lr = { low = 0.05, high = 0.2, log = true }", "lr = { low = 0.02, high = 0.05, log = true }")
    space += "conv1 = 4\nconv2 = 6\nfc1 = 16\nfc2 = 16\n"
    spec = plugin_spec(
        tmp_path, name="loop", trials=2, counts=(60, 240), epochs=8, model='kind = "cnn"', space=space,
        trainer='objective = "fashion_resnet.train:fit"',
    )
    spec.write_text(spec.read_text().replace('python_path = ["."]', f'python_path = ["{ROOT / "examples"}"]'))
    url = f"sqlite:///{tmp_path / 'loop.db'}"
    done = run_cli("run", str(spec), "--storage", url)
    assert done.returncode == 0, done.stderr
    exp = scaling_optuna.load_experiment(spec, url)
    assert [s.finished for s in exp.status()] == [2, 2]
    trials = [t for size in exp.sizes for t in exp.trials(size)]
    assert all(t.user_attrs["stopped_reason"] in ("max_epochs", "returned") or t.user_attrs["stopped_reason"].startswith("early_stopped") for t in trials)
    assert all(1 <= t.user_attrs["epochs_run"] <= 8 and t.user_attrs["n_params"] > 0 for t in trials)
    best = exp.best_trial(240)
    assert best.test_error < 0.6  # ten classes: chance is 0.9
    # The weights the objective left in the model are the trial's: best_model measures what it reported.
    model, data = exp.best_model(240), load_dataset(exp.spec)
    with torch.no_grad():
        error = float((model(data.x_test).argmax(1) != data.y_test).float().mean())
    assert error == pytest.approx(best.test_error, abs=1.5 / len(data.y_test))


def test_an_objective_that_builds_its_own_model_needs_no_model_parameters(tmp_path, capsys):
    write_module(tmp_path, "own_model", """
        import torch
        from torch.nn import functional as F

        def fit(train, val, test, report, params):
            x, y = train
            weights = torch.zeros(x[0].numel(), 10, requires_grad=True)
            optimizer = torch.optim.SGD([weights], lr=params["lr"])
            loss = lambda data: F.cross_entropy(data[0].flatten(1) @ weights, data[1])
            for epoch in range(1, 100):
                optimizer.zero_grad()
                loss(train).backward()
                optimizer.step()
                if report(epoch, loss(val).item()):
                    break
            errors = ((test[0].flatten(1) @ weights).argmax(1) != test[1]).float().mean().item()
            return {"val_loss": loss(val).item(), "test_error": errors}
    """)
    spec = plugin_spec(tmp_path, name="own", counts=(60,), space="lr = { low = 0.001, high = 0.01 }\n", trainer='objective = "own_model:fit"')
    url = f"sqlite:///{tmp_path / 'own.db'}"
    code, lines = _run_main(["create", str(spec), "--storage", url], capsys)
    assert code == 0, lines
    assert scaling_optuna.load_experiment(spec, url).studies[60].user_attrs["plugins"]["trainer.objective"]["module"] == "own_model"


# --- Data by import path and as a folder of images ---------------------------------------------


@pytest.mark.parametrize(
    "returns",
    ["x_train, y_train, x_test, y_test", "dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)",
     "[torch.from_numpy(a) for a in (x_train, y_train, x_test, y_test)]"],
    ids=["tuple", "mapping", "tensors"],
)
def test_a_loader_may_return_a_tuple_a_mapping_or_tensors(returns, tmp_path):
    module = f"loader_{len(returns)}"
    write_module(tmp_path, module, "import numpy as np\nimport torch\n\ndef load():\n"
                 "    x_train, y_train = np.arange(60, dtype=np.float32).reshape(20, 3), np.arange(20) % 4\n"
                 "    x_test, y_test = -np.arange(15, dtype=np.float32).reshape(5, 3), np.arange(5) % 4\n"
                 f"    return {returns}\n")
    spec = load_spec(plugin_spec(tmp_path, name="arrays", counts=(8,), data=f'loader = "{module}:load"\nvalidation_size = 4', model='kind = "mlp"', space=SPACE_BASE + "fc1 = 8\nfc2 = 8\n"))
    data = load_dataset(spec)
    assert data.name == f"{module}:load" and data.pool_size == 16 and data.num_classes == 4
    np.testing.assert_array_equal(data.x_test.numpy(), -np.arange(15, dtype=np.float32).reshape(5, 3))
    assert sorted(torch.cat([data.x_pool, data.x_val])[:, 0].tolist()) == list(range(0, 60, 3))


def test_an_image_folder_is_decoded_once_with_classes_in_sorted_order(tmp_path):
    write_image_folder(tmp_path / "imgs" / "train", {"cat": gray_images(5, 40), "ant": gray_images(4, 200)})
    write_image_folder(tmp_path / "imgs" / "test", {"cat": gray_images(2, 40, seed=9), "ant": gray_images(3, 200, seed=9)})
    raw_spec = plugin_spec(tmp_path, counts=(4,), data=f'dataset = "imagefolder"\nroot = "{tmp_path / "imgs"}"\nvalidation_size = 2', model='kind = "cnn"', space=SPACE_BASE + "conv1 = 4\nconv2 = 4\nfc1 = 8\nfc2 = 8\n")
    data = load_dataset(load_spec(raw_spec))
    assert data.input_shape == (1, 8, 8) and data.num_classes == 2 and data.pool_size == 7
    # ImageFolder numbers classes in sorted order: ant 0, cat 1; test images keep the training numbering.
    assert data.y_test.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(data.x_test[3, 0].numpy(), gray_images(2, 40, seed=9)[0].astype(np.float32))
    cache = tmp_path / "cache" / "scaling-optuna"
    assert len(list(cache.glob("imagefolder-*.npz"))) == 2  # train/ and test/
    # The second load reads the cache; a changed image is decoded again.
    again = load_dataset(load_spec(raw_spec))
    assert again.fingerprint(4) == data.fingerprint(4) and len(list(cache.glob("imagefolder-*.npz"))) == 2
    write_image_folder(tmp_path / "imgs" / "test", {"cat": [np.zeros((8, 8))]})
    changed = load_dataset(load_spec(raw_spec))
    assert changed.x_test[3, 0].sum() == 0 and len(list(cache.glob("imagefolder-*.npz"))) == 3


def test_an_image_folder_without_a_test_folder_sets_a_fraction_aside_and_mixed_colour_becomes_rgb(tmp_path):
    colour = [np.stack([img, img // 2, 255 - img], axis=2) for img in gray_images(5, 90)]
    write_image_folder(tmp_path / "imgs", {"gray": gray_images(5, 40), "colour": colour})
    spec = plugin_spec(tmp_path, counts=(4,), data=f'dataset = "imagefolder"\nroot = "{tmp_path / "imgs"}"\nvalidation_size = 2\ntest_fraction = 0.4', model='kind = "cnn"', space=SPACE_BASE + "conv1 = 4\nconv2 = 4\nfc1 = 8\nfc2 = 8\n")
    data = load_dataset(load_spec(spec))
    assert data.input_shape == (3, 8, 8) and len(data.y_test) == 4 and data.pool_size == 4
    gray = data.x_pool[data.y_pool == 1]
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])  # gray images repeat their channel


# --- Every machine runs the same code -----------------------------------------------------------


BEST_MODEL = """
import torch, scaling_optuna
from scaling_optuna.data import load_dataset
exp = scaling_optuna.load_experiment("{spec}", "{url}")
model, data = exp.best_model(20), load_dataset(exp.spec)
with torch.no_grad():
    error = float((model(data.x_test).argmax(1) != data.y_test).float().mean())
print(type(model).__name__, type(model.net[1]).__name__, error)
"""


def _package(folder: Path, version: str) -> Path:
    """The example's user package, copied as another machine would install it, at ``version``."""
    target = folder / "fashion_resnet"
    shutil.copytree(ROOT / "examples" / "fashion_resnet", target)
    init = target / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', f'__version__ = "{version}"'))
    return folder


@pytest.mark.slow
def test_plug_in_workers_on_postgres_each_with_its_own_pythonpath(tmp_path, postgres_url):
    images = {name: gray_images(12, value, side=12) for name, value in (("dark", 30), ("mid", 120), ("light", 220))}
    write_image_folder(tmp_path / "imgs", images)
    spec = tmp_path / "spec" / "resnet.toml"
    spec.parent.mkdir()
    spec.write_text(
        plugin_spec(tmp_path, name="resnet", trials=3, counts=(10, 20), epochs=2, model='builder = "fashion_resnet.model:resnet"',
                    data=f'dataset = "imagefolder"\nroot = "{tmp_path / "imgs"}"\nvalidation_size = 6',
                    space=SPACE_BASE + "width = { low = 4, high = 8 }\nblocks = { low = 1, high = 2 }\n").read_text()
        .replace('python_path = ["."]\n', "")
    )
    machines = [_package(tmp_path / f"machine{i}", "0.1.0") for i in (1, 2)]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    created = run_cli("create", str(spec), "--storage", postgres_url, env={**env, "PYTHONPATH": str(machines[0])})
    assert created.returncode == 0, created.stderr
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "scaling_optuna", "worker", str(spec), "--storage", postgres_url],
            env={**os.environ, **env, "PYTHONPATH": str(machine)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for machine in machines
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    ran = [sum(map(int, re.search(r"(\d+) complete, (\d+) pruned", out).groups())) for out, _ in outputs]
    assert sum(ran) == 6 and all(n > 0 for n in ran), outputs  # both machines trained, 3 trials for each of 2 sizes

    # The store alone is read here: this process has no fashion_resnet to import.
    exp = scaling_optuna.load_experiment(load_spec(spec), postgres_url)
    study = exp.studies[20]
    assert study.user_attrs["plugins"] == {"model.builder": {"module": "fashion_resnet.model", "version": "fashion_resnet 0.1.0"}}
    # The report and its plots in optuna-dashboard read the store alone, as for a built-in model.
    report = run_cli("report", str(spec), "--storage", postgres_url, "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    assert "(imagefolder, fashion_resnet.model:resnet)" in report.stdout and (tmp_path / "report" / "report.html").is_file()
    # best_model rebuilds the user's network through the builder, on a machine that has the package.
    rebuilt = subprocess.run(
        [sys.executable, "-c", BEST_MODEL.format(spec=spec, url=postgres_url)],
        env={**os.environ, **env, "PYTHONPATH": str(machines[1])}, capture_output=True, text=True, timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    wrapper, block, error = rebuilt.stdout.split()
    assert (wrapper, block) == ("PluginModel", "Block") and float(error) == pytest.approx(exp.best_trial(20).test_error, abs=1e-6)

    # A machine with another version of the package refuses in one line and changes nothing.
    other = _package(tmp_path / "machine3", "0.2.0")
    refused = run_cli("worker", str(spec), "--storage", postgres_url, env={**env, "PYTHONPATH": str(other)})
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model.builder: this machine has fashion_resnet.model at fashion_resnet 0.2.0"), lines
    assert "created with fashion_resnet.model at fashion_resnet 0.1.0; install that version here" in lines[0]
    assert exp.status() == scaling_optuna.load_experiment(load_spec(spec), postgres_url).status()

"""A user's plug-in package and spec, written into a folder, for the plug-in tests.

Each test writes its own module (unique names: a process imports a module once)
beside a spec whose ``python_path = ["."]`` imports it, as a user would lay them out.

Example::

    from tests.plugin_files import plugin_spec, write_module

    write_module(tmp_path, "mynet", BUILDER)
    spec = plugin_spec(tmp_path, model='builder = "mynet:net"')
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

# A small convolutional network for digits' 1×8×8 images: what a user's builder returns.
BUILDER = '''
from torch import nn


def net(input_shape, n_classes, width=8):
    channels, height, width_px = input_shape
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(width * height * width_px, n_classes)
    )
'''

SPEC = """
name = "{name}"
seed = 0
trials_per_size = {trials}
python_path = ["."]

[data]
{data}

[sizes]
counts = {counts}

[model]
{model}

[search_space]
{space}

{default_params}

[trainer]
max_epochs = {epochs}
patience = 2
batch_size = 16
{trainer}

[sampler]
name = "RandomSampler"
seed = 1

[pruner]
name = "MedianPruner"
n_startup_trials = 2

# Off: these tests are about plug-ins, and count the search's trials alone.
[remeasure]
repeats = 0
"""

SPACE = """
lr = { low = 0.05, high = 0.2, log = true }
weight_decay = 1e-5
momentum = 0.9
width = { low = 4, high = 12 }
"""


def write_module(folder: Path, name: str, source: str) -> Path:
    """The user's module ``name`` (a file, or ``name/__init__.py`` for a package with a version)."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def plugin_spec(
    folder: Path, *, name: str = "plug", trials: int = 2, counts=(40, 80), epochs: int = 3,
    data: str = 'dataset = "digits"', model: str = "", space: str = SPACE, default_params: str = "", trainer: str = "",
) -> Path:
    """A spec beside the user's modules (``python_path = ["."]``); returns its path."""
    text = SPEC.format(
        name=name, trials=trials, counts=list(counts), epochs=epochs, data=data, model=model, space=space,
        default_params=default_params, trainer=trainer,
    )
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def write_image_folder(root: Path, images: dict[str, list[np.ndarray]]) -> Path:
    """PNG files, one subfolder per class: ``images`` maps a class name to its uint8 H×W or H×W×3 arrays."""
    for label, arrays in images.items():
        folder = root / label
        folder.mkdir(parents=True, exist_ok=True)
        for number, array in enumerate(arrays):
            Image.fromarray(np.asarray(array, dtype=np.uint8)).save(folder / f"{number:03d}.png")
    return root


def gray_images(n: int, value: int, side: int = 8, seed: int = 0) -> list[np.ndarray]:
    """``n`` noisy gray images around ``value``: a class a model can tell apart by brightness."""
    rng = np.random.default_rng(seed + value)
    return [np.clip(rng.normal(value, 20, (side, side)), 0, 255).astype(np.uint8) for _ in range(n)]

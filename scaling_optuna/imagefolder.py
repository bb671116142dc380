"""Images in a folder per class, as torchvision's ``ImageFolder`` reads them, decoded once and cached.

``root/<class>/<image>`` (every class a subfolder, every image a file of a
format PIL reads) becomes an N×C×H×W uint8 array and its labels, classes
numbered in sorted order as ``ImageFolder`` numbers them. Decoding thousands of
images takes seconds, and every worker loads the data at start: the arrays are
cached as one ``.npz`` file under the user's cache folder
(``$XDG_CACHE_HOME/scaling-optuna``, else ``~/.cache/scaling-optuna``), keyed
by the tree's file names, sizes and modification times, so that a changed
image decodes again.

Example::

    from scaling_optuna.imagefolder import read_image_folder

    x, y, classes = read_image_folder("fashion-images/train")
    print(x.shape, classes[:3])      # (2000, 1, 28, 28) ['Ankle boot', 'Bag', 'Coat']
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from scaling_optuna.errors import DataError

# Bump when the decoded arrays change for the same files, so that old caches are not read.
_CACHE_VERSION = 1
# PIL modes of single-channel images; every other mode is read as RGB.
_GRAY_MODES = ("1", "L", "I", "I;16", "F")


def read_image_folder(root: str | Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The images under ``root`` (one subfolder per class) as N×C×H×W uint8, their labels, and the class names.

    ``classes`` fixes the numbering (a test folder is numbered as its
    training folder); a class folder outside it is an error.

    Raises:
        DataError: no class folder, a single class, no image in a class, an
            unreadable image, or images of different sizes.
    """
    root = Path(root)
    samples, found = _list(root)
    names = classes if classes is not None else found
    strangers = sorted(set(found) - set(names))
    if strangers:
        raise DataError(
            f"imagefolder {root}: class folder {strangers[0]!r} is not a class of the training images "
            f"({', '.join(names)}); remove it or add it to the training folder"
        )
    if classes is None and len(names) < 2:
        raise DataError(
            f"imagefolder {root}: one class folder ({', '.join(names)}); a classifier needs at least two, "
            "one subfolder of images per class"
        )
    index = {name: i for i, name in enumerate(names)}
    labels = np.array([index[found[label]] for _, label in samples], dtype=np.int64)
    cache = _cache_file(root, samples, names)
    cached = _read_cache(cache, len(samples))
    if cached is not None:
        return cached, labels, list(names)
    images = _decode(root, [path for path, _ in samples])
    _write_cache(cache, images)
    return images, labels, list(names)


def _list(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``ImageFolder``'s own listing: (path, class index) of every image file, and the class names."""
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise DataError(f"imagefolder {root}: no such folder; set data.root to the folder holding one subfolder per class")
    try:
        listing = ImageFolder(str(root), loader=lambda path: path)
    except (FileNotFoundError, OSError) as e:
        raise DataError(
            f"imagefolder {root}: {_first_line(e)}; put the images in one subfolder per class (png, jpg and what else PIL reads)"
        ) from None
    return list(listing.samples), list(listing.classes)


def _decode(root: Path, paths: list[str]) -> np.ndarray:
    from PIL import Image
    from PIL import UnidentifiedImageError

    pixels: list[np.ndarray] = []
    first_size: tuple[int, int] | None = None
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                gray = image.mode in _GRAY_MODES
                array = np.asarray(image.convert("L" if gray else "RGB"))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, zipfile.BadZipFile) as e:
            raise DataError(f"imagefolder {root}: cannot read image {path} ({_first_line(e)}); replace or remove the file") from None
        size = array.shape[:2]
        if first_size is None:
            first_size = size
        elif size != first_size:
            raise DataError(
                f"imagefolder {root}: {path} is {size[1]}×{size[0]} pixels but {paths[0]} is "
                f"{first_size[1]}×{first_size[0]}; resize the images to one size"
            )
        pixels.append(array)
    if any(a.ndim == 3 for a in pixels):
        # One colour image makes the set RGB: gray images repeat their one channel.
        pixels = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in pixels]
        return np.ascontiguousarray(np.stack(pixels).transpose(0, 3, 1, 2))
    return np.stack(pixels)[:, None, :, :]


def _cache_file(root: Path, samples: list[tuple[str, int]], classes: list[str]) -> Path:
    key = hashlib.sha256(f"{_CACHE_VERSION}\n{root.resolve()}\n{classes}\n".encode())
    for path, _ in samples:
        stat = os.stat(path)
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "scaling-optuna" / f"imagefolder-{key.hexdigest()[:24]}.npz"


def _read_cache(path: Path, count: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive["images"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # no cache yet, or a damaged one: decode again
    return images if len(images) == count and images.dtype == np.uint8 else None


def _write_cache(path: Path, images: np.ndarray) -> None:
    """Write the cache whole or not at all; a cache that cannot be written only costs the next decode."""
    partial = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(partial, images=images)
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__

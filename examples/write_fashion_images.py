"""Write Fashion-MNIST images as PNG files, one folder per class, as torchvision's ImageFolder reads them.

``OUT/train/<class>/<n>.png`` and ``OUT/test/<class>/<n>.png`` hold the first
``--train`` training and ``--test`` test images of Fashion-MNIST, read as
scaling-optuna reads it: an existing copy under ``--root``, Debian's
``dataset-fashion-mnist``, or a download. An ``OUT`` that exists is left as it
is. The folder stands for the user's own images in ``examples/fashion-resnet.toml``.

Example::

    python examples/write_fashion_images.py fashion-images --train 2000 --test 500
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from scaling_optuna.data import load_raw
from scaling_optuna.errors import UserError
from scaling_optuna.spec import DataSpec

# Fashion-MNIST's class names (torchvision's FashionMNIST.classes), usable as folder names.
CLASSES = ["T-shirt or top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def write_images(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """One PNG per N×1×28×28 image, in the folder of its class."""
    for number, (image, label) in enumerate(zip(images, labels)):
        target = folder / CLASSES[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[0]).save(target / f"{number:05d}.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the folder to write (train/ and test/ inside it)")
    parser.add_argument("--train", type=int, default=2000, help="training images (default 2000)")
    parser.add_argument("--test", type=int, default=500, help="test images (default 500)")
    parser.add_argument("--root", default="data", help="where Fashion-MNIST is, or goes when downloaded (default data)")
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"{args.out} exists; left as it is (delete it to write it again)")
        return 0
    try:
        raw = load_raw(DataSpec(dataset="fashion-mnist", root=args.root))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    partial = args.out.with_name(args.out.name + ".partial")
    write_images(partial / "train", raw.x_train[: args.train], raw.y_train[: args.train])
    write_images(partial / "test", raw.x_test[: args.test], raw.y_test[: args.test])
    partial.rename(args.out)  # whole or not at all: a stopped run leaves no half folder named OUT
    print(f"wrote {min(args.train, len(raw.y_train))} training and {min(args.test, len(raw.y_test))} test images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

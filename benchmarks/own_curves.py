"""Produce the learning curves of the project's own experiments and save them as a CSV.

Runs ``scaling-optuna run`` for ``studies/digits.toml`` and
``studies/mnist1d.toml`` (12 trials per size, 2 workers: a few minutes of CPU;
``--store-dir`` keeps and reuses the stores), builds each experiment's report
and writes every curve the report fits as rows of
``experiment, curve, metric, size, value, plateau``.

``--variants`` runs more experiments of the same specs: ``NAME:MODEL:SEED``
takes ``studies/NAME.toml`` with ``model.kind = MODEL`` (``cnn`` or ``mlp``;
the MLP drops the CNN's ``conv1``/``conv2`` widths) and ``seed = SEED`` (the
seed draws the data split, the nested subsets and the sampler), and names the
experiment ``NAME-MODEL-sSEED``.  More curves of the project's own kind, each a
real run of the project, for the benchmark of the band for a measurement.

* ``curve`` is ``tuned`` (the best trial of each size by validation loss) or
  ``untuned`` (the seed's default model, every study's first trial);
* ``metric`` is ``test_error`` or ``test_loss``;
* ``plateau`` is the majority-class error for ``test_error`` (empty for the loss);
* ``test_size`` is the number of test examples every value was measured on
  (the studies' ``test_size`` attribute).

The committed ``benchmarks/data/own-curves.csv`` was written by this script;
``benchmarks/extrapolation_lcdb.py`` reads it, so that the extrapolation
benchmark does not retrain anything.

Run::

    python benchmarks/own_curves.py [--trials 12] [--workers 2] [--store-dir DIR] [--out benchmarks/data/own-curves.csv]
        [--variants digits:cnn:1,digits:mlp:0,mnist1d:mlp:1] [--append]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from pathlib import Path

# Submodule imports: they also work where an editable install exposes the package as a namespace.
from scaling_optuna.experiment import load_experiment
from scaling_optuna.report import build_report
from scaling_optuna.report.rows import study_attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extrapolation_real import _run  # noqa: E402  (the same training run as that benchmark)
from extrapolation_real import _spec_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "own-curves.csv"
FIELDS = ("experiment", "curve", "metric", "size", "value", "plateau", "test_size")


def curves_of(spec: Path, url: str) -> list[dict[str, object]]:
    """Every (size, value) point of the tuned and untuned test-error and test-loss curves."""
    exp = load_experiment(spec, storage=url)
    report = build_report(exp)
    test_size = study_attrs(exp).get("test_size", "")
    rows: list[dict[str, object]] = []
    for metric in ("test_error", "test_loss"):
        curve = report.curves[metric]
        plateau = report.majority_error if metric == "test_error" else None
        for kind, sizes, values in (
            ("tuned", curve.sizes, curve.values),
            ("untuned", curve.baseline_sizes, curve.baseline_values),
        ):
            for size, value in zip(sizes, values):
                rows.append({"experiment": exp.spec.name, "curve": kind, "metric": metric, "size": int(size),
                             "value": repr(float(value)), "plateau": "" if plateau is None else repr(float(plateau)),
                             "test_size": test_size})
    return rows


def variant_spec(name: str, model: str, seed: int, work: Path) -> Path:
    """``studies/NAME.toml`` with another model kind and seed, written into ``work``."""
    if model not in ("cnn", "mlp"):
        raise SystemExit(f"variant {name}:{model}:{seed}: the model must be cnn or mlp")
    text = _spec_path(name, work).read_text()
    text = re.sub(r'(?m)^name = ".*"$', f'name = "{name}-{model}-s{seed}"', text, count=1)
    text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text, count=1)
    text = re.sub(r'(?m)^kind = ".*"$', f'kind = "{model}"', text, count=1)
    if model == "mlp":
        text = re.sub(r"(?m)^conv[12] = .*\n", "", text)
    path = work / f"{name}-{model}-s{seed}.toml"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per size (default 12, the shipped specs' budget)")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default 2)")
    parser.add_argument("--store-dir", type=Path, help="keep the stores (and the mnist1d data) here and reuse them")
    parser.add_argument("--experiments", default="digits,mnist1d", help="comma-separated: digits, mnist1d")
    parser.add_argument("--variants", default="", help="comma-separated NAME:MODEL:SEED, e.g. digits:mlp:1 (see above)")
    parser.add_argument("--append", action="store_true", help="add the rows to --out instead of rewriting it")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"CSV to write (default {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    work = args.store_dir or Path(tempfile.mkdtemp(prefix="own-curves-"))
    work.mkdir(parents=True, exist_ok=True)
    specs = [(name, _spec_path(name, work)) for name in args.experiments.split(",") if name]
    for variant in filter(None, args.variants.split(",")):
        try:
            name, model, seed = variant.split(":")
            specs.append((f"{name}-{model}-s{int(seed)}", variant_spec(name, model, int(seed), work)))
        except ValueError:
            raise SystemExit(f"--variants: {variant!r} is not NAME:MODEL:SEED (e.g. digits:mlp:1)") from None
    rows: list[dict[str, object]] = []
    for name, spec in specs:
        url = f"sqlite:///{work / f'{name}.db'}"
        seconds = _run(spec, url, args.trials, args.workers, work)
        print(f"{name}: trained in {seconds:.0f} s ({args.trials} trials per size, {args.workers} workers)", flush=True)
        rows += curves_of(spec, url)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    append = args.append and args.out.is_file()
    with args.out.open("a" if append else "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if not append:
            writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} points written to {args.out}; stores in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""More data or a better model: experiments compared on one data ladder, with what each costs.

Two or more experiments that share their data and seed (so their nested
subsets are the same: the studies' fingerprints are checked) but differ in
anything else — model, search space, trainer — are fitted as the report fits
one, and every one after the first is set against the first:

* the **paired differences** of their test errors at the sizes both measured,
  "B is better at 4,000 examples" only where the 95 % interval excludes 0;
* the **data-equivalent factor** k: B with m examples matches A with k·m,
  at every measured size and at 2× and 10× the largest, with its interval;
* where the curves **cross**, and which is better past it;
* for a **target** error, the examples each needs and, with prices, the
  cheapest way there (more data for A, switching to B, or both), and a
  **collection plan** for the next round.

Modules, each depending only on those above it:

========================  ==========================================================
``records``               the numbers as plain records, and their JSON form
``draws``                 a fitted curve's band as curves one can draw and invert
``pairs``                 paired differences, data-equivalent factors, the crossing
``costs``                 training compute from the trials' durations; prices; the ways to a target
``plan``                  the next round of data collection, with its margin
``text``                  the terminal text and the Markdown note
``figures``               the plotly figure
``page``                  the self-contained HTML page
``build``                 :class:`Comparison` and :func:`compare_experiments`
``output``                :func:`write_comparison`
========================  ==========================================================

Example::

    import scaling_optuna

    comparison = scaling_optuna.compare_experiments(["studies/digits.toml", "studies/digits-mlp.toml"], target=0.02)
    print(comparison.to_text())
    scaling_optuna.write_comparison(comparison, "compare-digits")   # compare.json and compare.html
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scaling_optuna._lazy import lazy_names

if TYPE_CHECKING:
    from scaling_optuna.compare.build import Comparison
    from scaling_optuna.compare.build import compare_experiments
    from scaling_optuna.compare.output import COMPARE_FILES
    from scaling_optuna.compare.output import comparison_files
    from scaling_optuna.compare.output import write_comparison

# Imported on first use, as the report is: the fits load SciPy and the figures plotly.
_LAZY = {
    "COMPARE_FILES": "output",
    "comparison_files": "output",
    "Comparison": "build",
    "compare_experiments": "build",
    "write_comparison": "output",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names("scaling_optuna.compare", _LAZY, globals())

"""A learning curve given as numbers, fitted and described like the report does (``scaling-optuna fit``).

Example::

    from scaling_optuna.report.summary import curve_summary

    print(curve_summary([100, 200, 400, 800], [0.5, 0.36, 0.27, 0.2], target=0.1))
"""

from __future__ import annotations

from typing import Sequence

from scaling_optuna.report._format import band
from scaling_optuna.report._format import count
from scaling_optuna.report._format import value
from scaling_optuna.report.curves import fit_numbers
from scaling_optuna.report.curves import validate_target
from scaling_optuna.report.text import fit_method_lines

__all__ = ["curve_summary"]


def curve_summary(
    sizes: Sequence[float],
    values: Sequence[float],
    *,
    target: float | None = None,
    plateau: float | None = None,
    form: str = "auto",
    n_bootstrap: int = 1000,
) -> str:
    """The law, its plateau, the curve at 2× and 10× the largest size, the naive line and the target.

    Raises:
        UserError: bad sizes, values, target, plateau or form (see
            :func:`~scaling_optuna.fit.fit_scaling_law`).
    """
    target_value = validate_target(target, error=False)
    curve = fit_numbers(sizes, values, form=form, plateau=plateau, n_bootstrap=n_bootstrap)
    fit = curve.fit
    lines = [f"{fit}   [{fit.form} law, {len(fit.sizes_used)} sizes]"]
    lines += [f"  {line}" for line in fit_method_lines(fit)]
    if fit.sizes_excluded:
        lines.append(f"  left out as the small-data plateau: {', '.join(f'{s:g}' for s in fit.sizes_excluded)}")
    for p in curve.predictions:
        lines.append(f"  {p.multiple:g}× the largest size ({count(p.size)}): {value(p.mean)}{band(p.lower, p.upper, '')}")
    if curve.naive is not None:
        lines.append(f"  naive log-log line: {curve.naive}")
    if target_value is not None:
        lines.append("  " + fit.data_needed(target_value).message)
    return "\n".join(lines)

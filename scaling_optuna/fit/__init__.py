"""Fit a learning curve ε(m) ≈ α·m^β + γ and say what more data buys.

Following Hestness et al. (2017), "Deep Learning Scaling is Predictable,
Empirically": the best model's test error on nested training subsets of size
``m`` follows a power law ``α·m^β`` (β < 0) that levels off at an irreducible
error ``γ``; at the smallest sizes it sits on a flat "best guess" plateau.
:func:`fit_scaling_law` returns a :class:`ScalingLawFit` holding two objects:

* the **law** (its exponent is what a user reads), fitted in log space to the
  points after the plateau, with bootstrap intervals;
* the **predictor** behind every answer, :meth:`ScalingLawFit.predict` ("what
  do 2× or 10× more data buy") and :meth:`ScalingLawFit.data_needed` ("how
  much data does a target error need"): a calibrated ensemble of curve
  families for ``form="auto"``, the law itself for an explicit form or a
  curve that rises.  ``str(fit)`` names it and the level it flattens at.

:func:`fit_least_squares` and :func:`fit_log_log_line` are the baselines it
is measured against (``benchmarks/extrapolation_lcdb.py``).

Example::

    from scaling_optuna.fit import fit_scaling_law

    sizes = [128, 256, 512, 1024, 2048, 4096, 8192]
    errors = [0.90, 0.90, 0.52, 0.38, 0.29, 0.23, 0.19]
    fit = fit_scaling_law(sizes, errors, plateau=0.9)
    print(fit)                       # ε(m) = ...·m^-0.5 + ...  and what predicts
    print(fit.sizes_excluded)        # (128.0, 256.0): the best-guess plateau
    print(fit.predict([16384, 81920]).mean)
    print(fit.data_needed(0.12).message)

The rules, each where the code is:

* **Plateau** (:func:`._power_law.detect_plateau`): only for falling curves, a
  leading run of points, at least 3 (4 for ``form="saturating"``) left, the
  rest still falling.  Candidates are the leading points within 5 % of
  ``plateau`` (or above it) and those whose log-drop below the first value is
  under 10 % of the curve's total; one is confirmed when it lies below the
  log-log line of the later points by more than ``max(2.5·s, 0.05)``, or with
  ``plateau`` when it is on it (≥ ``P``, or ≥ ``0.95·P`` and closer to ``P``
  than to that line).  Without ``plateau`` a single point is never a plateau.
* **Law's form** (:func:`._power_law.choose_form`): a rising curve and a falling
  one with 3–4 points get ``α·m^β``; with ≥ 5 points ``α·m^β + γ`` when the
  boundary-corrected F-test of γ = 0 in log space gives ``p < 0.2`` and γ is at
  least 2 % of the smallest fitted value.
* **Law's intervals** (:func:`._law.fit_law`): percentile bootstrap with the
  plateau held fixed; residuals in log space inflated by ``sqrt(n/(n−p))``
  and scaled per replicate by ``sqrt(dof/χ²)`` (Student-t-like on short
  curves); with ≥ 5 points under ``form="auto"`` every replicate, drawn from
  the saturating fit, re-chooses its form; with ``groups`` the per-size
  deviations of alternative values (the near-best trials) are resampled.
* **Predictor** (:mod:`._ensemble`, :mod:`._families`): the families ``pow3``,
  ``pow4``, ``ilog2`` and ``vap3`` fitted with the points weighted by
  ``(m/m_max)^p``, their misfit-tilted mean combined as a geometric mean
  with the plain least-squares law, none below the log-log line through the
  last point; constants from :mod:`._calibration`, written by
  ``benchmarks/calibrate_fit.py`` from the LCDB and neural dev curves.
  Every family is non-increasing and counts sizes relative to the fitted
  ones, so more data never looks harmful and the unit of the sizes does not
  matter.  With ``plateau`` nothing is predicted above it.
* **Band** (:mod:`._band`): conformalised quantile regression conditioned on
  the curve (distance beyond the data, its own backtest, the families'
  disagreement, scatter, number of points); :meth:`ScalingLawFit.band_reasons`
  says why it is as wide as it is.  ``value_sd`` (each point's standard
  error, e.g. from repeated runs) widens it by the points' noise
  (:mod:`._noise`); ``include_noise=True`` gives the band for one new
  measurement instead of the curve.
* **Answers** (:mod:`._result`): searched from the smallest fitted size on
  (nothing is said of smaller sets); a level the predictor flattens at above
  the target means "never" with this model.  ``to_dict`` writes ``inf`` as
  ``"inf"`` and NaN as ``None``.
"""

from scaling_optuna.fit._api import FORMS
from scaling_optuna.fit._api import fit_least_squares
from scaling_optuna.fit._api import fit_log_log_line
from scaling_optuna.fit._api import fit_scaling_law
from scaling_optuna.fit._families import FAMILIES
from scaling_optuna.fit._noise import point_sd
from scaling_optuna.fit._result import DataNeeded
from scaling_optuna.fit._result import Prediction
from scaling_optuna.fit._result import ScalingLawFit

__all__ = [
    "DataNeeded",
    "FAMILIES",
    "FORMS",
    "Prediction",
    "ScalingLawFit",
    "fit_least_squares",
    "fit_log_log_line",
    "fit_scaling_law",
    "point_sd",
]

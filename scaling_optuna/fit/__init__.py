"""Fit a learning curve ε(m) ≈ α·m^β + γ and say what more data buys.

Following Hestness et al. (2017), "Deep Learning Scaling is Predictable,
Empirically": the best model's test error on nested training subsets of size
``m`` follows a power law ``α·m^β`` (β < 0) that levels off at an irreducible
error ``γ``; at the smallest sizes it sits on a flat "best guess" plateau.
:func:`fit_scaling_law` fits that *law* (its exponent is what a user reads),
and predicts with a *predictor* calibrated on real learning curves: "what does
2× or 10× more data buy" (:meth:`ScalingLawFit.predict`) and "how much data
does a target error need" (:meth:`ScalingLawFit.data_needed`).
:func:`fit_least_squares` and :func:`fit_log_log_line` are the two baselines
it is measured against (``benchmarks/extrapolation_lcdb.py``).

Example::

    from scaling_optuna.fit import fit_scaling_law

    sizes = [128, 256, 512, 1024, 2048, 4096, 8192]
    errors = [0.90, 0.90, 0.52, 0.38, 0.29, 0.23, 0.19]
    fit = fit_scaling_law(sizes, errors, plateau=0.9)
    print(fit)                       # ε(m) = ...·m^-0.5 + ...  (β 95% CI ...)
    print(fit.sizes_excluded)        # (128.0, 256.0): the best-guess plateau
    print(fit.method)                # weighted ensemble of pow3 ..., pow4 ...
    print(fit.predict([16384, 81920]).mean)
    print(fit.data_needed(0.12).message)

Design decisions (the rules the code follows).  The law:

* **Fitting** is done in log space: minimise ``Σ (log y − log f(m))²``.  The
  ``"power"`` form ``α·m^β`` is then ordinary least squares of ``log y`` on
  ``log m`` (β may have either sign, so increasing laws such as parameter count
  vs. data are supported).  The ``"saturating"`` form ``α·m^β + γ`` is fitted
  with ``-4 ≤ β ≤ -1e-4`` and ``0 ≤ γ ≤ min(y)``, starting from a grid over
  (β, γ) with log α solved in closed form for each grid point, refined by a
  bounded Levenberg–Marquardt (vectorised over bootstrap replicates) and, for
  the point estimate, by :func:`scipy.optimize.least_squares`.
* **Plateau rule** (only for decreasing curves; the excluded points are always
  a leading run; at least 3 points — 4 for ``form="saturating"`` — remain,
  and the remaining points must still decrease overall).  Candidates are the
  longer of two leading runs:

  - with ``plateau=P``: the leading points whose value is ≥ ``0.95·P``
    (within 5 % of the best-guess error, or above it);
  - always: the leading points whose log-drop below the first value is less
    than 10 % of the curve's total log-drop (``log y₀ − log min y``), if there
    are at least two of them.

  A straight log-log line is fitted to the points after the candidate run and
  extrapolated back.  A candidate point is confirmed as plateau if it lies
  below that line by more than ``max(2.5·s, 0.05)`` in log units (``s`` the
  line's residual std: a start that is flat only by noise is kept); with
  ``plateau=P`` also if its value is ≥ ``P``, or ≥ ``0.95·P`` and closer (in
  log) to ``P`` than to the line (so a transition point already on the law is
  kept).  Everything up to the last confirmed point is excluded; without the
  ``plateau`` rule a single point is never a plateau.  ``excluded_reason``
  names the sizes and the rule.
* **Auto form rule** (``form="auto"``): an increasing curve (log-log slope
  > 0) gets ``"power"``.  A decreasing curve with 3 or 4 used points gets
  ``"power"`` (with 3 points only the power law is identifiable, and with 4 the
  3-parameter law has a single residual degree of freedom, so it cannot be
  validated).  With ≥ 5 points both forms are fitted and ``"saturating"`` is
  chosen when the nested F-test of γ = 0 in log space (boundary-corrected:
  ``p = ½·P(F(1, n−3) > F)``) gives ``p < 0.2`` *and* the fitted γ is at
  least 2 % of the smallest fitted value (a γ smaller than that cannot matter
  for any practical extrapolation, and the floor makes clean power laws come
  out as ``"power"`` deterministically).  ``form_scores`` reports the two
  forms' log-space residual std and ``p_value_gamma_zero``.  A leave-last-out
  (rolling-origin) prediction score was tried first and discarded: with 6–9
  points the saturating law refitted on 4–6 points extrapolates too wildly to
  score fairly, and it picked the wrong form far more often than the test.
  Because the choice is uncertain on short noisy curves, the bootstrap
  re-makes it in every replicate (see Intervals).
* **Intervals**: percentile bootstrap with the excluded points held fixed.
  The form is held fixed too, except for ``form="auto"`` with ≥ 5 points:
  then replicates are generated from the saturating fit (the larger model)
  and each replicate re-chooses its form by the rule above, so the bands
  include the uncertainty of the choice (without this, a saturating curve
  that happened to be fitted as a power law got 40 % coverage instead of 95 %).
  Without ``groups``: residual bootstrap in log space — centred
  residuals inflated by ``sqrt(n/(n−p))`` and, per replicate, multiplied by
  ``sqrt(dof/χ²_dof)`` so that the uncertainty of the noise level on short
  curves is propagated (this turns the normal-theory interval into a
  Student-t-like one; without it 6–9-point curves under-cover badly).  With
  ``groups`` (each entry: alternative values of the same kind as ``values``,
  e.g. the test errors of the top-k trials at that size): each replicate
  perturbs every used value by a log-deviation drawn from that size's group
  (centred on the group's mean log value, scaled by ``sqrt(k/(k−1))``; sizes
  with a single alternative draw from the pooled deviations of all groups).

The predictor:

* **Which**: with ``form="auto"`` a calibrated ensemble of curve families
  (below); with an explicit ``form`` the law itself (the user chose the
  model); for a curve that clearly rises (log-log slope > 0 at one-sided
  p < 0.05, e.g. parameter count against data) the law, as the ensemble holds
  only falling curves; with too few points for any family, the law.  If every
  family fails to fit, the prediction is the last observed value, and
  ``fallback`` says so.  ``family_weights``, ``method`` and ``band_method``
  say which it was.
* **Ensemble** (:mod:`._ensemble`, :mod:`._families`): the families ``pow2``,
  ``pow3``, ``pow4``, ``mmf4``, ``wbl4``, ``exp3``, ``ilog2``, ``vap3`` and
  ``logpower`` of the learning-curve literature, each fitted to the points
  after the plateau in log space (soft-L1 loss) with the points weighted by
  ``(m / m_max)^p``; their weighted mean (a family's weight lowered when it
  follows the observed points worse than the best family does) is combined,
  as a geometric mean with calibrated weight ``g``, with the plain
  least-squares law fitted to every point off the best-guess plateau, so
  that no family carries the prediction far from what the plain power law
  supports.  With the floor guard, no family predicts below the log-log line
  through the last point at the points' own slope.  Every family is
  non-increasing and counts sizes relative to the fitted ones (so the unit
  sizes come in does not matter), so more data never looks harmful, and with
  ``plateau`` nothing is predicted above it.  The family weights, ``p``, the
  loss and the tilt were chosen by ``benchmarks/calibrate_fit.py`` on the
  LCDB dev curves of datasets with an even OpenML id, ``g`` and the guard on
  those and on the calibration half of the neural dev curves
  (:mod:`._calibration`); BENCHMARKS.md records what was tried and what it
  measured on the other datasets and tasks.
* **Band**: conformalised quantile regression.  Its log scale below and above
  the prediction grows with the distance beyond the data and is conditioned
  on the curve: its own within-curve backtest error, the families'
  disagreement with each other and with the plain law, the points' scatter
  and their number; the two scale models were fitted to the 2.5 % and 97.5 %
  quantiles of the calibration errors, and a conformal multiplier, taken so
  that it holds over resampled datasets and tasks, makes the band hold its
  confidence (BENCHMARKS.md gives what it held on datasets and tasks it never
  saw, and its width).  :meth:`ScalingLawFit.band_reasons` says in words why
  a band is as wide as it is.  The upper edge may rise beyond the data (real
  curves sometimes do).  Bands need ``n_bootstrap > 0`` (with ``0``: point
  estimates only, like the law's intervals).  ``include_noise=True`` gives
  the band for one new *measurement* rather than the mean curve
  (:mod:`._noise`): widened, in quadrature on the log scale, by the run-to-run
  scatter of the fitted points (the larger of the residual and the
  second-difference estimate) and, with ``test_size=n`` for an error rate,
  by the binomial noise ``sqrt(p(1−p)/n)`` of the test set at the predicted
  error.
* **Duplicate sizes** are rejected: pass one value per size (e.g. the best
  trial) and give alternative values through ``groups``.
* **JSON**: :meth:`ScalingLawFit.to_dict` writes ``float('inf')`` as the string
  ``"inf"`` (``"-inf"``) and NaN as ``None``.
"""
from scaling_optuna.fit._api import FORMS
from scaling_optuna.fit._api import fit_least_squares
from scaling_optuna.fit._api import fit_log_log_line
from scaling_optuna.fit._api import fit_scaling_law
from scaling_optuna.fit._families import FAMILIES
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
]

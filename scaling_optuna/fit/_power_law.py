"""The law ε(m) = α·m^β + γ behind :func:`scaling_optuna.fit.fit_scaling_law`: fit, plateau, form, bootstrap.

Private: the rules in words live in the docstring of :mod:`scaling_optuna.fit`
(what the plateau rule, the auto form rule and the bootstrap do; this module
does it).

Everything here works in log space on centred coordinates: parameters are
``(c, beta, gamma)`` with ``f(m) = exp(c + beta·x) + gamma`` and
``x = log m − log_ref``, and a batch of fits is an array of shape (B, 3), one
row per bootstrap replicate, so that refining a thousand replicates costs a
few vectorised Levenberg–Marquardt steps instead of a thousand scipy calls.

Example::

    import numpy as np
    from scaling_optuna.fit import _power_law

    lx = np.log([100.0, 200, 400, 800, 1600]) - np.log(400.0)
    ly = np.log([0.52, 0.38, 0.29, 0.23, 0.19])
    params, sse = _power_law.fit_point("saturating", lx, ly)
    _power_law.curve(params[None, :], lx)   # the fitted values, shape (1, 5)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

_BETA_LO = -4.0  # steepest saturating exponent allowed
_BETA_HI = -1e-4  # flattest (must stay strictly negative)
_PLATEAU_TOL = 0.05  # relative distance to the given plateau counted as "on it"
_FLAT_FRACTION = 0.10  # fraction of the total log-drop counted as "not meaningful"
_FLAT_SIGMAS = 2.5  # back-extrapolation deficit (in residual SDs) that confirms a flat run
_FLAT_MIN_DEFICIT = 0.05  # ... and at least this much in log units
_AUTO_ALPHA = 0.2  # auto picks "saturating" when the test of gamma = 0 has p < this
_AUTO_MIN_GAMMA = 0.02  # ... and its gamma is at least 2 % of the smallest value fitted
_MIN_AUTO_POINTS = 5  # fewer points than this: "auto" takes the power law
EXP_CLIP = 700.0  # exp() overflows float64 just above 709

# Start grid for the saturating fit: β (denser near 0) × γ as a fraction of min(y).
_BETA_GRID = -np.geomspace(0.01, 3.5, 22)
_GAMMA_FRACTIONS = np.array([0.0, 0.25, 0.5, 0.7, 0.82, 0.9, 0.95, 0.98, 0.995])


# ---------------------------------------------------------------------------
# Plateau and form choice
# ---------------------------------------------------------------------------


def ols_slope(lx: np.ndarray, ly: np.ndarray) -> float:
    """Least-squares slope of ``ly`` on ``lx`` (0 when ``lx`` has no spread)."""
    x = lx - lx.mean()
    sxx = float(np.dot(x, x))
    return float(np.dot(x, ly - ly.mean()) / sxx) if sxx > 0 else 0.0


def rises(lx: np.ndarray, ly: np.ndarray, p_value: float) -> bool:
    """Whether ``ly`` rises with ``lx``: a positive least-squares slope, one-sided p < ``p_value``.

    A curve that is flat up to noise does not rise; an exact rising line does.
    """
    slope = ols_slope(lx, ly)
    if slope <= 0:
        return False
    n = len(lx)
    if n < 3:
        return True
    x = lx - lx.mean()
    resid = ly - ly.mean() - slope * x
    s2 = float(np.dot(resid, resid)) / (n - 2)
    if s2 <= 1e-24:
        return True
    t = slope / math.sqrt(s2 / float(np.dot(x, x)))
    return bool(stats.t.sf(t, n - 2) < p_value)


def detect_plateau(
    m: np.ndarray, y: np.ndarray, plateau: float | None, decreasing: bool, min_keep: int
) -> tuple[int, str]:
    """Number of leading points to exclude and why (the plateau rule of :mod:`scaling_optuna.fit`)."""
    n = len(y)
    if not decreasing or n <= min_keep:
        return 0, ""
    k_plateau = _on_plateau(y, plateau)
    k_flat = _flat_candidates(np.log(y))
    cand = min(max(k_plateau, k_flat), n - min_keep)
    k = _confirmed(np.log(m), y, plateau, cand) if cand > 0 else 0
    if k_plateau < k < 2:
        k = 0  # without the plateau rule a single point is never a plateau
    while k > 0 and ols_slope(np.log(m[k:]), np.log(y[k:])) > 0:
        k -= 1  # the kept points must still decrease overall
    if k == 0:
        return 0, ""
    if k_plateau >= k and plateau is not None:
        why = f"on the best-guess plateau {plateau:g} (value within {_PLATEAU_TOL:.0%} of it, or above)"
    else:
        why = f"not meaningfully below the first value {y[0]:.3g} and below the power law of the later points extrapolated back"
    capped = " (capped so that enough points remain)" if cand < max(k_plateau, k_flat) else ""
    return k, f"small-data plateau: sizes {', '.join(f'{s:g}' for s in m[:k])}: {why}{capped}"


def _on_plateau(y: np.ndarray, plateau: float | None) -> int:
    """Leading points within 5 % of the best-guess error, or above it (0 without one)."""
    k = 0
    while plateau is not None and k < len(y) and y[k] >= (1.0 - _PLATEAU_TOL) * plateau:
        k += 1
    return k


def _confirmed(lm: np.ndarray, y: np.ndarray, plateau: float | None, cand: int) -> int:
    """How many of the ``cand`` leading candidates are confirmed as plateau: up to the last confirmed one.

    A candidate is confirmed when it lies below the later points' log-log line
    extrapolated back by more than the threshold; with ``plateau`` also when
    it is on the best-guess error (≥ it, or within the tolerance and closer
    to it than to that line: a transition point already on the law is kept).
    """
    ly = np.log(y)
    deficit, threshold = _back_extrapolation_deficit(lm, ly, cand)
    confirmed = deficit > threshold
    if plateau is not None:
        on_law = ly[:cand] + deficit
        near = (y[:cand] >= (1.0 - _PLATEAU_TOL) * plateau) & (np.abs(ly[:cand] - math.log(plateau)) < np.abs(ly[:cand] - on_law))
        confirmed |= near | (y[:cand] >= plateau)
    hits = np.flatnonzero(confirmed)
    return int(hits[-1]) + 1 if hits.size else 0


def _flat_candidates(ly: np.ndarray) -> int:
    """Leading points whose log-drop below the first is < 10 % of the total log-drop (0 if < 2)."""
    n = len(ly)
    total_drop = ly[0] - ly.min()
    if total_drop <= 0:
        return 0
    k = 0
    while k < n and ly[0] - ly[k] < _FLAT_FRACTION * total_drop:
        k += 1
    return k if k >= 2 else 0


def _back_extrapolation_deficit(lm: np.ndarray, ly: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """How far each of the first ``k`` points lies below the log-log line of the later points.

    Returns the log deficits (positive: the point is lower than the later
    points' power law predicts, as on a plateau) and the threshold
    ``max(2.5·s, 0.05)`` with ``s`` that line's residual std.
    """
    x, v = lm[k:], ly[k:]
    slope = ols_slope(x, v)
    icpt = v.mean() - slope * x.mean()
    resid = v - (icpt + slope * x)
    s = math.sqrt(float(np.dot(resid, resid)) / (len(v) - 2)) if len(v) > 2 else 0.0
    deficit = (icpt + slope * lm[:k]) - ly[:k]
    return deficit, max(_FLAT_SIGMAS * s, _FLAT_MIN_DEFICIT)


def _gamma_p_value(sse_power: np.ndarray, sse_sat: np.ndarray, n: int) -> np.ndarray:
    """p-value of the test "gamma = 0" (power law) against the saturating law.

    Nested F-test in log space with the boundary correction for gamma ≥ 0:
    under gamma = 0 the estimate sits on the boundary half of the time, so
    ``p = ½·P(F(1, n−3) > F)``.  Residual variances below (1e-6)² count as
    numerical noise, so exact power-law data never looks saturating.
    """
    dof = n - 3
    num = np.maximum(np.asarray(sse_power, float) - np.asarray(sse_sat, float), 0.0)
    den = np.maximum(np.asarray(sse_sat, float) / dof, 1e-12)
    f = num / den
    return 0.5 * stats.f.sf(f, 1, dof)


def choose_form(
    lx: np.ndarray, ly: np.ndarray, decreasing: bool
) -> tuple[str, dict[str, float], np.ndarray | None, np.ndarray | None]:
    """Auto form choice; also returns both point fits when both were made."""
    n = len(lx)
    if not decreasing or ols_slope(lx, ly) > 0 or n < _MIN_AUTO_POINTS:
        return "power", {}, None, None
    pp, sse_p = fit_point("power", lx, ly)
    ps, sse_s = fit_point("saturating", lx, ly)
    pv = float(_gamma_p_value(sse_p, sse_s, n))
    scores = {
        "power": math.sqrt(sse_p / (n - 2)),
        "saturating": math.sqrt(sse_s / (n - 3)),
        "p_value_gamma_zero": pv,
    }
    chosen = "saturating" if pv < _AUTO_ALPHA and ps[2] >= _AUTO_MIN_GAMMA * math.exp(ly.min()) else "power"
    return chosen, scores, pp, ps


def fit_batch_auto(lx: np.ndarray, ly: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Fit both forms to every row and keep, per row, the one the auto rule picks (``start``: see :func:`fit_batch`)."""
    n = len(lx)
    pw = fit_batch("power", lx, ly)
    st = fit_batch("saturating", lx, ly, start)
    sse_p = ((ly - np.log(curve(pw, lx))) ** 2).sum(axis=1)
    sse_s = ((ly - np.log(curve(st, lx))) ** 2).sum(axis=1)
    sse_s = np.where(np.isfinite(sse_s), sse_s, np.inf)
    pick = (_gamma_p_value(sse_p, sse_s, n) < _AUTO_ALPHA) & (st[:, 2] >= _AUTO_MIN_GAMMA * np.exp(ly.min(axis=1)))
    return np.where(pick[:, None], st, pw)


# ---------------------------------------------------------------------------
# Curves and fits
# ---------------------------------------------------------------------------


def curve(params: np.ndarray, lx: np.ndarray) -> np.ndarray:
    """Curve values, shape (B, len(lx)), for params of shape (B, 3)."""
    e = params[:, 0:1] + params[:, 1:2] * np.asarray(lx)[None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.exp(np.clip(e, -EXP_CLIP, EXP_CLIP)) + params[:, 2:3]


def quantiles(samples: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentiles along axis 0 that tolerate inf (nearest-rank)."""
    s = np.sort(samples, axis=0)
    b = s.shape[0]
    lo = s[int(math.floor(q * (b - 1)))]
    hi = s[int(math.ceil((1.0 - q) * (b - 1)))]
    return lo.astype(float), hi.astype(float)


def fit_point(form: str, lx: np.ndarray, ly: np.ndarray) -> tuple[np.ndarray, float]:
    """Point estimate (c, beta, gamma) and the log-space SSE."""
    if form == "power":
        p = fit_batch("power", lx, ly[None, :])[0]
    else:
        p = _fit_saturating_point(lx, ly)
    r = ly - np.log(curve(p[None, :], lx)[0])
    return p, float(np.dot(r, r))


def fit_batch(form: str, lx: np.ndarray, ly: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Fit every row of ``ly`` (shape (B, n)); returns params (B, 3).

    ``start`` (the fit the rows were resampled around) replaces the grid of
    starting points of the saturating form: a bootstrap replicate sits close
    to it, and the grid would cost more than the refinement.
    """
    if form == "power":
        xm = lx.mean()
        x = lx - xm
        sxx = float(np.dot(x, x))
        ybar = ly.mean(axis=1)
        b = (ly - ybar[:, None]) @ x / sxx if sxx > 0 else np.zeros(len(ly))
        c = ybar - b * xm
        return np.column_stack([c, b, np.zeros(len(ly))])
    if start is None:
        theta, lo, hi = _saturating_grid_start(lx, ly)
    else:
        lo, hi = _saturating_bounds(ly)
        theta = np.clip(np.broadcast_to(np.asarray(start, dtype=float), lo.shape), lo, hi)
    theta, _ = _lm_saturating(lx, ly, theta, lo, hi)
    return theta


def _saturating_bounds(ly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ymin = np.exp(ly.min(axis=1))
    lo = np.column_stack([ly.min(axis=1) - 40.0, np.full(len(ly), _BETA_LO), np.zeros(len(ly))])
    hi = np.column_stack([ly.max(axis=1) + 10.0, np.full(len(ly), _BETA_HI), ymin])
    return lo, hi


def _saturating_grid_start(
    lx: np.ndarray, ly: np.ndarray, n_best: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best grid start(s): for each (beta, gamma) on a grid, log alpha in closed form."""
    bsz = ly.shape[0]
    y = np.exp(ly)
    ymin = y.min(axis=1)
    gam = ymin[:, None] * _GAMMA_FRACTIONS[None, :]  # (B, G)
    lres = np.log(y[:, None, :] - gam[:, :, None])  # (B, G, n)
    # c = mean(log(y - gamma) - beta·x)  (closed form for given beta, gamma)
    c = lres.mean(axis=2)[:, None, :] - _BETA_GRID[None, :, None] * lx.mean()  # (B, K, G)
    e = c[..., None] + _BETA_GRID[None, :, None, None] * lx[None, None, None, :]
    with np.errstate(over="ignore"):
        pred = np.log(np.exp(np.clip(e, -EXP_CLIP, EXP_CLIP)) + gam[:, None, :, None])
    sse = ((ly[:, None, None, :] - pred) ** 2).sum(axis=3)  # (B, K, G)
    sse = np.where(np.isfinite(sse), sse, np.inf)
    flat = sse.reshape(bsz, -1)
    lo, hi = _saturating_bounds(ly)
    kg = len(_GAMMA_FRACTIONS)
    if n_best == 1:
        best = np.argmin(flat, axis=1)[:, None]
    else:
        best = np.argsort(flat, axis=1)[:, :n_best]
    rows = np.arange(bsz)[:, None]
    ki, gi = np.divmod(best, kg)
    theta = np.stack([c[rows, ki, gi], _BETA_GRID[ki], gam[rows, gi]], axis=2)  # (B, n_best, 3)
    if n_best == 1:
        theta = theta[:, 0, :]
    else:
        theta = theta.reshape(-1, 3)
        lo, hi = np.repeat(lo, n_best, axis=0), np.repeat(hi, n_best, axis=0)
    theta = np.clip(theta, lo, hi)
    theta = np.where(np.isfinite(theta), theta, 0.5 * (lo + hi))
    return theta, lo, hi


def _sat_residuals(lx: np.ndarray, ly: np.ndarray, theta: np.ndarray):
    e = np.clip(theta[:, 0:1] + theta[:, 1:2] * lx[None, :], -EXP_CLIP, EXP_CLIP)
    p = np.exp(e)
    yh = p + theta[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ly - np.log(yh)
    return r, p, yh


def _lm_saturating(
    lx: np.ndarray, ly: np.ndarray, theta: np.ndarray, lo: np.ndarray, hi: np.ndarray, iters: int = 40
) -> tuple[np.ndarray, np.ndarray]:
    """Bounded Levenberg–Marquardt on the log-space SSE, vectorised over rows.

    A row leaves the batch once it has converged (no improvement and a large
    damping), so a thousand bootstrap replicates cost what the slow few cost.
    """
    if ly.shape[0] != theta.shape[0]:
        ly = np.repeat(ly, theta.shape[0] // ly.shape[0], axis=0)
    theta = theta.copy()
    lam = np.full(ly.shape[0], 1e-3)
    r, p, yh = _sat_residuals(lx, ly, theta)
    sse = np.einsum("bn,bn->b", r, r)
    sse = np.where(np.isfinite(sse), sse, np.inf)
    active = np.arange(ly.shape[0])
    for _ in range(iters):
        if active.size == 0:
            break
        step = _lm_step(lx, ly[active], theta[active], r[active], p[active], yh[active], sse[active],
                        lam[active], lo[active], hi[active])
        ok, new, r2, p2, yh2, sse2, improvement = step
        rows = active[ok]
        theta[rows], r[rows], p[rows], yh[rows], sse[rows] = new[ok], r2[ok], p2[ok], yh2[ok], sse2[ok]
        lam[active] = np.clip(np.where(ok, lam[active] * 0.3, lam[active] * 4.0), 1e-9, 1e9)
        done = (improvement <= 1e-12 * (sse[active] + 1e-12)) & (lam[active] > 1e3)
        active = active[~done]
    return theta, sse


def _lm_step(lx, ly, theta, r, p, yh, sse, lam, lo, hi):
    """One damped Gauss–Newton step for every row; returns which rows improved and their new state."""
    tiny = 1e-12
    inv = 1.0 / yh
    jac = np.stack([p * inv, p * lx[None, :] * inv, inv], axis=2)  # d log f / d theta
    grad = np.einsum("bnk,bn->bk", jac, r)
    jtj = np.einsum("bnk,bnl->bkl", jac, jac)
    span = np.maximum(hi - lo, 1e-300)
    at_lo = theta <= lo + tiny * span
    at_hi = theta >= hi - tiny * span
    fixed = (at_lo & (grad < 0)) | (at_hi & (grad > 0))
    free = ~fixed
    a = np.where(free[:, :, None] & free[:, None, :], jtj, 0.0)
    d = np.einsum("bkk->bk", a)
    ridge = 1e-12 * d.max(axis=1) + 1e-300
    a = a + np.eye(3)[None] * (lam[:, None] * d + fixed + ridge[:, None])[:, None, :]
    rhs = np.where(free, grad, 0.0)
    try:
        delta = np.linalg.solve(a, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        delta = np.stack([np.linalg.lstsq(a[i], rhs[i], rcond=None)[0] for i in range(len(a))])
    delta = np.where(np.isfinite(delta), delta, 0.0)
    new = np.clip(theta + delta, lo, hi)
    r2, p2, yh2 = _sat_residuals(lx, ly, new)
    sse2 = np.einsum("bn,bn->b", r2, r2)
    ok = np.isfinite(sse2) & (sse2 < sse)
    improvement = np.where(ok, sse - sse2, 0.0)
    return ok, new, r2, p2, yh2, sse2, improvement


def _fit_saturating_point(lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """Several grid starts → vectorised LM → scipy least_squares; keep the best."""
    starts, lo, hi = _saturating_grid_start(lx, ly[None, :], n_best=5)
    cands, sses = _lm_saturating(lx, ly[None, :], starts, lo, hi)
    best = int(np.argmin(sses))
    theta, best_sse = cands[best], float(sses[best])
    lo1, hi1 = lo[0], hi[0]
    if not np.all(hi1 > lo1):
        return theta

    def fun(t: np.ndarray) -> np.ndarray:
        r, _, _ = _sat_residuals(lx, ly[None, :], t[None, :])
        return np.where(np.isfinite(r[0]), r[0], 1e6)

    def jac(t: np.ndarray) -> np.ndarray:
        _, p, yh = _sat_residuals(lx, ly[None, :], t[None, :])
        inv = 1.0 / yh[0]
        return -np.column_stack([p[0] * inv, p[0] * lx * inv, inv])

    try:
        x0 = np.clip(theta, lo1, hi1)
        # keep strictly inside for trf
        x0 = np.minimum(np.maximum(x0, lo1 + 1e-12 * (hi1 - lo1)), hi1 - 1e-12 * (hi1 - lo1))
        res = optimize.least_squares(fun, x0, jac=jac, bounds=(lo1, hi1), method="trf", x_scale="jac")
        if np.all(np.isfinite(res.x)):
            r = fun(res.x)
            s = float(np.dot(r, r))
            if s < best_sse:
                theta = np.clip(res.x, lo1, hi1)
    except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - defensive
        pass
    return theta


# ---------------------------------------------------------------------------
# Bootstrap replicates
# ---------------------------------------------------------------------------


def residual_bootstrap(
    lx: np.ndarray, ly: np.ndarray, params: np.ndarray, dof: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``n_boot`` replicates of ``ly`` (shape (n_boot, n)) around the curve ``params``.

    Centred log residuals are inflated by ``sqrt(n/dof)`` and resampled, and
    each replicate is scaled by ``sqrt(dof/χ²_dof)``: on short curves the noise
    level itself is uncertain, and without that factor the bands under-cover.
    """
    n = len(ly)
    fitted_log = np.log(curve(params[None, :], lx)[0])
    r = ly - fitted_log
    r = (r - r.mean()) * math.sqrt(n / dof)
    idx = rng.integers(0, n, size=(n_boot, n))
    scale = np.sqrt(dof / rng.chisquare(dof, size=n_boot))
    return fitted_log[None, :] + r[idx] * scale[:, None]


def draw_group_devs(devs: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Per-replicate log-deviations, shape (n_boot, len(devs)); single-value sizes draw from the pool."""
    pooled = np.concatenate([d for d in devs if d.size >= 2]) if any(d.size >= 2 for d in devs) else np.zeros(1)
    out = np.empty((n_boot, len(devs)))
    for i, d in enumerate(devs):
        src = d if d.size >= 2 else pooled
        out[:, i] = src[rng.integers(0, src.size, size=n_boot)]
    return out

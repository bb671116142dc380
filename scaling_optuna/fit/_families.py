"""Learning-curve families, each fitted to a curve in log space.

Every family is a non-increasing curve of the relative size ``t = m / m_ref``
(``m_ref``: the largest fitted size), so that a fit can never promise that
more data makes things worse.  The names follow the learning-curve literature
(Domhan et al. 2015; Mohr et al. 2022, LCDB); the error-curve forms are:

===========  ==================================  ==============================
name         curve                               parameters (stored order)
===========  ==================================  ==============================
``pow2``     ``a·t^b``                           ``log a, b``  (b ≤ 0)
``pow3``     ``c + a·t^b``                       ``a, c, b``
``pow4``     ``c + a·((t + d)/(1 + d))^b``       ``a, c, b, d``
``mmf4``     ``c + a / (1 + (t/k)^d)``           ``a, c, k, d``  (Morgan–Mercer–Flodin)
``wbl4``     ``c + a·exp(−(t/k)^d)``             ``a, c, k, d``  (Weibull)
``exp3``     ``c + a·exp(−t/k)``                 ``a, c, k``
``ilog2``    ``c + a / log(1 + u·t)``            ``a, c, u``  (u = 16·m_ref / m_min, fixed)
``vap3``     ``exp(a + b·log t + e/t)``          ``a, b, e``  (vapour pressure)
``logpower`` ``a / (1 + (t/k)^d)``               ``a, 0, k, d``
===========  ==================================  ==============================

with ``a ≥ 0`` and ``0 ≤ c ≤ min(y)``.  ``pow2`` and ``vap3`` are linear in
log space and fitted in closed form (their slope is capped at 0, so they stay
non-increasing).  The other families are ``c + a·g(t; θ)``: ``θ`` runs over a
fixed grid, and for each ``θ`` the pair ``(a, c)`` is the closed-form solution
of a weighted least-squares problem in relative error (which approximates the
log-space loss; one reweighting by the fitted values tightens it); the grid
point with the smallest log-space loss wins.  The loss is
``Σ wᵢ·ρ(log yᵢ − log f(mᵢ))`` with ``ρ(r) = r²`` or, with ``robust=δ``, the
soft-L1 loss ``2δ²(√(1 + (r/δ)²) − 1)`` (two more reweighting passes).  A grid
instead of Newton steps: no starting point can send a fit astray, and the
whole grid of a family is a handful of array operations.

Example::

    import numpy as np
    from scaling_optuna.fit import _families

    m = np.array([100.0, 200, 400, 800, 1600])
    y = np.array([0.52, 0.38, 0.29, 0.23, 0.19])
    params, loss = _families.fit_family("mmf4", m, y, np.ones(5))
    _families.evaluate("mmf4", params, np.array([3200.0, 16000.0]), m_ref=1600.0)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FAMILIES", "MIN_POINTS", "evaluate", "asymptote", "fit_family"]

FAMILIES = ("pow2", "pow3", "pow4", "mmf4", "wbl4", "exp3", "ilog2", "vap3", "logpower")
# Fewest points a family is fitted to: one more than its parameter count, so a fit is never exact.
MIN_POINTS = {"pow2": 3, "pow3": 4, "pow4": 5, "mmf4": 5, "wbl4": 5, "exp3": 4, "ilog2": 3, "vap3": 4, "logpower": 4}

_EXPONENTS = -np.geomspace(0.005, 4.0, 48)  # b of pow3 (denser near 0)
_EXPONENTS_4 = -np.geomspace(0.02, 4.0, 24)  # b of pow4
_SHIFTS = np.geomspace(1e-3, 30.0, 16)  # d of pow4, in units of the smallest relative size
_SCALES = 30  # k of mmf4/wbl4/exp3/logpower: points from t_min/20 to 1000
_SHAPES_MMF = np.geomspace(0.1, 5.0, 16)  # d of mmf4/logpower
_SHAPES_WBL = np.geomspace(0.05, 3.0, 16)  # d of wbl4
_ZOOMS = 3
# ilog2 counts sizes in sixteenths of the smallest fitted size, whatever unit the sizes come in:
# LCDB's curves, on which its weight was calibrated, start at 16 examples, where this is the plain count.
_ILOG_UNITS = 16.0
_N_PARAMS = {"pow2": 2, "pow3": 3, "pow4": 4, "mmf4": 4, "wbl4": 4, "exp3": 3, "ilog2": 3, "vap3": 3, "logpower": 4}


def evaluate(name: str, params: np.ndarray, m: np.ndarray, *, m_ref: float) -> np.ndarray:
    """The family's curve at sizes ``m`` (``params`` as :func:`fit_family` returned them).

    Example::

        evaluate("pow3", np.array([0.3, 0.05, -0.5]), np.array([1000.0, 4000.0]), m_ref=1000.0)
    """
    t = np.asarray(m, dtype=float) / m_ref
    p = np.asarray(params, dtype=float)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if name == "pow2":
            return np.exp(np.clip(p[0] + p[1] * np.log(t), -745.0, 709.0))
        if name == "vap3":
            return np.exp(np.clip(p[0] + p[1] * np.log(t) + p[2] / t, -745.0, 709.0))
        a, c = p[0], p[1]
        return c + a * _shape(name, p[None, 2:], t)[0]


def asymptote(name: str, params: np.ndarray) -> float:
    """The value the curve levels off at as the size grows without bound.

    Example::

        asymptote("pow3", np.array([0.3, 0.05, -0.5]))   # 0.05
    """
    if name in ("pow2", "vap3"):
        return 0.0 if params[1] < 0 else float(np.exp(params[0]))
    return float(params[1])


def fit_family(
    name: str, m: np.ndarray, y: np.ndarray, w: np.ndarray, *, robust: float | None = None
) -> tuple[np.ndarray, float]:
    """Fit one family to sizes ``m`` (sorted) and values ``y`` with point weights ``w``.

    Returns the parameters (for :func:`evaluate` with ``m_ref = m[-1]``) and the
    weighted log-space loss (``inf`` when the fit failed).

    Example::

        params, loss = fit_family("pow4", m, y, m / m[-1])
    """
    t = m / m[-1]
    # Fit y / scale: every family is scale-equivariant, and extreme magnitudes stay finite.
    scale = math.exp(float(np.mean(np.log(y))))
    z = y / scale
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if not np.all(np.isfinite(np.log(z))) or not np.all(np.isfinite(w)):
            # values spread over more than the float range: nothing to fit in log space
            return np.full(_N_PARAMS[name], np.nan), math.inf
        if name in ("pow2", "vap3"):
            params, loss = _fit_log_linear(name, t, np.log(z), w, robust)
            params = params.copy()
            params[0] += math.log(scale)
            return params, loss
        cmax = 0.0 if name == "logpower" else float(z.min())
        u, a, c, loss = _search(name, t, z, w, cmax, robust)
    if not math.isfinite(loss):
        return np.full(2 + u.size, np.nan), math.inf
    return np.concatenate([[a * scale, c * scale], _theta(name, u[None, :])[0]]), loss


# ---------------------------------------------------------------------------
# The "c + a·g(t; θ)" families
# ---------------------------------------------------------------------------


def _search(
    name: str, t: np.ndarray, z: np.ndarray, w: np.ndarray, cmax: float, robust: float | None
) -> tuple[np.ndarray, float, float, float]:
    """The best θ (in search coordinates), a, c and loss: a coarse grid, then zooming in around its best point.

    Each zoom tries 7 points per coordinate spanning ±1 step of the previous
    resolution, so that three zooms end at 1/27 of the coarse spacing: fine
    enough to refit a family's own noise-free curve, at a tenth of the
    coarse grid's cost.
    """
    coords, step = _coarse_grid(name, float(t[0]))
    g = _shape(name, _theta(name, coords), t)
    a, c, loss = _fit_amplitude_and_floor(g, z, w, cmax, robust)
    i = int(np.argmin(loss))
    best = (coords[i], float(a[i]), float(c[i]), float(loss[i]))
    if not np.any(step) or not math.isfinite(best[3]):
        return best
    lo, hi = coords.min(axis=0) - 2 * step, coords.max(axis=0) + 2 * step
    offsets = np.stack(np.meshgrid(*[np.linspace(-1.0, 1.0, 7)] * coords.shape[1], indexing="ij"), -1).reshape(-1, coords.shape[1])
    for _ in range(_ZOOMS):
        candidates = np.clip(best[0] + offsets * step, lo, hi)
        g = _shape(name, _theta(name, candidates), t)
        a, c, loss = _fit_amplitude_and_floor(g, z, w, cmax, robust)
        i = int(np.argmin(loss))
        if loss[i] < best[3]:
            best = (candidates[i], float(a[i]), float(c[i]), float(loss[i]))
        step = step / 3.0
    return best


def _coarse_grid(name: str, t_min: float) -> tuple[np.ndarray, np.ndarray]:
    """The coarse grid of a family in search coordinates (logs of |θ|), shape (G, len(θ)), and its spacing."""
    log_scales = np.linspace(math.log(t_min / 20.0), math.log(1000.0), _SCALES)
    if name == "pow3":
        axes = [np.log(-_EXPONENTS)]
    elif name == "ilog2":
        # nothing to search: u is fixed by the smallest fitted size
        return np.array([[math.log(_ILOG_UNITS / t_min)]]), np.zeros(1)
    elif name == "pow4":
        axes = [np.log(-_EXPONENTS_4), np.log(t_min * _SHIFTS)]
    elif name == "exp3":
        axes = [log_scales]
    else:
        axes = [log_scales, np.log(_SHAPES_WBL if name == "wbl4" else _SHAPES_MMF)]
    mesh = np.meshgrid(*axes, indexing="ij")
    step = np.array([abs(ax[1] - ax[0]) for ax in axes])
    return np.column_stack([m.ravel() for m in mesh]), step


def _theta(name: str, coords: np.ndarray) -> np.ndarray:
    """θ from search coordinates: exponents are negative, scales and shapes positive."""
    theta = np.exp(coords)
    if name in ("pow3", "pow4"):
        theta[:, 0] = -theta[:, 0]
    return theta


def _shape(name: str, theta: np.ndarray, t: np.ndarray) -> np.ndarray:
    """g(t; θ) for every row of ``theta``: shape (G, len(t)) (``t`` may be (1, n) or (n,))."""
    t = np.atleast_1d(t).reshape(1, -1)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if name == "pow3":
            return t ** theta[:, 0:1]
        if name == "pow4":
            d = theta[:, 1:2]
            return ((t + d) / (1.0 + d)) ** theta[:, 0:1]
        if name in ("mmf4", "logpower"):
            return 1.0 / (1.0 + (t / theta[:, 0:1]) ** theta[:, 1:2])
        if name == "wbl4":
            return np.exp(-((t / theta[:, 0:1]) ** theta[:, 1:2]))
        if name == "exp3":
            return np.exp(-t / theta[:, 0:1])
        if name == "ilog2":
            return 1.0 / np.log1p(t * theta[:, 0:1])
    raise ValueError(f"unknown curve family {name!r}")


def _fit_amplitude_and_floor(
    g: np.ndarray, y: np.ndarray, w: np.ndarray, cmax: float, robust: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, c, log-space loss) for every grid row of ``g``: ``a ≥ 0``, ``0 ≤ c ≤ cmax``."""
    finite = np.isfinite(g).all(axis=1)
    g = np.where(finite[:, None], g, 0.0)
    ly = np.log(y)
    weights = np.broadcast_to(w / (y * y), g.shape)
    a, c = _constrained_pair(g, y, weights, cmax)
    passes = 1 + (2 if robust else 0)
    for _ in range(passes):
        fitted = np.maximum(c[:, None] + a[:, None] * g, 1e-300)
        # relative error against the fitted value: closer to the log loss than against y alone
        weights = w[None, :] / (y[None, :] * fitted)
        if robust:
            r = ly[None, :] - np.log(fitted)
            weights = weights / np.sqrt(1.0 + (r / robust) ** 2)
        a, c = _constrained_pair(g, y, weights, cmax)
    fitted = c[:, None] + a[:, None] * g
    r = ly[None, :] - np.log(np.maximum(fitted, 1e-300))
    loss = (w[None, :] * _rho(r, robust)).sum(axis=1)
    ok = finite & np.isfinite(loss) & (fitted > 0).all(axis=1)
    return a, c, np.where(ok, loss, np.inf)


def _constrained_pair(g: np.ndarray, y: np.ndarray, w: np.ndarray, cmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``Σ w (y − c − a·g)²`` over ``a ≥ 0, 0 ≤ c ≤ cmax``, row by row.

    The objective is a convex quadratic in (a, c): the minimum is the free one
    when it is feasible, otherwise on an edge of the box (c = 0, c = cmax, or
    a = 0), each of which has a closed form.
    """
    sw = w.sum(axis=1)
    swg = (w * g).sum(axis=1)
    swgg = (w * g * g).sum(axis=1)
    swy = w @ y
    swgy = (w * g) @ y
    swyy = w @ (y * y)

    def objective(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return swyy + c * c * sw + a * a * swgg - 2 * c * swy - 2 * a * swgy + 2 * a * c * swg

    det = sw * swgg - swg * swg
    safe = np.where(det > 1e-12 * sw * np.maximum(swgg, 1e-300), det, np.nan)
    a_free = (sw * swgy - swg * swy) / safe
    c_free = (swy - a_free * swg) / sw
    free_ok = np.isfinite(a_free) & (a_free >= 0) & (c_free >= 0) & (c_free <= cmax)
    best_a = np.where(free_ok, a_free, 0.0)
    best_c = np.where(free_ok, c_free, 0.0)
    best = np.where(free_ok, objective(best_a, best_c), np.inf)
    candidates = []
    for edge_c in (0.0, cmax):
        a_edge = np.maximum((swgy - edge_c * swg) / np.where(swgg > 0, swgg, np.nan), 0.0)
        candidates.append((np.nan_to_num(a_edge, nan=0.0), np.full_like(sw, edge_c)))
    candidates.append((np.zeros_like(sw), np.clip(swy / sw, 0.0, cmax)))
    for a, c in candidates:
        value = objective(a, c)
        better = np.isfinite(value) & (value < best)
        best_a, best_c, best = np.where(better, a, best_a), np.where(better, c, best_c), np.where(better, value, best)
    return best_a, best_c


# ---------------------------------------------------------------------------
# The log-linear families
# ---------------------------------------------------------------------------


def _fit_log_linear(
    name: str, t: np.ndarray, ly: np.ndarray, w: np.ndarray, robust: float | None
) -> tuple[np.ndarray, float]:
    """``pow2`` (log y = a + b·log t) or ``vap3`` (+ e/t) by weighted least squares in log space.

    The fit must not rise with size: a rising ``pow2`` becomes the flat weighted
    mean; a ``vap3`` that rises anywhere from the smallest size on (slope
    ``b − e/t > 0``) falls back to the ``pow2`` fit.
    """
    lt = np.log(t)
    columns = [np.ones_like(t), lt] + ([1.0 / t] if name == "vap3" else [])
    x = np.column_stack(columns)
    rw = np.ones_like(w)
    for _ in range(1 + (2 if robust else 0)):
        coef = _weighted_lstsq(x, ly, w * rw)
        if name == "vap3" and (coef[1] > 0 or coef[2] < coef[1] * t[0]):
            flat = _fit_log_linear("pow2", t, ly, w, robust)[0]
            coef = np.array([flat[0], flat[1], 0.0])
        elif name == "pow2" and coef[1] > 0:
            coef = np.array([np.sum(w * rw * ly) / np.sum(w * rw), 0.0])
        r = ly - x @ coef
        if robust:
            rw = 1.0 / np.sqrt(1.0 + (r / robust) ** 2)
    loss = float(np.sum(w * _rho(r, robust)))
    return coef, loss if math.isfinite(loss) and np.all(np.isfinite(coef)) else math.inf


def _weighted_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    try:
        coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    except np.linalg.LinAlgError:  # non-finite weights: the caller reports a failed fit
        return np.full(x.shape[1], np.nan)
    return coef


def _rho(r: np.ndarray, robust: float | None) -> np.ndarray:
    if robust:
        return 2.0 * robust * robust * (np.sqrt(1.0 + (r / robust) ** 2) - 1.0)
    return r * r

"""The curve families of the ensemble, one :class:`Family` record each, fitted in log space.

Every family is a non-increasing curve of the relative size ``t = m / m_ref``
(``m_ref``: the largest fitted size), so no fit can promise that more data
makes things worse.  Names follow the learning-curve literature (Domhan et
al. 2015; Mohr et al. 2022, LCDB).  The four that ``benchmarks/calibrate_fit.py``
gives weight (five others it tried got none: BENCHMARKS.md):

=========  ================================  =========================================
name       curve                             parameters (stored order)
=========  ================================  =========================================
``pow3``   ``c + a·t^b``                     ``a, c, b``
``pow4``   ``c + a·((t + d)/(1 + d))^b``     ``a, c, b, d``
``ilog2``  ``c + a / log(1 + u·t)``          ``a, c, u``  (u = 16·m_ref / m_min, fixed)
``vap3``   ``exp(a + b·log t + e/t)``        ``a, b, e``  (vapour pressure)
=========  ================================  =========================================

with ``a ≥ 0`` and ``0 ≤ c ≤ min(y)``.  ``vap3`` is linear in log space and
fitted in closed form (a fit that would rise falls back to ``a·t^b``).  The
others are ``c + a·g(t; θ)``: ``θ`` runs over a coarse grid that is then
zoomed in on, and for each ``θ`` the pair ``(a, c)`` is the closed-form
weighted least-squares solution in relative error (close to the log loss; one
reweighting by the fitted values tightens it).  The loss is
``Σ wᵢ·ρ(log yᵢ − log f(mᵢ))`` with ``ρ(r) = r²`` or, with ``robust=δ``, the
soft-L1 loss ``2δ²(√(1 + (r/δ)²) − 1)``.  A grid rather than Newton steps: no
start can send a fit astray, and a family's whole grid is a few array operations.

Example::

    import numpy as np
    from scaling_optuna.fit._families import FAMILIES

    m = np.array([100.0, 200, 400, 800, 1600])
    y = np.array([0.52, 0.38, 0.29, 0.23, 0.19])
    pow4 = FAMILIES["pow4"]
    params, loss = pow4.fit(m, y, np.ones(5))
    pow4.evaluate(params, np.array([3200.0, 16000.0]), m_ref=1600.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["FAMILIES", "Family"]

_ZOOMS = 3
# ilog2 counts sizes in sixteenths of the smallest fitted size, whatever unit they come in:
# LCDB's curves, on which its weight was calibrated, start at 16 examples, where this is the plain count.
_ILOG_UNITS = 16.0

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]  # g(t; θ): θ rows (G, k), t (1, n) → (G, n)
Axes = Callable[[float], list[np.ndarray]]  # the coarse grid's axes in log |θ|, given the smallest relative size


@dataclass(frozen=True)
class Family:
    """One curve family: its formula, parameter count and how it is searched.

    ``shape`` and ``axes`` are those of a ``c + a·g(t; θ)`` family (``None``
    for a family fitted in closed form in log space); ``negative`` says which
    entries of ``θ`` are exponents (searched as the log of their magnitude).
    """

    name: str
    formula: str
    n_params: int
    min_points: int  # one more than its free parameters, so that a fit is never exact
    shape: Shape | None = None
    axes: Axes | None = None
    negative: tuple[bool, ...] = ()

    def evaluate(self, params: np.ndarray, m: np.ndarray, *, m_ref: float) -> np.ndarray:
        """The curve at sizes ``m`` (``params`` as :meth:`fit` returned them)."""
        t = np.atleast_1d(np.asarray(m, dtype=float)) / m_ref
        p = np.asarray(params, dtype=float)
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            if self.shape is None:
                return np.exp(np.clip(p[0] + p[1] * np.log(t) + p[2] / t, -745.0, 709.0))
            return p[1] + p[0] * self.shape(p[None, 2:], t[None, :])[0]

    def asymptote(self, params: np.ndarray) -> float:
        """The value the curve levels off at as the size grows without bound."""
        if self.shape is None:
            return 0.0 if params[1] < 0 else float(np.exp(params[0]))
        return float(params[1])

    def fit(self, m: np.ndarray, y: np.ndarray, w: np.ndarray, *, robust: float | None = None) -> tuple[np.ndarray, float]:
        """Parameters for :meth:`evaluate` with ``m_ref = m[-1]`` and the weighted log loss (``inf``: failed).

        ``m`` sorted, ``y`` positive, ``w`` the point weights.
        """
        t = m / m[-1]
        # Fit y / scale: every family is scale-equivariant, and extreme magnitudes stay finite.
        scale = math.exp(float(np.mean(np.log(y))))
        z = y / scale
        failed = np.full(self.n_params, np.nan), math.inf
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            if not np.all(np.isfinite(np.log(z))) or not np.all(np.isfinite(w)):
                return failed  # values spread over more than the float range
            if self.shape is None:
                params, loss = _fit_vapour_pressure(t, np.log(z), w, robust)
                return params + np.array([math.log(scale), 0.0, 0.0]), loss
            theta, a, c, loss = self._search(t, z, w, robust)
        if not math.isfinite(loss):
            return failed
        return np.concatenate([[a * scale, c * scale], theta]), loss

    def _search(self, t: np.ndarray, z: np.ndarray, w: np.ndarray, robust: float | None) -> tuple[np.ndarray, float, float, float]:
        """The best θ, a, c and loss: a coarse grid, then three zooms of 7 points a coordinate around its best point.

        Each zoom spans ±1 step of the previous resolution, so the last ends at
        1/27 of the coarse spacing: fine enough to refit a family's own
        noise-free curve, at a tenth of the coarse grid's cost.
        """
        assert self.axes is not None
        axes = self.axes(float(t[0]))
        coords = np.column_stack([g.ravel() for g in np.meshgrid(*axes, indexing="ij")])
        step = np.array([abs(ax[1] - ax[0]) if len(ax) > 1 else 0.0 for ax in axes])
        best = self._best_row(coords, t, z, w, robust)
        if not np.any(step) or not math.isfinite(best[3]):
            return self._theta(best[0][None, :])[0], *best[1:]
        lo, hi = coords.min(axis=0) - 2 * step, coords.max(axis=0) + 2 * step
        grid = np.meshgrid(*[np.linspace(-1.0, 1.0, 7)] * len(axes), indexing="ij")
        offsets = np.stack(grid, -1).reshape(-1, len(axes))
        for _ in range(_ZOOMS):
            candidate = self._best_row(np.clip(best[0] + offsets * step, lo, hi), t, z, w, robust)
            best = candidate if candidate[3] < best[3] else best
            step = step / 3.0
        return self._theta(best[0][None, :])[0], *best[1:]

    def _best_row(self, coords: np.ndarray, t: np.ndarray, z: np.ndarray, w: np.ndarray, robust: float | None) -> tuple:
        assert self.shape is not None
        a, c, loss = _amplitude_and_floor(self.shape(self._theta(coords), t[None, :]), z, w, float(z.min()), robust)
        i = int(np.argmin(loss))
        return coords[i], float(a[i]), float(c[i]), float(loss[i])

    def _theta(self, coords: np.ndarray) -> np.ndarray:
        """θ from search coordinates (logs of magnitudes): exponents negative, the rest positive."""
        sign = np.where(np.array(self.negative), -1.0, 1.0)
        return np.exp(coords) * sign[None, :]


def _pow3_axes(t_min: float) -> list[np.ndarray]:
    return [np.log(np.geomspace(0.005, 4.0, 48))]  # |b|, denser near 0


def _pow4_axes(t_min: float) -> list[np.ndarray]:
    # |b|, and the shift d in units of the smallest relative size
    return [np.log(np.geomspace(0.02, 4.0, 24)), np.log(t_min * np.geomspace(1e-3, 30.0, 16))]


def _ilog2_axes(t_min: float) -> list[np.ndarray]:
    return [np.array([math.log(_ILOG_UNITS / t_min)])]  # nothing to search: u is fixed by the smallest size


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("pow3", "c + a·t^b", 3, 4, lambda th, t: t ** th[:, 0:1], _pow3_axes, (True,)),
        Family(
            "pow4", "c + a·((t + d)/(1 + d))^b", 4, 5,
            lambda th, t: ((t + th[:, 1:2]) / (1.0 + th[:, 1:2])) ** th[:, 0:1], _pow4_axes, (True, False),
        ),
        Family("ilog2", "c + a / log(1 + u·t)", 3, 3, lambda th, t: 1.0 / np.log1p(t * th[:, 0:1]), _ilog2_axes, (False,)),
        Family("vap3", "exp(a + b·log t + e/t)", 3, 4),
    )
}


def _amplitude_and_floor(
    g: np.ndarray, y: np.ndarray, w: np.ndarray, cmax: float, robust: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, c, log-space loss) for every grid row of ``g``: ``a ≥ 0``, ``0 ≤ c ≤ cmax``."""
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        finite = np.isfinite(g).all(axis=1)
        g = np.where(finite[:, None], g, 0.0)
        ly = np.log(y)
        a, c = _constrained_pair(g, y, np.broadcast_to(w / (y * y), g.shape), cmax)
        for _ in range(1 + (2 if robust else 0)):
            fitted = np.maximum(c[:, None] + a[:, None] * g, 1e-300)
            # relative error against the fitted value: closer to the log loss than against y alone
            weights = w[None, :] / (y[None, :] * fitted)
            if robust:
                weights = weights / np.sqrt(1.0 + ((ly[None, :] - np.log(fitted)) / robust) ** 2)
            a, c = _constrained_pair(g, y, weights, cmax)
        fitted = c[:, None] + a[:, None] * g
        loss = (w[None, :] * _rho(ly[None, :] - np.log(np.maximum(fitted, 1e-300)), robust)).sum(axis=1)
    ok = finite & np.isfinite(loss) & (fitted > 0).all(axis=1)
    return a, c, np.where(ok, loss, np.inf)


def _constrained_pair(g: np.ndarray, y: np.ndarray, w: np.ndarray, cmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``Σ w (y − c − a·g)²`` over ``a ≥ 0, 0 ≤ c ≤ cmax``, row by row.

    A convex quadratic in (a, c): the free minimum when it is feasible, else
    the best of the box's edges (c = 0, c = cmax, a = 0), each in closed form.
    """
    sw, swg, swgg = w.sum(axis=1), (w * g).sum(axis=1), (w * g * g).sum(axis=1)
    swy, swgy, swyy = w @ y, (w * g) @ y, w @ (y * y)

    def objective(a: np.ndarray, c: np.ndarray) -> np.ndarray:
        return swyy + c * c * sw + a * a * swgg - 2 * c * swy - 2 * a * swgy + 2 * a * c * swg

    det = sw * swgg - swg * swg
    a_free = (sw * swgy - swg * swy) / np.where(det > 1e-12 * sw * np.maximum(swgg, 1e-300), det, np.nan)
    c_free = (swy - a_free * swg) / sw
    free_ok = np.isfinite(a_free) & (a_free >= 0) & (c_free >= 0) & (c_free <= cmax)
    best_a, best_c = np.where(free_ok, a_free, 0.0), np.where(free_ok, c_free, 0.0)
    best = np.where(free_ok, objective(best_a, best_c), np.inf)
    edges = [(np.maximum((swgy - c * swg) / np.where(swgg > 0, swgg, np.nan), 0.0), np.full_like(sw, c)) for c in (0.0, cmax)]
    edges.append((np.zeros_like(sw), np.clip(swy / sw, 0.0, cmax)))
    for a, c in edges:
        a = np.nan_to_num(a, nan=0.0)
        value = objective(a, c)
        better = np.isfinite(value) & (value < best)
        best_a, best_c, best = np.where(better, a, best_a), np.where(better, c, best_c), np.where(better, value, best)
    return best_a, best_c


def _fit_vapour_pressure(t: np.ndarray, ly: np.ndarray, w: np.ndarray, robust: float | None) -> tuple[np.ndarray, float]:
    """``vap3`` (log y = a + b·log t + e/t) by weighted least squares in log space (reweighted for soft-L1).

    A fit that rises anywhere from the smallest size on (slope ``b − e/t > 0``)
    falls back to the line ``a·t^b`` (:func:`_fit_power_line`).
    """
    x = np.column_stack([np.ones_like(t), np.log(t), 1.0 / t])
    rw = np.ones_like(w)
    for _ in range(1 + (2 if robust else 0)):
        coef = _weighted_lstsq(x, ly, w * rw)
        if coef[1] > 0 or coef[2] < coef[1] * t[0]:
            coef = np.append(_fit_power_line(t, ly, w, robust), 0.0)
        r = ly - x @ coef
        if robust:
            rw = 1.0 / np.sqrt(1.0 + (r / robust) ** 2)
    loss = float(np.sum(w * _rho(r, robust)))
    return coef, loss if math.isfinite(loss) and np.all(np.isfinite(coef)) else math.inf


def _fit_power_line(t: np.ndarray, ly: np.ndarray, w: np.ndarray, robust: float | None) -> np.ndarray:
    """``log a + b·log t`` by weighted least squares (reweighted for soft-L1); a rising line becomes the flat mean."""
    x = np.column_stack([np.ones_like(t), np.log(t)])
    rw = np.ones_like(w)
    for _ in range(1 + (2 if robust else 0)):
        coef = _weighted_lstsq(x, ly, w * rw)
        if coef[1] > 0:
            coef = np.array([np.sum(w * rw * ly) / np.sum(w * rw), 0.0])
        if robust:
            rw = 1.0 / np.sqrt(1.0 + ((ly - x @ coef) / robust) ** 2)
    return coef


def _weighted_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)
    try:
        return np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)[0]
    except np.linalg.LinAlgError:  # non-finite weights: the caller reports a failed fit
        return np.full(x.shape[1], np.nan)


def _rho(r: np.ndarray, robust: float | None) -> np.ndarray:
    if robust:
        return 2.0 * robust * robust * (np.sqrt(1.0 + (r / robust) ** 2) - 1.0)
    return r * r

"""A fingerprint of what the calibrated predictor computes, so that stale constants are caught.

``benchmarks/calibrate_fit.py`` derives :mod:`._calibration` from the
predictor's code; when that code changes (a family, the weighting, the
plateau rule, a band feature), the constants no longer describe it.  The
script therefore also writes :data:`~._calibration.PROBE`: the prediction and
band edges that the code, with the constants it just derived, gives on a few
fixed curves.  ``tests/test_fit.py`` recomputes them with the shipped code:
any difference means "re-run the calibration".  A behaviour fingerprint, not
a hash of the source: a comment or a rename does not trip it.

Example::

    from scaling_optuna.fit._probe import probe
    probe()   # the numbers _calibration.PROBE must hold
"""

from __future__ import annotations

import numpy as np

from scaling_optuna.fit._band import CALIBRATED_BAND
from scaling_optuna.fit._band import BandSettings
from scaling_optuna.fit._band import fit_band
from scaling_optuna.fit._ensemble import CALIBRATED
from scaling_optuna.fit._ensemble import Settings
from scaling_optuna.fit._ensemble import fit_ensemble

__all__ = ["CURVES", "probe"]

_M = 2.0 ** np.arange(5, 12)
# A saturating curve, a pure power law, and one with a bump (the misfit tilt and the guard have work to do).
CURVES = (
    (_M, 0.9 * _M**-0.45 + 0.04),
    (_M, 2.5 * _M**-0.3),
    (_M, np.array([0.52, 0.37, 0.33, 0.24, 0.215, 0.17, 0.165])),
)
_TARGETS = (2.0, 10.0)  # × the largest size


def probe(settings: Settings = CALIBRATED, band: BandSettings = CALIBRATED_BAND) -> tuple[float, ...]:
    """Mean, 95 % lower and upper edge at 2× and 10× the data for each of :data:`CURVES`, rounded to 9 digits."""
    out: list[float] = []
    for m, y in CURVES:
        ensemble = fit_ensemble(m, y, settings=settings)
        assert ensemble is not None
        targets = m[-1] * np.array(_TARGETS)
        lower, upper = fit_band(ensemble, m, y, band).edges(targets, 0.95)
        out += [float(f"{v:.9g}") for v in (*ensemble.mean(targets), *lower, *upper)]
    return tuple(out)

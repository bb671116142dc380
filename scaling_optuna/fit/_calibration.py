"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): 2266 extrapolations (settings 1/4, 1/8, 1/16) of
50 datasets.  What each constant means: ``scaling_optuna/fit/_ensemble.py``.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {'pow2': 0.19, 'pow3': 0.226, 'exp3': 0.013, 'ilog2': 0.571}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = 2.0
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = 0.05
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = 0.5
# Within-curve tilt of the weights, exp(-score / BACKTEST_TILT) (None: no tilt).
BACKTEST_TILT = None
# The band's log scale grows with the log distance beyond the data at sqrt(DRIFT² + (BACKTEST_GAIN·b)²).
DRIFT = 0.2
BACKTEST_GAIN = 1.0
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = 0.04479
# Quantiles of (log truth − log prediction) / s over the calibration extrapolations.
SCORE_QUANTILE_LEVELS = tuple(i / 200 for i in range(1, 200))
SCORE_QUANTILES = (
    -2.6983, -2.0982, -1.5507, -1.4062, -1.2710, -1.1803,
    -1.0958, -1.0145, -0.9608, -0.9038, -0.8636, -0.8294,
    -0.7969, -0.7800, -0.7519, -0.6920, -0.6549, -0.6229,
    -0.6005, -0.5807, -0.5514, -0.5265, -0.5026, -0.4839,
    -0.4646, -0.4494, -0.4363, -0.4229, -0.4128, -0.4040,
    -0.3923, -0.3805, -0.3663, -0.3517, -0.3391, -0.3340,
    -0.3249, -0.3123, -0.3039, -0.2947, -0.2840, -0.2728,
    -0.2639, -0.2519, -0.2452, -0.2392, -0.2305, -0.2205,
    -0.2126, -0.2031, -0.1981, -0.1890, -0.1805, -0.1725,
    -0.1675, -0.1609, -0.1517, -0.1441, -0.1388, -0.1330,
    -0.1279, -0.1243, -0.1210, -0.1139, -0.1103, -0.1058,
    -0.0987, -0.0934, -0.0890, -0.0840, -0.0772, -0.0728,
    -0.0701, -0.0667, -0.0632, -0.0589, -0.0529, -0.0488,
    -0.0447, -0.0428, -0.0411, -0.0389, -0.0373, -0.0359,
    -0.0318, -0.0282, -0.0264, -0.0232, -0.0214, -0.0195,
    -0.0167, -0.0145, -0.0109, -0.0097, -0.0075, -0.0043,
    -0.0018, -0.0000, 0.0000, 0.0000, 0.0000, 0.0002,
    0.0012, 0.0024, 0.0039, 0.0056, 0.0074, 0.0097,
    0.0129, 0.0146, 0.0162, 0.0175, 0.0189, 0.0207,
    0.0224, 0.0243, 0.0256, 0.0281, 0.0305, 0.0320,
    0.0346, 0.0365, 0.0389, 0.0409, 0.0447, 0.0464,
    0.0488, 0.0506, 0.0536, 0.0569, 0.0591, 0.0622,
    0.0664, 0.0693, 0.0723, 0.0760, 0.0782, 0.0808,
    0.0836, 0.0889, 0.0914, 0.0949, 0.0973, 0.1001,
    0.1018, 0.1068, 0.1120, 0.1155, 0.1189, 0.1231,
    0.1274, 0.1336, 0.1372, 0.1417, 0.1502, 0.1573,
    0.1624, 0.1676, 0.1716, 0.1757, 0.1852, 0.1940,
    0.1998, 0.2050, 0.2112, 0.2206, 0.2258, 0.2327,
    0.2406, 0.2489, 0.2617, 0.2730, 0.2799, 0.2918,
    0.3022, 0.3095, 0.3170, 0.3276, 0.3403, 0.3654,
    0.3921, 0.4151, 0.4277, 0.4420, 0.4612, 0.4868,
    0.5114, 0.5285, 0.5610, 0.6103, 0.6364, 0.6749,
    0.7252, 0.7759, 0.8307, 0.8839, 0.9744, 1.1221,
    1.3100,
)
CALIBRATION_DATASETS = 50
CALIBRATION_CURVES = 2266

"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): 2266 extrapolations (settings 1/4, 1/8, 1/16) of
50 datasets.  What each constant means: ``scaling_optuna/fit/_ensemble.py``.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {'pow2': 0.171, 'pow3': 0.617, 'ilog2': 0.19, 'vap3': 0.023}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = 2.0
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = 0.05
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = None
# Within-curve tilt of the weights, exp(-score / BACKTEST_TILT) (None: no tilt).
BACKTEST_TILT = None
# The band's log scale grows with the log distance beyond the data at sqrt(DRIFT² + (BACKTEST_GAIN·b)²).
DRIFT = 0.12
BACKTEST_GAIN = 0.5
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = 0.04982
# Quantiles of (log truth − log prediction) / s over the calibration extrapolations.
SCORE_QUANTILE_LEVELS = tuple(i / 200 for i in range(1, 200))
SCORE_QUANTILES = (
    -4.2792, -3.3349, -2.5891, -2.3284, -2.0803, -1.8918,
    -1.7750, -1.6869, -1.5445, -1.4377, -1.3845, -1.3031,
    -1.2754, -1.2217, -1.1566, -1.1005, -1.0665, -1.0263,
    -0.9829, -0.9467, -0.9173, -0.8886, -0.8606, -0.8340,
    -0.7979, -0.7618, -0.7431, -0.7193, -0.6990, -0.6629,
    -0.6315, -0.6020, -0.5902, -0.5722, -0.5508, -0.5367,
    -0.5228, -0.5094, -0.4882, -0.4806, -0.4692, -0.4533,
    -0.4371, -0.4219, -0.4079, -0.3983, -0.3823, -0.3717,
    -0.3553, -0.3389, -0.3219, -0.3098, -0.3021, -0.2830,
    -0.2712, -0.2634, -0.2481, -0.2400, -0.2313, -0.2234,
    -0.2135, -0.2041, -0.1933, -0.1889, -0.1846, -0.1772,
    -0.1719, -0.1605, -0.1525, -0.1459, -0.1389, -0.1320,
    -0.1253, -0.1186, -0.1120, -0.1039, -0.0965, -0.0896,
    -0.0864, -0.0827, -0.0758, -0.0690, -0.0628, -0.0597,
    -0.0522, -0.0484, -0.0431, -0.0394, -0.0366, -0.0322,
    -0.0280, -0.0240, -0.0197, -0.0154, -0.0114, -0.0072,
    -0.0034, -0.0005, -0.0000, 0.0000, 0.0000, 0.0001,
    0.0019, 0.0033, 0.0064, 0.0125, 0.0158, 0.0181,
    0.0215, 0.0259, 0.0293, 0.0322, 0.0361, 0.0389,
    0.0417, 0.0438, 0.0462, 0.0488, 0.0539, 0.0602,
    0.0632, 0.0660, 0.0686, 0.0734, 0.0778, 0.0814,
    0.0857, 0.0898, 0.0940, 0.1010, 0.1056, 0.1121,
    0.1173, 0.1206, 0.1269, 0.1292, 0.1328, 0.1388,
    0.1478, 0.1550, 0.1593, 0.1671, 0.1739, 0.1791,
    0.1851, 0.1908, 0.1989, 0.2033, 0.2090, 0.2137,
    0.2168, 0.2210, 0.2282, 0.2367, 0.2428, 0.2498,
    0.2576, 0.2675, 0.2776, 0.2850, 0.2917, 0.3041,
    0.3175, 0.3298, 0.3377, 0.3507, 0.3605, 0.3785,
    0.3976, 0.4086, 0.4258, 0.4447, 0.4591, 0.4762,
    0.4913, 0.5076, 0.5245, 0.5357, 0.5555, 0.5799,
    0.5984, 0.6240, 0.6562, 0.6873, 0.7041, 0.7403,
    0.7755, 0.8336, 0.8605, 0.9036, 0.9507, 1.0031,
    1.0661, 1.1115, 1.1506, 1.2183, 1.3216, 1.4659,
    1.8072,
)
CALIBRATION_DATASETS = 50
CALIBRATION_CURVES = 2266

"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): 2266 extrapolations (settings 1/4, 1/8, 1/16) of
50 datasets.  What each constant means: ``scaling_optuna/fit/_ensemble.py``.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {'pow2': 0.026, 'pow3': 0.165, 'pow4': 0.061, 'exp3': 0.042, 'ilog2': 0.476, 'vap3': 0.23}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = 1.0
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = 0.05
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = 0.5
# Within-curve tilt of the weights, exp(-score / BACKTEST_TILT) (None: no tilt).
BACKTEST_TILT = None
# The band's log scale grows with the log distance beyond the data at sqrt(DRIFT² + (BACKTEST_GAIN·b)²).
DRIFT = 0.3
BACKTEST_GAIN = 1.0
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = 0.04479
# Quantiles of (log truth − log prediction) / s over the calibration extrapolations.
SCORE_QUANTILE_LEVELS = tuple(i / 200 for i in range(1, 200))
SCORE_QUANTILES = (
    -2.5069, -1.6988, -1.4123, -1.1189, -1.0372, -0.9802,
    -0.8927, -0.7945, -0.7579, -0.7316, -0.6936, -0.6679,
    -0.6465, -0.6297, -0.6040, -0.5845, -0.5582, -0.5357,
    -0.5161, -0.4965, -0.4703, -0.4518, -0.4406, -0.4296,
    -0.4191, -0.4101, -0.3924, -0.3721, -0.3578, -0.3470,
    -0.3385, -0.3315, -0.3211, -0.3141, -0.2986, -0.2886,
    -0.2773, -0.2724, -0.2654, -0.2596, -0.2512, -0.2463,
    -0.2379, -0.2279, -0.2221, -0.2184, -0.2120, -0.2052,
    -0.1963, -0.1924, -0.1819, -0.1783, -0.1736, -0.1667,
    -0.1632, -0.1596, -0.1541, -0.1463, -0.1384, -0.1336,
    -0.1251, -0.1211, -0.1176, -0.1132, -0.1067, -0.1038,
    -0.1004, -0.0955, -0.0901, -0.0859, -0.0840, -0.0806,
    -0.0774, -0.0744, -0.0702, -0.0670, -0.0643, -0.0595,
    -0.0563, -0.0527, -0.0493, -0.0467, -0.0446, -0.0426,
    -0.0391, -0.0369, -0.0332, -0.0317, -0.0292, -0.0278,
    -0.0260, -0.0232, -0.0220, -0.0189, -0.0169, -0.0146,
    -0.0125, -0.0112, -0.0093, 0.0000, 0.0048, 0.0061,
    0.0084, 0.0100, 0.0109, 0.0120, 0.0130, 0.0140,
    0.0157, 0.0168, 0.0185, 0.0195, 0.0216, 0.0230,
    0.0238, 0.0254, 0.0267, 0.0281, 0.0302, 0.0329,
    0.0348, 0.0375, 0.0393, 0.0411, 0.0431, 0.0457,
    0.0476, 0.0505, 0.0521, 0.0541, 0.0575, 0.0594,
    0.0627, 0.0654, 0.0685, 0.0703, 0.0725, 0.0755,
    0.0770, 0.0805, 0.0841, 0.0880, 0.0902, 0.0927,
    0.0946, 0.0963, 0.1004, 0.1031, 0.1056, 0.1084,
    0.1121, 0.1165, 0.1199, 0.1220, 0.1251, 0.1276,
    0.1319, 0.1377, 0.1410, 0.1430, 0.1461, 0.1521,
    0.1582, 0.1624, 0.1669, 0.1703, 0.1771, 0.1824,
    0.1897, 0.1946, 0.2024, 0.2119, 0.2173, 0.2258,
    0.2347, 0.2457, 0.2508, 0.2671, 0.2797, 0.2976,
    0.3114, 0.3262, 0.3386, 0.3491, 0.3653, 0.3800,
    0.4039, 0.4221, 0.4397, 0.4561, 0.4760, 0.5052,
    0.5328, 0.5713, 0.6215, 0.6674, 0.7735, 0.8191,
    0.9786,
)
CALIBRATION_DATASETS = 50
CALIBRATION_CURVES = 2266

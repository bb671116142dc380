"""Constants of the fit's predictor, derived from the LCDB dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): 2266 extrapolations (settings 1/4, 1/8, 1/16) of
50 datasets, and from the calibration half of ``neural-dev.csv.gz``
(22 curves; the split by task is ``benchmarks/_neural.py``'s).  What each
constant means: ``scaling_optuna/fit/_ensemble.py``.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {'pow3': 0.066, 'pow4': 0.107, 'ilog2': 0.583, 'vap3': 0.244}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = 1.0
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = 0.05
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = 0.5
# Within-curve tilt of the weights, exp(-score / BACKTEST_TILT) (None: no tilt).
BACKTEST_TILT = None
# The prediction is mix^(1 - PLAIN_WEIGHT) · plain^PLAIN_WEIGHT.
PLAIN_WEIGHT = 0.4
# No family predicts below the log-log line through the last point beyond the data.
FLOOR_GUARD = True
# θ of the band's scale models below and above the mean, one per feature of _ensemble.BAND_FEATURES.
SCALE_COEFS_LOW = (-0.5075, 0.8468, 0.3714, -0.2825, 0.2637, 0.1699, 0.3815,)
SCALE_COEFS_HIGH = (0.1508, 1.6743, 0.2287, 0.3841, 0.0577, 0.2726, 0.1600,)
# The calibration curves' median of each feature (beyond the data), what a typical band is conditioned on.
FEATURE_MEDIANS = (1.0000, 0.6397, -2.8883, -3.5200, -3.1077, -3.8663, 1.6094,)
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = 0.04567
# The conformal multiplier k of a band at each confidence: quantiles of max(−error/s_low, error/s_high).
CONFIDENCE_LEVELS = tuple(i / 200 for i in range(100, 200))
BAND_MULTIPLIERS = (
    0.2375, 0.2421, 0.2445, 0.2508, 0.2594, 0.2660,
    0.2714, 0.2768, 0.2834, 0.2887, 0.2965, 0.3027,
    0.3076, 0.3143, 0.3224, 0.3297, 0.3378, 0.3452,
    0.3516, 0.3600, 0.3675, 0.3751, 0.3853, 0.3937,
    0.3976, 0.4045, 0.4119, 0.4188, 0.4281, 0.4407,
    0.4513, 0.4620, 0.4722, 0.4849, 0.4960, 0.5154,
    0.5277, 0.5378, 0.5514, 0.5724, 0.5827, 0.5962,
    0.6053, 0.6179, 0.6226, 0.6269, 0.6333, 0.6409,
    0.6439, 0.6493, 0.6550, 0.6612, 0.6681, 0.6730,
    0.6808, 0.6870, 0.6977, 0.7273, 0.7405, 0.7581,
    0.7814, 0.8006, 0.8079, 0.8179, 0.8389, 0.8520,
    0.8566, 0.8629, 0.8702, 0.8709, 0.8751, 0.8929,
    0.8932, 0.8948, 0.9030, 0.9165, 0.9240, 0.9257,
    0.9260, 0.9406, 0.9420, 0.9561, 0.9591, 0.9787,
    0.9887, 0.9905, 0.9926, 1.0000, 1.0057, 1.0300,
    1.0627, 1.1251, 1.2105, 1.2942, 1.4468, 1.6508,
    1.9213, 2.3483, 2.9048, 4.4276,
)
CALIBRATION_DATASETS = 50
CALIBRATION_CURVES = 2266
CALIBRATION_NEURAL_CURVES = 22

"""Constants of the fit's predictor, derived from the LCDB and neural dev curves: do not edit by hand.

Written by ``python benchmarks/calibrate_fit.py`` from the calibration half of
``lcdb-dev.csv.gz`` (datasets with an even OpenML id; the benchmark reports on
the odd ones): 2266 extrapolations (settings 1/4, 1/8, 1/16) of
50 datasets, and from the calibration half of ``neural-dev.csv.gz``
(22 curves; the split by task is ``benchmarks/_neural.py``'s).  What each
constant means: ``scaling_optuna/fit/_ensemble.py``, ``_band.py`` and ``_noise.py``.
``PROBE`` is what the code computed with them (``_probe.py``): a test fails when it no longer does.
"""

# Families and their weights in the ensemble mean.
FAMILY_WEIGHTS = {'pow3': 0.205, 'pow4': 0.032, 'ilog2': 0.643, 'vap3': 0.119}
# Points weighted by (m / m_max) ** SIZE_WEIGHT_POWER.
SIZE_WEIGHT_POWER = 2.0
# Soft-L1 scale of the log loss (None: squared loss).
ROBUST_SCALE = 0.05
# Weights multiplied by exp(-log(rms / best rms) / MISFIT_TILT) (None: no such tilt).
MISFIT_TILT = 0.5
# The prediction is mix^(1 - PLAIN_WEIGHT) · plain^PLAIN_WEIGHT.
PLAIN_WEIGHT = 0.4
# No family predicts below the log-log line through the last point beyond the data.
FLOOR_GUARD = True
# θ of the band's scale models below and above the mean, one per feature of _band.FEATURES.
SCALE_COEFS_LOW = (-0.6159, 1.0723, 0.3335, -0.2925, 0.4057, 0.1390, 0.4184,)
SCALE_COEFS_HIGH = (-0.4304, 1.6915, 0.3072, 0.3066, 0.1416, 0.2100, 0.4716,)
# The calibration curves' median of each feature (beyond the data), what a typical band is conditioned on.
FEATURE_MEDIANS = (1.0000, 0.6397, -2.9106, -3.7828, -3.4115, -3.8553, 1.6094,)
# b for a curve too short for its own backtest: the calibration curves' median.
DEFAULT_BACKTEST_RATE = 0.04444
# The conformal multiplier k of a band at each confidence: quantiles of max(−error/s_low, error/s_high).
CONFIDENCE_LEVELS = tuple(i / 200 for i in range(100, 200))
BAND_MULTIPLIERS = (
    0.2379, 0.2430, 0.2501, 0.2543, 0.2603, 0.2642,
    0.2692, 0.2731, 0.2785, 0.2839, 0.2906, 0.2981,
    0.3038, 0.3090, 0.3166, 0.3224, 0.3281, 0.3418,
    0.3494, 0.3550, 0.3655, 0.3760, 0.3835, 0.3909,
    0.3986, 0.4057, 0.4214, 0.4313, 0.4399, 0.4485,
    0.4638, 0.4750, 0.4861, 0.4978, 0.5088, 0.5207,
    0.5305, 0.5431, 0.5501, 0.5547, 0.5647, 0.5710,
    0.5763, 0.5805, 0.5850, 0.5908, 0.5964, 0.6030,
    0.6069, 0.6138, 0.6194, 0.6288, 0.6385, 0.6515,
    0.6593, 0.6685, 0.6835, 0.7026, 0.7368, 0.7503,
    0.7893, 0.7959, 0.8078, 0.8117, 0.8134, 0.8183,
    0.8186, 0.8241, 0.8528, 0.8531, 0.8586, 0.8663,
    0.8782, 0.8790, 0.8863, 0.8919, 0.8958, 0.9000,
    0.9095, 0.9273, 0.9499, 0.9584, 0.9597, 0.9689,
    0.9736, 0.9838, 0.9995, 1.0015, 1.0080, 1.0371,
    1.1031, 1.1887, 1.2535, 1.3497, 1.5095, 1.7150,
    2.0963, 2.6642, 3.1991, 4.7259,
)
# How much more the predictor strays than a weighted log-log line when the points carry noise (_noise.PointNoise).
NOISE_GAIN_INSIDE = 3.32
NOISE_GAIN_BEYOND = 1.59
CALIBRATION_DATASETS = 50
CALIBRATION_CURVES = 2266
CALIBRATION_NEURAL_CURVES = 22
# The code's predictions with these constants on _probe.CURVES.
PROBE = (
    0.0613050469, 0.0502701851, 0.0590059985, 0.0437689305, 0.0618524237, 0.0537929669,
    0.206224182, 0.127432079, 0.197539565, 0.10903812, 0.207897902, 0.135527478,
    0.152442093, 0.137923115, 0.120359857, 0.058747724, 0.163986962, 0.235814653,
)

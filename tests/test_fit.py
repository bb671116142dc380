"""Tests for the predictor of scaling_optuna.fit: the calibrated ensemble, its band, the baselines, the fallback."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize

from scaling_optuna.errors import UserError
from scaling_optuna.fit import FAMILIES
from scaling_optuna.fit import fit_least_squares
from scaling_optuna.fit import fit_log_log_line
from scaling_optuna.fit import fit_scaling_law

SLICE = Path(__file__).parent / "data" / "lcdb-slice.csv"
# Every neural evaluation curve (benchmarks/_neural.py --slice --every 1): doubling points fitted, the benchmark's points to predict.
NEURAL_SLICE = Path(__file__).parent / "data" / "neural-slice.csv"


def _slice_tasks(fraction: int = 8):
    """The fixture's curves (every 60th LCDB evaluation curve): fit ≤ 1/fraction of the largest size, predict it."""
    curves: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with SLICE.open(newline="") as f:
        for row in csv.DictReader(f):
            curves.setdefault((row["openmlid"], row["learner"]), []).append((float(row["size_train"]), float(row["error"])))
    tasks = []
    for points in curves.values():
        points.sort()
        m = np.array([p[0] for p in points])
        y = np.array([p[1] for p in points])
        keep = m <= m[-1] / fraction
        tasks.append((m[keep], y[keep], m[-1], y[-1]))
    return tasks


def _neural_slice():
    curves: dict[str, tuple[list[float], list[float], list[float], list[float]]] = {}
    with NEURAL_SLICE.open(newline="") as f:
        for row in csv.DictReader(f):
            sizes, values, targets, truths = curves.setdefault(row["curve"], ([], [], [], []))
            if row["predict"] == "1":
                targets.append(float(row["size"]))
                truths.append(float(row["value"]))
            else:
                sizes.append(float(row["size"]))
                values.append(float(row["value"]))
    return [tuple(np.array(v) for v in c) for c in curves.values()]


def _log_rmse(pred, truth):
    return float(np.sqrt(np.mean(np.log(np.asarray(pred) / truth) ** 2)))


def _saturating(m, alpha=3.0, beta=-0.5, gamma=0.04):
    return alpha * np.asarray(m, float) ** beta + gamma


# ---------------------------------------------------------------------------
# Accuracy and calibration on real curves
# ---------------------------------------------------------------------------


def test_beats_least_squares_on_real_lcdb_curves():
    tasks = _slice_tasks(8)
    assert len(tasks) == 18 and all(len(m) >= 5 for m, *_ in tasks)
    ours, ls = [], []
    for m, y, target, truth in tasks:
        ours.append(fit_scaling_law(m, y, n_bootstrap=0).predict([target]).mean[0])
        ls.append(fit_least_squares(m, y, n_bootstrap=0).predict([target]).mean[0])
    truth = np.array([t[3] for t in tasks])
    ours, ls = np.array(ours), np.array(ls)
    assert np.mean(np.abs(ours - truth)) < np.mean(np.abs(ls - truth))
    assert np.mean(np.abs(np.log(ours / truth))) < np.mean(np.abs(np.log(ls / truth)))


def test_band_holds_real_curves_about_as_often_as_it_says():
    inside = []
    for m, y, target, truth in _slice_tasks(8):
        p = fit_scaling_law(m, y, n_bootstrap=50).predict([target])
        assert p.lower[0] < p.mean[0] < p.upper[0]
        inside.append(p.lower[0] <= truth <= p.upper[0])
    assert 15 <= sum(inside) <= 18  # 95 % of 18 is 17.1


def test_neural_curves_are_predicted_no_worse_than_the_plain_least_squares_fit():
    curves = _neural_slice()
    assert len(curves) == 23
    ours, ls = [], []
    for m, y, targets, truths in curves:
        ours.append(_log_rmse(fit_scaling_law(m, y, n_bootstrap=0).predict(targets).mean, truths))
        ls.append(_log_rmse(fit_least_squares(m, y, n_bootstrap=0).predict(targets).mean, truths))
    assert np.mean(ours) <= np.mean(ls)


def test_neural_band_is_sharp_where_the_curve_is_easy_and_holds_where_it_is_hard():
    widths, held, scores, long_curve = [], [], [], []
    for m, y, targets, truths in _neural_slice():
        p = fit_scaling_law(m, y).predict(targets)
        lower, upper, truth = np.log(p.lower), np.log(p.upper), np.log(truths)
        widths.append(float(np.median(upper - lower)))
        held.append(float(np.mean((lower <= truth) & (truth <= upper))))
        # the 95 % interval score in log space (Gneiting & Raftery 2007): width plus 40× each miss
        scores.append(float(np.mean(upper - lower + 40 * np.maximum(lower - truth, 0) + 40 * np.maximum(truth - upper, 0))))
        long_curve.append(len(m) >= 5)
    widths, long_curve = np.array(widths), np.array(long_curve)
    assert np.mean(held) >= 0.8
    assert np.mean(scores) < 1.5  # the band before it was conditioned on the curve: 2.55 (the log-log line's: 3.69)
    assert np.median(widths[long_curve]) < 0.7 < np.median(widths[~long_curve])  # 3 or 4 points say less
    assert widths.max() > 2 * widths.min()


def test_sizes_counted_in_billions_predict_as_sizes_counted_in_units():
    m = np.array([40.0, 80, 160, 320, 640, 1280])
    y = np.array([0.61, 0.47, 0.37, 0.30, 0.26, 0.235])
    far = np.array([2560.0, 12800.0])
    small = fit_scaling_law(m, y).predict(far)
    large = fit_scaling_law(m * 1e7, y).predict(far * 1e7)
    for a, b in ((small.mean, large.mean), (small.lower, large.lower), (small.upper, large.upper)):
        assert b == pytest.approx(a, rel=1e-6)


def test_band_is_wider_for_a_noisier_curve_and_further_out():
    m = 2.0 ** np.arange(5, 13)
    smooth = _saturating(m)
    noisy = smooth * np.exp(0.08 * np.random.default_rng(1).standard_normal(len(m)))
    far = np.array([2 * m[-1], 10 * m[-1]])
    widths = {}
    for name, y in (("smooth", smooth), ("noisy", noisy)):
        p = fit_scaling_law(m, y).predict(far)
        widths[name] = np.log(p.upper / p.lower)
        assert widths[name][1] > widths[name][0]
    assert np.all(widths["noisy"] > widths["smooth"])


def test_band_says_why_it_is_as_wide_as_it_is():
    m = 2.0 ** np.arange(5, 13)
    smooth = fit_scaling_law(m, _saturating(m)).band_reasons(10 * m[-1])
    # an exact curve: nothing widens its band, its scatter or its own backtest narrows it
    assert smooth.startswith("10× beyond the data; narrower for its ") and "wider" not in smooth
    y = _saturating(m) * np.exp(0.08 * np.random.default_rng(1).standard_normal(len(m)))
    fit = fit_scaling_law(m, y)
    why = fit.band_reasons(10 * m[-1])
    assert why.startswith("10× beyond the data")
    # the noise is what sets this curve's band apart: it spoils the curve's own backtest
    assert "wider than typical for its own backtest's error" in why
    assert fit.band_reasons(m[3]).startswith("inside the fitted sizes")
    assert fit_scaling_law(m, y, n_bootstrap=0).band_reasons(10 * m[-1]) == ""


def test_measurement_band_holds_single_measurements_on_a_small_test_set():
    # Real curves measured as one run would be, each error on 359 test examples (the digits test set):
    # the curve band holds the mean curve; a measured value needs the band for a measurement.
    n, curve_held, measured_held, cases = 359, 0, 0, 0
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for m, y, target, truth in _slice_tasks(8):
            measured, new = rng.binomial(n, y) / n, rng.binomial(n, truth) / n
            if np.any(measured <= 0) or new <= 0:
                continue  # a log-scale fit cannot use a measured 0
            fit = fit_scaling_law(m, measured, n_bootstrap=200)
            curve = fit.predict([target])
            band = fit.predict([target], include_noise=True, test_size=n)
            assert band.upper[0] / band.lower[0] > curve.upper[0] / curve.lower[0]
            curve_held += curve.lower[0] <= new <= curve.upper[0]
            measured_held += band.lower[0] <= new <= band.upper[0]
            cases += 1
    assert cases >= 50
    assert measured_held >= 0.88 * cases and measured_held > curve_held


def test_test_set_noise_grows_as_the_error_falls_and_shrinks_with_the_test_set():
    sizes = 2.0 ** np.arange(6, 12)
    fit = fit_scaling_law(sizes, _saturating(sizes, gamma=0.005))
    grid = [sizes[-1], 8 * sizes[-1]]

    def log_width(p):
        return np.log(p.upper / p.lower)

    small, large = (fit.predict(grid, include_noise=True, test_size=n) for n in (300, 10**7))
    without = fit.predict(grid, include_noise=True)
    assert np.all(log_width(small) > log_width(large))
    np.testing.assert_allclose(log_width(large), log_width(without), atol=0.005)  # a huge test set adds nothing
    # the binomial log noise sqrt((1-p)/(p n)) is larger at the smaller predicted error
    # (the widening is in quadrature: compare the squared upper half-widths)
    extra = np.log(small.upper / small.mean) ** 2 - np.log(without.upper / without.mean) ** 2
    assert small.mean[1] < small.mean[0] and extra[1] > extra[0] > 0
    law = fit_scaling_law(sizes, _saturating(sizes, gamma=0.005), form="saturating")
    with_test_set = law.predict(grid, include_noise=True, test_size=300)
    assert np.all(log_width(with_test_set) > log_width(law.predict(grid, include_noise=True)))


@pytest.mark.parametrize("test_size", [0, -5, 1.5, True, "359"])
def test_bad_test_size_is_one_clear_user_error(test_size):
    fit = fit_scaling_law([100, 200, 400, 800, 1600], [0.5, 0.36, 0.27, 0.2, 0.15])
    with pytest.raises(UserError, match="test_size must be the number of test examples"):
        fit.predict([3200], include_noise=True, test_size=test_size)
    with pytest.raises(UserError, match="pass include_noise=True with it"):
        fit.predict([3200], test_size=359)


def test_band_contains_the_truth_of_a_clean_saturating_curve():
    sizes = 2.0 ** np.arange(5, 12)  # 32 … 2048
    rng = np.random.default_rng(4)
    values = _saturating(sizes) * np.exp(0.01 * rng.standard_normal(len(sizes)))
    fit = fit_scaling_law(sizes, values)
    target = 8 * sizes[-1]
    p = fit.predict([target])
    truth = _saturating(target)
    assert p.lower[0] <= truth <= p.upper[0]
    assert p.mean[0] == pytest.approx(truth, rel=0.1)
    assert p.upper[0] / p.lower[0] < 3.0  # a band, not the whole axis


def test_own_neural_curve_is_predicted_no_worse_than_least_squares():
    # mnist1d, tuned MLP, test error against size (benchmarks/data/own-curves.csv)
    sizes = np.array([250, 500, 1000, 2000, 4000, 8000, 16000], float)
    errors = np.array([0.738, 0.6564, 0.5966, 0.4656, 0.3898, 0.2516, 0.1976])
    ours = fit_scaling_law(sizes[:-1], errors[:-1], plateau=0.9074, n_bootstrap=0).predict([16000]).mean[0]
    ls = fit_least_squares(sizes[:-1], errors[:-1], n_bootstrap=0).predict([16000]).mean[0]
    assert abs(math.log(ours / errors[-1])) <= abs(math.log(ls / errors[-1]))


# ---------------------------------------------------------------------------
# What the fit says it did
# ---------------------------------------------------------------------------


def test_fit_says_which_families_and_how_the_band_was_made():
    sizes = 2.0 ** np.arange(5, 12)
    fit = fit_scaling_law(sizes, _saturating(sizes))
    assert fit.family_weights and set(fit.family_weights) <= set(FAMILIES)
    assert sum(fit.family_weights.values()) == pytest.approx(1.0)
    assert all(w > 0 for w in fit.family_weights.values())
    assert fit.method.startswith("weighted ensemble of ") and "LCDB" in fit.method
    top = max(fit.family_weights, key=fit.family_weights.get)
    assert fit.method.index(top) < fit.method.index("(")  # the heaviest family is named first
    assert "conformalised quantile regression" in fit.band_method and "LCDB" in fit.band_method and "neural" in fit.band_method
    assert fit.fallback == ""
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["family_weights"] == pytest.approx(fit.family_weights)
    assert d["method"] == fit.method and d["band_method"] == fit.band_method and d["fallback"] == ""
    # alpha, beta, gamma stay the paper's law, whatever predicts
    assert str(fit).startswith("ε(m) = ") and "β 95% CI" in str(fit)


def test_explicit_form_and_rising_curves_predict_with_the_law():
    sizes = 2.0 ** np.arange(5, 12)
    sat = fit_scaling_law(sizes, _saturating(sizes), form="saturating")
    assert sat.family_weights == {"pow3": 1.0} and "form='saturating' asked for" in sat.method
    assert "bootstrap" in sat.band_method and "not calibrated" in sat.band_method
    law = sat.alpha * 1e5**sat.beta + sat.gamma
    assert sat.predict([1e5]).mean[0] == pytest.approx(law, rel=1e-9)
    rising = fit_scaling_law(sizes, 0.01 * sizes**0.5)
    assert rising.family_weights == {"pow2": 1.0} and "rises" in rising.method
    assert rising.predict([2 * sizes[-1]]).mean[0] > rising.values_used[-1]


def test_every_family_failing_falls_back_to_the_last_point_and_says_so():
    sizes = [1, 2, 3, 4, 5]
    values = [1e300, 1e-300, 1e300, 1e-300, 1e300]  # no curve family survives 600 decades of zig-zag
    fit = fit_scaling_law(sizes, values)
    assert fit.fallback and "every curve family failed" in fit.fallback
    assert fit.family_weights == {"last point": 1.0} and fit.method.startswith("last observed value")
    p = fit.predict([10, 100])
    assert np.all(p.mean == 1e300) and np.all(np.isnan(p.lower))
    need = fit.data_needed(1e-305)
    assert not need.reachable and "every curve family failed" in need.message
    assert json.loads(json.dumps(fit.to_dict()))["fallback"] == fit.fallback


def test_no_bootstrap_means_no_band_but_a_prediction():
    sizes = 2.0 ** np.arange(5, 12)
    fit = fit_scaling_law(sizes, _saturating(sizes), n_bootstrap=0)
    p = fit.predict([1e5])
    assert np.isfinite(p.mean[0]) and np.isnan(p.lower[0]) and np.isnan(p.upper[0])
    assert fit.band_method.startswith("none")
    need = fit.data_needed(0.05)
    assert need.reachable and math.isnan(need.lower) and math.isnan(need.upper)


# ---------------------------------------------------------------------------
# Sane predictions
# ---------------------------------------------------------------------------


def test_predictions_fall_with_size_and_stay_under_the_plateau():
    sizes = 2.0 ** np.arange(5, 13)
    values = np.minimum(0.9, _saturating(sizes, alpha=40.0, beta=-0.6, gamma=0.05))
    values = values * np.exp(0.02 * np.random.default_rng(3).standard_normal(len(sizes)))
    fit = fit_scaling_law(sizes, values, plateau=0.9)
    grid = np.geomspace(1, 1e8, 200)
    p = fit.predict(grid)
    assert np.all(np.diff(p.mean) <= 1e-12)
    assert np.all(np.diff(p.lower[grid > sizes[-1]]) <= 1e-12)
    assert np.all(p.mean <= 0.9) and np.all(p.upper <= 0.9)
    assert np.all(p.lower <= p.mean) and np.all(p.mean <= p.upper)
    noisy = fit.predict(grid, include_noise=True)
    assert np.all(noisy.lower <= p.lower) and np.all(noisy.upper >= p.upper)


def test_data_needed_inverts_the_prediction():
    sizes = 2.0 ** np.arange(5, 12)
    fit = fit_scaling_law(sizes, _saturating(sizes))
    level = fit.predict([4 * sizes[-1]]).mean[0]
    need = fit.data_needed(level)
    assert need.reachable and need.size == pytest.approx(4 * sizes[-1], rel=1e-6)
    assert need.lower <= need.size <= need.upper
    assert fit.predict([need.lower]).lower[0] == pytest.approx(level, rel=1e-6)  # the optimistic edge gets there first
    if math.isfinite(need.upper):
        assert fit.predict([need.upper]).upper[0] == pytest.approx(level, rel=1e-6)
    floor = fit.floor()
    low = fit.data_needed(0.5 * floor)
    assert not low.reachable and "no amount of data" in low.message and f"{floor:.3g}" in low.message


def test_fit_is_deterministic_and_order_independent():
    sizes = 2.0 ** np.arange(5, 12)
    values = _saturating(sizes) * np.exp(0.03 * np.random.default_rng(8).standard_normal(len(sizes)))
    a = fit_scaling_law(sizes, values, seed=5).predict([1e5])
    perm = np.random.default_rng(0).permutation(len(sizes))
    b = fit_scaling_law(sizes[perm], values[perm], seed=5).predict([1e5])
    assert (a.mean[0], a.lower[0], a.upper[0]) == pytest.approx((b.mean[0], b.lower[0], b.upper[0]), rel=1e-12)


# ---------------------------------------------------------------------------
# The families and the baselines
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pow3", [0.4, 0.05, -0.5]),
        ("pow4", [0.5, 0.03, -0.7, 0.01]),
        ("ilog2", [1.5, 0.02, 2048.0]),  # u = 16·m_max/m_min: sizes counted in sixteenths of the smallest
        ("vap3", [math.log(0.2), -0.3, 0.01]),
    ],
)
def test_each_family_refits_its_own_curve(name, params):
    family = FAMILIES[name]
    m = 2.0 ** np.arange(4, 12)
    truth = family.evaluate(np.array(params), m, m_ref=m[-1])
    fitted, loss = family.fit(m, truth, np.ones(len(m)))
    assert math.isfinite(loss)
    far = np.array([4 * m[-1], 16 * m[-1]])
    expected = family.evaluate(np.array(params), far, m_ref=m[-1])
    got = family.evaluate(fitted, far, m_ref=m[-1])
    assert got == pytest.approx(expected, rel=0.05), (name, fitted)
    inside = family.evaluate(fitted, m, m_ref=m[-1])
    assert np.max(np.abs(np.log(inside / truth))) < 0.02


@pytest.mark.parametrize("name", list(FAMILIES))
def test_no_family_depends_on_the_unit_sizes_are_counted_in(name):
    # examples, or examples seen ×1e6 (neural curves count billions): the same curve, the same prediction
    m = np.array([16.0, 32, 64, 128, 256, 512, 1024])
    y = np.array([0.52, 0.40, 0.31, 0.255, 0.22, 0.20, 0.19])
    far = np.array([4096.0, 16384.0])
    predictions = []
    for unit in (1.0, 1e6):
        params, loss = FAMILIES[name].fit(m * unit, y, np.ones(len(m)))
        assert math.isfinite(loss)
        predictions.append(FAMILIES[name].evaluate(params, far * unit, m_ref=m[-1] * unit))
    assert predictions[1] == pytest.approx(predictions[0], rel=1e-6), name


def test_least_squares_baseline_is_the_plain_log_space_fit():
    sizes = np.array([16, 23, 32, 45, 64, 91, 128, 181], float)
    values = np.array([0.42, 0.37, 0.30, 0.275, 0.25, 0.24, 0.215, 0.21])

    def residuals(p):
        return np.log(values) - np.log(p[0] * sizes ** p[1] + p[2])

    ref = optimize.least_squares(residuals, [2.0, -0.5, 0.1], bounds=([0, -4, 0], [np.inf, -1e-4, values.min()]))
    ls = fit_least_squares(sizes, values)
    ours = np.sum(residuals([ls.alpha, ls.beta, ls.gamma]) ** 2)
    assert ours <= np.sum(ref.fun**2) * (1 + 1e-6)
    assert ls.family_weights == {"pow3": 1.0} and "least-squares" in ls.method
    assert ls.sizes_excluded == () and len(ls.sizes_used) == len(sizes)
    p = ls.predict([8 * sizes[-1]])
    assert p.lower[0] < p.mean[0] < p.upper[0]
    assert p.mean[0] == pytest.approx(ls.alpha * (8 * sizes[-1]) ** ls.beta + ls.gamma, rel=1e-9)
    three = fit_least_squares(sizes[:3], values[:3])
    assert np.isnan(three.predict([1000]).lower[0]) and "3 points" in three.band_method


def test_baselines_describe_themselves():
    sizes, values = [100, 200, 400, 800], [0.5, 0.37, 0.28, 0.21]
    line = fit_log_log_line(sizes, values)
    assert line.family_weights == {"pow2": 1.0} and "log-log" in line.method and "Student-t" in line.band_method


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sizes": [100, 200, 400], "values": [0.5, 0.4]}, "different lengths"),
        ({"sizes": [100, 200], "values": [0.5, 0.4]}, "at least 3"),
        ({"sizes": [100, -200, 400, 800]}, "sizes must be positive"),
        ({"values": [0.5, 0.0, 0.3, 0.25]}, "values must be positive finite"),
        ({"sizes": [100, 200, 200, 800]}, "duplicates"),
        ({"n_bootstrap": -5}, "n_bootstrap"),
        ({"confidence": 95}, "confidence"),
        ({"seed": -1}, "seed"),
    ],
)
def test_least_squares_bad_input_is_one_clear_user_error(kwargs, pattern):
    args = {"sizes": [100, 200, 400, 800], "values": [0.5, 0.4, 0.3, 0.25], **kwargs}
    sizes, values = args.pop("sizes"), args.pop("values")
    with pytest.raises(UserError, match=pattern) as info:
        fit_least_squares(sizes, values, **args)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------
# The calibration is a function of the code
# ---------------------------------------------------------------------------


def test_shipped_calibration_still_describes_the_code():
    from scaling_optuna.fit import _calibration
    from scaling_optuna.fit._probe import probe

    assert probe() == pytest.approx(_calibration.PROBE, rel=1e-7), (
        "the predictor no longer computes what it computed when scaling_optuna/fit/_calibration.py was written: "
        "re-run `python benchmarks/calibrate_fit.py` and re-measure BENCHMARKS.md"
    )


@pytest.mark.slow
def test_calibration_script_writes_constants_that_its_probe_matches(tmp_path):
    import runpy
    import subprocess
    import sys

    from scaling_optuna.fit._band import BandSettings
    from scaling_optuna.fit._ensemble import Settings
    from scaling_optuna.fit._probe import probe

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "_calibration.py"
    data = root / "tests" / "data"
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "calibrate_fit.py"), "--limit", "6", "--out", str(out),
         "--lcdb", str(data / "lcdb-calibration-sample.csv.gz"), "--neural", str(data / "neural-calibration-sample.csv.gz")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    c = runpy.run_path(str(out))
    assert set(c["FAMILY_WEIGHTS"]) <= set(FAMILIES) and sum(c["FAMILY_WEIGHTS"].values()) == pytest.approx(1.0, abs=0.01)
    assert 0.5 < c["NOISE_GAIN_INSIDE"] < 10 and 0.5 < c["NOISE_GAIN_BEYOND"] < 10 and len(c["BAND_MULTIPLIERS"]) == len(c["CONFIDENCE_LEVELS"])
    settings = Settings(c["FAMILY_WEIGHTS"], c["SIZE_WEIGHT_POWER"], c["ROBUST_SCALE"], c["MISFIT_TILT"], c["PLAIN_WEIGHT"], c["FLOOR_GUARD"])
    band = BandSettings(c["SCALE_COEFS_LOW"], c["SCALE_COEFS_HIGH"], c["FEATURE_MEDIANS"], c["DEFAULT_BACKTEST_RATE"],
                        c["CONFIDENCE_LEVELS"], c["BAND_MULTIPLIERS"])
    assert probe(settings, band) == pytest.approx(c["PROBE"], rel=1e-6)

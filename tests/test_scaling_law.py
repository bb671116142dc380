"""Tests for scaling_optuna.fit's law and API: recovery, coverage, form choice, plateau, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scaling_optuna.errors import UserError
from scaling_optuna.fit import (
    DataNeeded,
    Prediction,
    ScalingLawFit,
    fit_log_log_line,
    fit_scaling_law,
)

SIZES9 = 2.0 ** np.arange(6, 15)  # 64 … 16384


def _curve(m, alpha, beta, gamma):
    return alpha * np.asarray(m, float) ** beta + gamma


def _noisy(m, alpha, beta, gamma, sigma, seed):
    rng = np.random.default_rng(seed)
    return _curve(m, alpha, beta, gamma) * np.exp(sigma * rng.standard_normal(len(m)))


# ---------------------------------------------------------------------------
# Parameter recovery
# ---------------------------------------------------------------------------


def test_recovers_saturating_parameters():
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.02, seed=3)
    fit = fit_scaling_law(SIZES9, y, form="saturating", n_bootstrap=500, seed=1)
    assert fit.form == "saturating"
    assert fit.beta == pytest.approx(-0.4, abs=0.08)
    assert fit.gamma == pytest.approx(0.05, abs=0.015)
    assert 2.0 < fit.alpha < 4.5
    for name, true in (("alpha", 3.0), ("beta", -0.4), ("gamma", 0.05)):
        lo, hi = fit.intervals[name]
        assert lo <= true <= hi, (name, lo, hi)
    assert 0.005 < fit.residual_std < 0.05
    assert fit.sizes_excluded == ()
    assert fit.n_bootstrap == 500 and fit.bootstrap_params.shape == (500, 3)


def test_recovers_power_parameters_and_exact_data():
    y = _noisy(SIZES9, 2.0, -0.3, 0.0, 0.03, seed=4)
    fit = fit_scaling_law(SIZES9, y, form="power", seed=2)
    assert fit.gamma == 0.0 and fit.intervals["gamma"] == (0.0, 0.0)
    assert fit.beta == pytest.approx(-0.3, abs=0.03)
    assert fit.alpha == pytest.approx(2.0, rel=0.2)
    lo, hi = fit.intervals["beta"]
    assert lo <= -0.3 <= hi
    # noise-free data is recovered to numerical precision by both forms
    exact = _curve(SIZES9, 3.0, -0.5, 0.02)
    sat = fit_scaling_law(SIZES9, exact, form="saturating", n_bootstrap=0)
    assert (sat.alpha, sat.beta, sat.gamma) == pytest.approx((3.0, -0.5, 0.02), rel=1e-4)
    pw = fit_scaling_law(SIZES9, _curve(SIZES9, 3.0, -0.5, 0.0), form="power", n_bootstrap=0)
    assert (pw.alpha, pw.beta) == pytest.approx((3.0, -0.5), rel=1e-9)


def test_fit_is_deterministic_for_a_seed_and_order_independent():
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.05, seed=8)
    a = fit_scaling_law(SIZES9, y, seed=5)
    perm = np.random.default_rng(0).permutation(len(y))
    b = fit_scaling_law(SIZES9[perm], y[perm], seed=5)
    assert a.form == b.form
    assert (a.alpha, a.beta, a.gamma) == pytest.approx((b.alpha, b.beta, b.gamma), rel=1e-6)
    assert a.intervals["beta"] == pytest.approx(b.intervals["beta"], rel=1e-6)


def test_default_fit_bootstraps_and_has_a_band():
    # Its speed (under 0.2 s with the band) is measured by benchmarks/extrapolation_lcdb.py, not asserted here.
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.05, seed=9)
    fit = fit_scaling_law(SIZES9, y)
    assert fit.n_bootstrap == 1000 and fit.bootstrap_params.shape == (1000, 3)
    p = fit.predict([8 * SIZES9[-1]])
    assert p.lower[0] < p.mean[0] < p.upper[0]


# ---------------------------------------------------------------------------
# Coverage of the bootstrap intervals
# ---------------------------------------------------------------------------


def _coverage(form, alpha, beta, gamma, sigma, sizes, n_seeds, groups_k=0, n_bootstrap=300):
    m_new = sizes[-1] * 8.0
    truth_new = float(_curve([m_new], alpha, beta, gamma)[0])
    cov_beta, cov_pred, w_beta, w_pred = [], [], [], []
    for seed in range(n_seeds):
        rng = np.random.default_rng(10_000 + seed)
        true = _curve(sizes, alpha, beta, gamma)
        if groups_k:
            trials = true[:, None] * np.exp(sigma * rng.standard_normal((len(sizes), groups_k)))
            y, groups = trials[:, 0], [row for row in trials]
        else:
            y, groups = true * np.exp(sigma * rng.standard_normal(len(sizes))), None
        fit = fit_scaling_law(sizes, y, form=form, n_bootstrap=n_bootstrap, seed=seed, groups=groups)
        lo, hi = fit.intervals["beta"]
        cov_beta.append(lo <= beta <= hi)
        w_beta.append(hi - lo)
        p = fit.predict([m_new])
        cov_pred.append(p.lower[0] <= truth_new <= p.upper[0])
        w_pred.append((p.upper[0] - p.lower[0]) / truth_new)
    return np.mean(cov_beta), np.mean(cov_pred), np.median(w_beta), np.median(w_pred)


def test_coverage_saturating_form():
    cb, cp, wb, wp = _coverage("saturating", 3.0, -0.4, 0.05, 0.05, SIZES9, n_seeds=60)
    assert cb >= 0.8 and cp >= 0.8, (cb, cp)
    assert wb < 0.4 and wp < 1.2, (wb, wp)  # not absurdly wide


@pytest.mark.slow
def test_coverage_auto_form_includes_the_form_choice():
    # a saturating truth that noisy short curves often cannot tell from a power law
    cb, cp, wb, wp = _coverage("auto", 3.0, -0.4, 0.05, 0.05, SIZES9[:7], n_seeds=60)
    assert cb >= 0.8 and cp >= 0.8, (cb, cp)
    assert wb < 1.0 and wp < 2.0, (wb, wp)


def test_coverage_power_form():
    cb, cp, wb, wp = _coverage("power", 2.0, -0.35, 0.0, 0.05, SIZES9, n_seeds=80)
    assert cb >= 0.85 and cp >= 0.85, (cb, cp)
    assert wb < 0.1 and wp < 0.5, (wb, wp)


def test_coverage_with_groups_of_trials():
    cb, cp, wb, wp = _coverage("saturating", 3.0, -0.4, 0.05, 0.05, SIZES9, n_seeds=50, groups_k=5)
    assert cb >= 0.75 and cp >= 0.75, (cb, cp)
    assert wb < 0.5 and wp < 1.5, (wb, wp)


def test_noise_band_is_wider_than_curve_band():
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.05, seed=11)
    fit = fit_scaling_law(SIZES9, y, form="saturating", n_bootstrap=400)
    curve = fit.predict([1000, 16384])  # inside the data the noise dominates the band
    obs = fit.predict([1000, 16384], include_noise=True)
    assert np.all(obs.lower < curve.lower) and np.all(obs.upper > curve.upper)
    assert np.all(obs.upper - obs.lower > 1.5 * (curve.upper - curve.lower))
    assert np.all(curve.lower <= curve.mean) and np.all(curve.mean <= curve.upper)
    assert obs.include_noise and not curve.include_noise


# ---------------------------------------------------------------------------
# Form choice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_auto_tells_pure_power_from_saturating(seed):
    sizes = 2.0 ** np.arange(6, 16)  # 10 doublings
    pure = _noisy(sizes, 3.0, -0.4, 0.0, 0.001, seed=seed)
    sat = _noisy(sizes, 3.0, -0.4, 0.02, 0.001, seed=seed)
    f_pure = fit_scaling_law(sizes, pure, n_bootstrap=100)
    f_sat = fit_scaling_law(sizes, sat, n_bootstrap=100)
    assert f_pure.form == "power", f_pure.form_scores
    assert f_sat.form == "saturating", f_sat.form_scores
    assert f_sat.gamma == pytest.approx(0.02, rel=0.1)
    assert set(f_sat.form_scores) == {"power", "saturating", "p_value_gamma_zero"}
    assert f_sat.form_scores["p_value_gamma_zero"] < 0.01


def test_auto_on_noisier_curves_gets_the_form_mostly_right():
    sizes = 2.0 ** np.arange(6, 16)
    right = 0
    for seed in range(20):
        right += fit_scaling_law(sizes, _noisy(sizes, 3.0, -0.4, 0.0, 0.03, seed), n_bootstrap=0).form == "power"
        right += fit_scaling_law(sizes, _noisy(sizes, 3.0, -0.4, 0.05, 0.03, seed), n_bootstrap=0).form == "saturating"
    assert right >= 30


def test_auto_uses_power_for_few_points():
    # 3 and 4 points: only the power law is identifiable / checkable
    for n in (3, 4):
        y = _curve(SIZES9[:n], 3.0, -0.4, 0.05)
        fit = fit_scaling_law(SIZES9[:n], y, n_bootstrap=50)
        assert fit.form == "power" and fit.form_scores == {}
    with pytest.raises(UserError, match="at least 4"):
        fit_scaling_law(SIZES9[:3], _curve(SIZES9[:3], 3.0, -0.4, 0.05), form="saturating")


# ---------------------------------------------------------------------------
# Plateau
# ---------------------------------------------------------------------------


def test_plateau_is_detected_and_excluded():
    true = np.minimum(0.9, _curve(SIZES9, 9.0, -0.45, 0.03))
    assert np.sum(true >= 0.9) == 2
    y = true * np.exp(0.01 * np.random.default_rng(1).standard_normal(len(true)))
    for plateau in (0.9, None):
        fit = fit_scaling_law(SIZES9, y, plateau=plateau, n_bootstrap=200)
        assert fit.sizes_excluded == (64.0, 128.0), plateau
        assert fit.sizes_used == tuple(SIZES9[2:])
        assert "plateau" in fit.excluded_reason and "64, 128" in fit.excluded_reason
        assert fit.beta == pytest.approx(-0.45, abs=0.1)
        if plateau is not None:
            assert "0.9" in fit.excluded_reason
    # the naive line through the plateau points is flattened by them
    assert abs(fit.beta + 0.45) < abs(fit_log_log_line(SIZES9, y).beta + 0.45)


def test_no_plateau_exclusion_on_a_plain_noisy_curve():
    excluded = 0
    for seed in range(20):
        y = _noisy(SIZES9, 2.0, -0.3, 0.0, 0.08, seed)
        excluded += len(fit_scaling_law(SIZES9, y, n_bootstrap=0).sizes_excluded)
    assert excluded <= 4  # noise alone rarely looks like a plateau


def test_plateau_exclusion_leaves_at_least_three_points():
    sizes = SIZES9[:5]
    y = np.array([0.9, 0.9, 0.9, 0.5, 0.3])
    fit = fit_scaling_law(sizes, y, plateau=0.9, n_bootstrap=50)
    assert len(fit.sizes_used) == 3 and len(fit.sizes_excluded) == 2
    assert "capped" in fit.excluded_reason
    assert math.isfinite(fit.beta) and fit.beta < 0


# ---------------------------------------------------------------------------
# data_needed
# ---------------------------------------------------------------------------


def test_data_needed_reachable_and_unreachable():
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.02, seed=5)
    fit = fit_scaling_law(SIZES9, y, form="saturating", n_bootstrap=500)
    target = 0.06
    true_size = ((target - 0.05) / 3.0) ** (1 / -0.4)
    need = fit.data_needed(target)
    assert isinstance(need, DataNeeded) and need.reachable
    assert need.lower <= need.size <= need.upper
    assert need.lower <= true_size <= need.upper
    assert fit.predict([need.size]).mean[0] == pytest.approx(target, rel=1e-6)
    assert "reached at about" in need.message

    low = fit.data_needed(0.01)
    assert not low.reachable and low.size == math.inf
    assert "below the irreducible error" in low.message and "no amount of data" in low.message
    assert f"{fit.gamma:.3g}" in low.message

    easy = fit.data_needed(0.5)  # already reached inside the observed range
    assert easy.reachable and easy.size < max(fit.sizes_used) and "within the observed" in easy.message


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "x", None])
def test_data_needed_bad_target(bad):
    fit = fit_scaling_law(SIZES9, _curve(SIZES9, 3.0, -0.4, 0.05), n_bootstrap=20)
    with pytest.raises(UserError, match="target must be a positive finite number"):
        fit.data_needed(bad)


# ---------------------------------------------------------------------------
# Robustness, increasing laws, serialisation
# ---------------------------------------------------------------------------


def test_non_monotone_real_looking_curve_stays_sane():
    sizes = 100 * 2.0 ** np.arange(7)
    y = np.array([0.62, 0.41, 0.45, 0.30, 0.22, 0.23, 0.15])
    for form in ("auto", "saturating", "power"):
        fit = fit_scaling_law(sizes, y, form=form)
        params = [fit.alpha, fit.beta, fit.gamma, fit.residual_std]
        assert all(math.isfinite(v) for v in params), (form, params)
        assert fit.beta < 0 and fit.alpha > 0
        assert 0.0 <= fit.gamma <= min(y)
        for lo, hi in fit.intervals.values():
            assert math.isfinite(lo) and math.isfinite(hi) and lo <= hi
        p = fit.predict([1e4, 1e5])
        assert np.all(np.isfinite(p.mean)) and np.all(p.mean > 0) and np.all(p.lower <= p.upper)


def test_increasing_power_law():
    sizes = 2.0 ** np.arange(8, 16)
    params = _noisy(sizes, 50.0, 0.6, 0.0, 0.05, seed=2)
    fit = fit_scaling_law(sizes, params, form="power")
    assert fit.beta == pytest.approx(0.6, abs=0.06) and fit.intervals["beta"][0] > 0.4
    assert fit.increasing and str(fit).startswith("y(m) =")
    assert fit.predict([2 * sizes[-1]]).mean[0] > params.max()
    need = fit.data_needed(2 * params.max())
    assert need.reachable and need.size > sizes[-1]
    assert fit_scaling_law(sizes, params).form == "power"  # auto
    assert fit_scaling_law(sizes, params, plateau=0.9).sizes_excluded == ()
    with pytest.raises(UserError, match="decreases"):
        fit_scaling_law(sizes, params, form="saturating")


def test_to_dict_is_json_and_str_is_one_line():
    y = _noisy(SIZES9, 3.0, -0.4, 0.05, 0.02, seed=6)
    fit = fit_scaling_law(SIZES9, y, form="saturating", n_bootstrap=200)
    d = json.loads(json.dumps(fit.to_dict()))
    assert d["form"] == "saturating" and set(d["intervals"]) == {"alpha", "beta", "gamma"}
    assert d["beta"] == pytest.approx(fit.beta) and len(d["sizes_used"]) == 9
    assert "bootstrap_params" not in d
    assert len(json.loads(json.dumps(fit.to_dict(include_bootstrap=True)))["bootstrap_params"]) == 200
    s = str(fit)
    assert "\n" not in s and s.startswith("ε(m) = ") and "β 95% CI" in s and " + " in s
    unreachable = json.loads(json.dumps(fit.data_needed(0.001).to_dict()))
    assert unreachable["size"] == "inf" and unreachable["reachable"] is False
    pred = json.loads(json.dumps(fit.predict([1e5]).to_dict()))
    assert len(pred["mean"]) == 1
    with pytest.raises(Exception):
        fit.beta = 0.0  # frozen


def test_no_bootstrap_gives_nan_bands_and_empty_intervals():
    fit = fit_scaling_law(SIZES9, _curve(SIZES9, 3.0, -0.4, 0.05), n_bootstrap=0)
    assert fit.intervals == {} and fit.bootstrap_params.shape == (0, 3)
    p = fit.predict([1e5])
    assert isinstance(p, Prediction) and np.isnan(p.lower[0]) and np.isfinite(p.mean[0])
    assert "β" not in str(fit).split("=")[0]


def test_log_log_line_baseline():
    y = _noisy(SIZES9, 2.0, -0.3, 0.0, 0.03, seed=7)
    naive = fit_log_log_line(SIZES9, y)
    assert isinstance(naive, ScalingLawFit) and naive.form == "power"
    ref = np.polyfit(np.log(SIZES9), np.log(y), 1)
    assert naive.beta == pytest.approx(ref[0], rel=1e-9)
    assert naive.alpha == pytest.approx(math.exp(ref[1]), rel=1e-9)
    assert naive.interval_method == "ols-t" and naive.n_bootstrap == 0
    lo, hi = naive.intervals["beta"]
    assert lo < naive.beta < hi and lo <= -0.3 <= hi


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

GOOD_S = [100, 200, 400, 800]
GOOD_V = [0.5, 0.4, 0.3, 0.25]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"sizes": [100, 200, 400], "values": [0.5, 0.4]}, "different lengths"),
        ({"sizes": [100, 200], "values": [0.5, 0.4]}, "at least 3"),
        ({"sizes": [100, -200, 400, 800]}, "sizes must be positive"),
        ({"sizes": [100, 0, 400, 800]}, "sizes must be positive"),
        ({"sizes": [100, float("inf"), 400, 800]}, "sizes must be positive"),
        ({"sizes": [100, float("nan"), 400, 800]}, "sizes must be positive"),
        ({"values": [0.5, float("nan"), 0.3, 0.25]}, "values must be positive finite"),
        ({"values": [0.5, float("inf"), 0.3, 0.25]}, "values must be positive finite"),
        ({"values": [0.5, 0.0, 0.3, 0.25]}, "values must be positive finite"),
        ({"values": [0.5, -0.1, 0.3, 0.25]}, "values must be positive finite"),
        ({"sizes": [100, 200, 200, 800]}, "duplicates"),
        ({"sizes": ["a", "b", "c", "d"]}, "1-D sequence of numbers"),
        ({"sizes": [[100, 200], [400, 800]]}, "1-D"),
        ({"form": "exponential"}, "form must be one of"),
        ({"plateau": -0.9}, "plateau must be"),
        ({"plateau": "high"}, "plateau must be"),
        ({"n_bootstrap": -5}, "n_bootstrap"),
        ({"n_bootstrap": 2.5}, "n_bootstrap"),
        ({"confidence": 95}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"seed": -1}, "seed"),
        ({"groups": [[0.5], [0.4]]}, "groups has 2 entries"),
        ({"groups": [[0.5, 0.6], [], [0.3], [0.25]]}, "empty"),
        ({"groups": [[0.5, -1.0], [0.4], [0.3], [0.25]]}, "non-positive"),
        ({"groups": [[0.5], [0.4], [0.3], [0.25]]}, "no spread"),
    ],
)
def test_bad_input_raises_user_error(kwargs, pattern):
    args = {"sizes": GOOD_S, "values": GOOD_V, "n_bootstrap": 20, **kwargs}
    sizes, values = args.pop("sizes"), args.pop("values")
    with pytest.raises(UserError, match=pattern) as info:
        fit_scaling_law(sizes, values, **args)
    assert isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_predict_bad_sizes():
    fit = fit_scaling_law(GOOD_S, GOOD_V, n_bootstrap=20)
    with pytest.raises(UserError, match="sizes must be positive"):
        fit.predict([1000, -1])


# ---------------------------------------------------------------------------
# Property test
# ---------------------------------------------------------------------------


@st.composite
def _curves(draw):
    n = draw(st.integers(3, 12))
    sizes = draw(st.lists(st.integers(1, 10**7), min_size=n, max_size=n, unique=True))
    values = draw(
        st.lists(
            st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False), min_size=n, max_size=n
        )
    )
    form = draw(st.sampled_from(["auto", "saturating", "power"]))
    plateau = draw(st.one_of(st.none(), st.floats(1e-3, 10.0)))
    return sizes, values, form, plateau


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_curves())
def test_property_never_crashes_or_returns_nan(case):
    sizes, values, form, plateau = case
    try:
        fit = fit_scaling_law(sizes, values, form=form, plateau=plateau, n_bootstrap=100, seed=0)
    except UserError:
        return  # e.g. form="saturating" on an increasing curve: a clear user error
    params = [fit.alpha, fit.beta, fit.gamma, fit.residual_std]
    assert not any(math.isnan(v) for v in params), params
    for lo, hi in fit.intervals.values():
        assert not (math.isnan(lo) or math.isnan(hi))
    if fit.form == "saturating":
        assert fit.beta < 0 and 0.0 <= fit.gamma <= min(fit.values_used)
    assert len(fit.sizes_used) >= 3
    fit.predict([1, 1e4, 1e9], include_noise=True)
    fit.data_needed(float(np.median(values)))
    json.dumps(fit.to_dict())

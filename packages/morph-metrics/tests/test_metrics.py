"""JSD, histogram, BCD and Table-1 formatting against closed forms and direct computations."""

import numpy as np
import pytest
from morph_metrics import bcd, default_edges, format_table, format_value, histograms, jsd
from scipy.spatial.distance import jensenshannon


def test_jsd_identical_is_zero_and_disjoint_is_one_bit():
    p = np.array([1.0, 2.0, 3.0, 0.0])
    assert jsd(p, 5 * p) == pytest.approx(0.0, abs=1e-15)  # normalization makes them equal
    assert jsd([1, 0, 0], [0, 0, 7]) == pytest.approx(1.0, abs=1e-15)


def test_jsd_symmetric_and_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        p, q = rng.random(20), rng.random(20)
        p[3] = 0.0
        assert jsd(p, q) == pytest.approx(jsd(q, p), rel=1e-12)
        # scipy returns the JS *distance* (square root of the divergence)
        assert jsd(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-10)


def test_jsd_eps_smoothing_is_added_before_normalizing():
    p, q, eps = np.array([3.0, 0.0, 1.0]), np.array([0.0, 2.0, 2.0]), 0.5
    ps, qs = (p + eps) / (p + eps).sum(), (q + eps) / (q + eps).sum()
    m = (ps + qs) / 2
    direct = 0.5 * np.sum(ps * np.log2(ps / m)) + 0.5 * np.sum(qs * np.log2(qs / m))
    assert jsd(p, q, eps=eps) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize(
    "p, q, eps, match",
    [
        (np.ones((2, 2)), np.ones((2, 2)), 0.0, "1-D"),
        (np.ones(3), np.ones(4), 0.0, "same length"),
        (np.array([1.0, -1.0, 1.0]), np.ones(3), 0.0, "negative"),
        (np.zeros(3), np.ones(3), 0.0, "positive sums"),
        (np.array([1.0, np.nan]), np.ones(2), 0.0, "NaN"),
        (np.ones(3), np.ones(3), -1.0, "eps"),
    ],
)
def test_jsd_validity_conditions_raise(p, q, eps, match):
    with pytest.raises(ValueError, match=match):
        jsd(p, q, eps=eps)


def test_jsd_zero_mass_allowed_with_eps():
    assert np.isfinite(jsd(np.zeros(3), np.ones(3), eps=1e-3))


def test_histograms_shared_edges_clip_drop_nan():
    edges = default_edges("ellipticity")
    assert edges.shape == (51,) and edges[0] == 0 and edges[-1] == 1
    ref = np.array([0.001, 0.5, 0.999, np.nan, np.inf, 1.7, -0.2])
    p, q, e = histograms(ref, ref[:3], statistic="ellipticity")
    assert np.array_equal(e, edges)
    assert p.sum() == 5 and p[0] == 2 and p[-1] == 2  # clipped into the end bins
    assert q.sum() == 3
    p, _, _ = histograms(ref, ref, statistic="ellipticity", out_of_range="drop")
    assert p.sum() == 3
    with pytest.raises(ValueError, match="default histogram range"):
        histograms(ref, ref, statistic="colour")


def _direct_nbcd(z, r, g):
    """Straightforward per-bin loop of Appendix B.1 (independent of the vectorized code)."""
    ok = np.isfinite(z) & np.isfinite(r) & np.isfinite(g) & (r >= 0) & (g >= 0)
    z, r, g = z[ok], r[ok], g[ok]
    total = 0.0
    for k in range(8):
        lo, hi = k / 2, (k + 1) / 2
        sel = (z >= lo) & ((z < hi) if k < 7 else (z <= hi))
        if sel.any():
            total += abs(g[sel].mean() - r[sel].mean())
    return total / r.mean()


def test_bcd_identical_is_zero():
    rng = np.random.default_rng(1)
    z, r = rng.uniform(0, 4, 500), rng.gamma(2.0, 2.0, 500)
    obs, mean, std = bcd(z, r, r.copy(), n_boot=50)
    assert obs == 0.0 and mean == 0.0 and std == 0.0


def test_bcd_constant_offset_closed_form():
    rng = np.random.default_rng(2)
    z = rng.uniform(0, 2.5, 400)  # bins 0..4 populated, 5..7 empty -> 5 bins used
    z[0] = 2.4
    r = rng.gamma(2.0, 2.0, 400)
    delta = 0.3
    obs, _, _ = bcd(z, r, r + delta, n_boot=0)
    assert obs == pytest.approx(5 * delta / r.mean(), rel=1e-12)


def test_bcd_matches_direct_with_invalid_rows_and_closed_last_bin():
    rng = np.random.default_rng(3)
    n = 300
    z = rng.uniform(0, 4, n)
    z[:5] = 4.0  # the last bin is closed on the right
    r, g = rng.gamma(2.0, 1.0, n), rng.gamma(2.2, 1.0, n)
    r[10], g[11], z[12], g[13] = np.nan, np.inf, np.nan, -1.0
    obs, _, _ = bcd(z, r, g, n_boot=0)
    assert obs == pytest.approx(_direct_nbcd(z, r, g), rel=1e-12)


def test_bcd_bootstrap_reproducible_by_seed():
    rng = np.random.default_rng(4)
    z, r, g = rng.uniform(0, 4, 200), rng.gamma(2.0, 1.0, 200), rng.gamma(2.0, 1.1, 200)
    a = bcd(z, r, g, n_boot=100, seed=7)
    assert a == bcd(z, r, g, n_boot=100, seed=7)
    assert a[1:] != bcd(z, r, g, n_boot=100, seed=8)[1:]
    assert a[2] > 0 and abs(a[1] - a[0]) < 3 * a[2]


def test_bcd_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        bcd(np.ones(3), np.ones(3), np.ones(2))


@pytest.mark.parametrize(
    "value, err, kw, text",
    [
        (0.249, 0.040, {}, "0.249(40)"),
        (1.37, 0.50, {}, "1.37(50)"),
        (11.3, 0.8, {}, "11.3(8)"),
        (0.328, 0.110, {}, "0.328(110)"),
        (2.18, 0.06, {}, "2.18(6)"),
        (0.0036, 0.0004, {"decimals": 4}, "0.0036(4)"),
        (0.1832, 0.0033, {"decimals": 4}, "0.1832(33)"),
    ],
)
def test_format_value_matches_paper_table(value, err, kw, text):
    assert format_value(value, err, **kw) == text


def test_format_table_rows():
    t = format_table({"DDPM": {"SMA": (0.249, 0.25, 0.040)}}, ["SMA", "SI"])
    assert t.splitlines()[2] == "| DDPM | 0.249(40) |  |"


def test_compare_drops_flagged_rows_and_matches_bcd_and_jsd():
    from morph_metrics import compare, jsd_bootstrap

    rng = np.random.default_rng(5)
    n = 200
    z = rng.uniform(0, 4, n)
    ref = {"ellipticity": rng.uniform(0, 1, n), "flag": np.zeros(n, np.int32)}
    gen = {"ellipticity": rng.uniform(0, 0.8, n), "flag": np.zeros(n, np.int32)}
    gen["flag"][:10] = 8
    gen["ellipticity"][:10] = 50.0  # would dominate the BCD if the flagged rows were kept
    out = compare(ref, gen, z, statistics=("ellipticity",), n_boot=20, seed=3)
    g = gen["ellipticity"].copy()
    g[:10] = np.nan
    assert out["bcd"]["ellipticity"] == bcd(z, ref["ellipticity"], g, n_boot=20, seed=3)
    obs, mean, std = out["jsd"]["ellipticity"]
    p, q, _ = histograms(ref["ellipticity"], g, statistic="ellipticity")
    assert obs == pytest.approx(jsd(p, q)) and std > 0
    assert jsd_bootstrap(ref["ellipticity"], g, "ellipticity", n_boot=20, seed=3) == (
        obs,
        mean,
        std,
    )


def test_compare_with_every_generated_stamp_flagged_gives_nan_not_an_error():
    from morph_metrics import compare

    rng = np.random.default_rng(1)
    n = 50
    z = rng.uniform(0, 4, n)
    ref = {"ellipticity": rng.uniform(0, 1, n), "flag": np.zeros(n, np.int32)}
    gen = {"ellipticity": np.full(n, np.nan), "flag": np.full(n, 4, np.int32)}
    out = compare(ref, gen, z, statistics=("ellipticity",), n_boot=10, seed=0)
    assert np.all(np.isnan(out["jsd"]["ellipticity"]))
    assert np.all(np.isnan(out["bcd"]["ellipticity"]))

"""Distribution metrics of the reference study (Appendix B): JSD in bits and normalized BCD."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: Default shared histogram edges per statistic: 50 equal bins over a fixed range.
#: Ellipticity [0, 1], semi-major axis [0, 20] px, Sérsic index [0, 8], isophotal area [0, 2500] px.
#: The pixel ranges are sized for 64x64 stamps at 0.168"/px (GalaxiesML): for other stamp sizes
#: or pixel scales pass ``ranges=`` (or ``edges=``) to :func:`histograms` / :func:`compare`.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "ellipticity": (0.0, 1.0),
    "semi_major_axis": (0.0, 20.0),
    "sersic_index": (0.0, 8.0),
    "isophotal_area": (0.0, 2500.0),
}
DEFAULT_BINS = 50

#: Redshift bin edges of the BCD: 8 equal bins on [0, 4] (last bin closed).
BCD_EDGES = np.linspace(0.0, 4.0, 9)


def default_edges(
    statistic: str,
    bins: int = DEFAULT_BINS,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """Shared fixed bin edges ``(bins + 1,)``: ``bins`` equal bins over ``ranges[statistic]``,
    else over ``DEFAULT_RANGES[statistic]`` (units of the column: px for sizes and areas)."""
    table = {**DEFAULT_RANGES, **(ranges or {})}
    if statistic not in table:
        raise ValueError(
            f"no default histogram range for statistic {statistic!r}; known: "
            f"{sorted(table)}. Pass ranges={{{statistic!r}: (lo, hi)}} or edges= explicitly."
        )
    lo, hi = (float(v) for v in table[statistic])
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo) or bins < 1:
        raise ValueError(f"bad histogram range {(lo, hi)} or bins={bins} for {statistic!r}")
    return np.linspace(lo, hi, bins + 1)


def histograms(
    ref: np.ndarray,
    gen: np.ndarray,
    statistic: str | None = None,
    edges: np.ndarray | None = None,
    out_of_range: str = "clip",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    bins: int = DEFAULT_BINS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram two samples on the same fixed edges, ready for :func:`jsd`.

    Args:
        ref, gen: 1-D samples of one statistic (any lengths).
        statistic: name used to look up the range (``ranges``, else ``DEFAULT_RANGES``).
        edges: explicit monotonically increasing edges ``(B + 1,)``; overrides ``statistic``.
        ranges: ``{statistic: (lo, hi)}`` in the column's units, overriding ``DEFAULT_RANGES``.
        bins: equal bins over the range (when ``edges`` is not given).
        out_of_range: ``"clip"`` (default) counts values below/above the range in the first/last
            bin, so a generator that produces e.g. huge areas is penalized rather than ignored;
            ``"drop"`` discards them. NaN and ±inf are always dropped (they are failed
            measurements, reported by the ``flag`` column of :func:`measure`).

    Returns:
        ``(p_counts (B,), q_counts (B,), edges (B + 1,))`` as float64.
    """
    if edges is None:
        if statistic is None:
            raise ValueError("histograms: pass statistic= (for default edges) or edges=")
        edges = default_edges(statistic, bins, ranges)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("histograms: edges must be 1-D, strictly increasing, length >= 2")
    if out_of_range not in ("clip", "drop"):
        raise ValueError(f"histograms: out_of_range must be 'clip' or 'drop', got {out_of_range!r}")

    def _count(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if out_of_range == "clip":
            x = np.clip(x, edges[0], edges[-1])
        counts, _ = np.histogram(x, bins=edges)
        return counts.astype(np.float64)

    return _count(ref), _count(gen), edges


def _kl_bits(a: np.ndarray, b: np.ndarray) -> float:
    pos = a > 0
    return float(np.sum(a[pos] * np.log2(a[pos] / b[pos])))


def jsd(p: np.ndarray, q: np.ndarray, eps: float = 0.0) -> float:
    """Jensen–Shannon divergence in bits between two non-negative vectors (Appendix B.2).

    Both are normalized to sum one after adding ``eps`` to every entry; with the midpoint
    ``m = (p + q) / 2``, ``JSD = KL(p||m)/2 + KL(q||m)/2`` with ``log2`` and sums over entries > 0.
    Result lies in [0, 1].

    Raises:
        ValueError: if an input is not 1-D, the lengths differ, an entry is negative or
            non-finite, ``eps`` is negative, or a sum is not strictly positive after smoothing.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.ndim != 1 or q.ndim != 1:
        raise ValueError(f"jsd: p and q must be 1-D, got shapes {p.shape} and {q.shape}")
    if p.shape != q.shape:
        raise ValueError(f"jsd: p and q must have the same length, got {p.size} and {q.size}")
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"jsd: eps must be finite and >= 0, got {eps}")
    for name, v in (("p", p), ("q", q)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"jsd: {name} contains NaN or inf")
        if np.any(v < 0):
            raise ValueError(f"jsd: {name} contains negative entries")
    p = p + eps
    q = q + eps
    sp, sq = p.sum(), q.sum()
    if not (sp > 0 and sq > 0):
        raise ValueError("jsd: p and q must have strictly positive sums (after eps smoothing)")
    p = p / sp
    q = q / sq
    m = 0.5 * (p + q)
    return 0.5 * _kl_bits(p, m) + 0.5 * _kl_bits(q, m)


def _nbcd(bin_idx: np.ndarray, ref: np.ndarray, gen: np.ndarray, n_bins: int) -> float:
    """Normalized BCD of valid triples; ``bin_idx`` is -1 for redshifts outside every bin."""
    mean_ref = ref.mean() if ref.size else np.nan
    if not (np.isfinite(mean_ref) and mean_ref != 0):
        return np.nan
    inb = bin_idx >= 0
    counts = np.bincount(bin_idx[inb], minlength=n_bins)
    s_ref = np.bincount(bin_idx[inb], weights=ref[inb], minlength=n_bins)
    s_gen = np.bincount(bin_idx[inb], weights=gen[inb], minlength=n_bins)
    used = counts > 0
    diff = np.abs(s_gen[used] - s_ref[used]) / counts[used]
    return float(diff.sum() / mean_ref)


def bcd(
    redshift: np.ndarray,
    ref: np.ndarray,
    gen: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    edges: np.ndarray = BCD_EDGES,
) -> tuple[float, float, float]:
    """Normalized Bin Center Difference with bootstrap errors (Appendix B.1).

    Args:
        redshift, ref, gen: matched 1-D arrays ``(N,)``: redshift, reference and generated value
            of one morphology statistic for the same galaxy.
        n_boot: bootstrap replicates (resampling the valid triples with replacement).
        seed: seed of ``numpy.random.default_rng`` for the bootstrap.
        edges: redshift bin edges; default 8 equal bins on [0, 4], each ``[e_k, e_k+1)`` and the
            last closed on the right.

    Triples with a non-finite member or a negative ``ref``/``gen`` are dropped first. The bin
    means of ref and gen use the same valid triples; ``sum_k |mu_gen - mu_ref|`` over bins with
    samples is divided by the mean of ``ref`` over all valid triples (including any whose
    redshift lies outside the edges, which fall in no bin).

    Returns:
        ``(observed, bootstrap mean, bootstrap std (ddof=1))``; NaN where undefined (no valid
        triple, or zero reference mean). Bootstrap replicates with an undefined value are ignored.
    """
    z = np.asarray(redshift, dtype=np.float64).ravel()
    r = np.asarray(ref, dtype=np.float64).ravel()
    g = np.asarray(gen, dtype=np.float64).ravel()
    if not (z.shape == r.shape == g.shape):
        raise ValueError(
            f"bcd: redshift, ref, gen must have the same length, got {z.size}, {r.size}, {g.size}"
        )
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bcd: edges must be 1-D and strictly increasing")
    if n_boot < 0:
        raise ValueError(f"bcd: n_boot must be >= 0, got {n_boot}")
    valid = np.isfinite(z) & np.isfinite(r) & np.isfinite(g) & (r >= 0) & (g >= 0)
    z, r, g = z[valid], r[valid], g[valid]
    n_bins = edges.size - 1
    idx = np.searchsorted(edges, z, side="right") - 1
    idx[z == edges[-1]] = n_bins - 1
    idx[(z < edges[0]) | (z > edges[-1])] = -1

    observed = _nbcd(idx, r, g, n_bins)
    if n_boot == 0 or z.size == 0:
        return observed, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for s in range(n_boot):
        pick = rng.integers(0, z.size, size=z.size)
        boots[s] = _nbcd(idx[pick], r[pick], g[pick], n_bins)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return observed, np.nan, np.nan
    std = float(boots.std(ddof=1)) if boots.size > 1 else np.nan
    return observed, float(boots.mean()), std


def jsd_bootstrap(
    ref: np.ndarray,
    gen: np.ndarray,
    statistic: str | None = None,
    edges: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    eps: float = 0.0,
    out_of_range: str = "clip",
    ranges: Mapping[str, tuple[float, float]] | None = None,
    bins: int = DEFAULT_BINS,
) -> tuple[float, float, float]:
    """JSD (bits) of two samples on shared edges, with a bootstrap error.

    Each replicate resamples ``ref`` and ``gen`` independently with replacement (after dropping
    non-finite values). Returns ``(observed, bootstrap mean, bootstrap std (ddof=1))``, or
    all-NaN when either sample has no finite value (e.g. every generated stamp was flagged).
    """
    r = np.asarray(ref, dtype=np.float64).ravel()
    g = np.asarray(gen, dtype=np.float64).ravel()
    r, g = r[np.isfinite(r)], g[np.isfinite(g)]
    if r.size == 0 or g.size == 0:
        return np.nan, np.nan, np.nan
    p, q, edges = histograms(r, g, statistic, edges, out_of_range, ranges, bins)
    observed = jsd(p, q, eps)
    if n_boot == 0:
        return observed, np.nan, np.nan
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for s in range(n_boot):
        pb, qb, _ = histograms(
            r[rng.integers(0, r.size, r.size)],
            g[rng.integers(0, g.size, g.size)],
            edges=edges,
            out_of_range=out_of_range,
        )
        boots[s] = jsd(pb, qb, eps)
    std = float(boots.std(ddof=1)) if n_boot > 1 else np.nan
    return observed, float(boots.mean()), std


def good_values(cols: Mapping[str, Any], stat: str, good_only: bool = True) -> np.ndarray:
    """Column ``stat`` as a float64 copy ``(N,)``, NaN on rows with a non-zero ``flag`` (when
    ``good_only`` and the dict has a ``flag`` column): the one masking of every comparison."""
    v = np.asarray(cols[stat], dtype=np.float64).copy()
    if good_only and "flag" in cols:
        v[np.asarray(cols["flag"]) != 0] = np.nan
    return v


def compare(
    ref: Mapping[str, np.ndarray],
    gen: Mapping[str, np.ndarray],
    redshift: np.ndarray,
    statistics: tuple[str, ...] = tuple(DEFAULT_RANGES),
    n_boot: int = 1000,
    seed: int = 0,
    good_only: bool = True,
    edges: Mapping[str, np.ndarray] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    bins: int = DEFAULT_BINS,
) -> dict[str, dict[str, tuple[float, float, float]]]:
    """BCD and JSD for each statistic, from two :func:`measure` results of matched galaxies.

    Args:
        ref, gen: column dicts of the same length ``N`` (row i of both = galaxy i).
        redshift: ``(N,)`` redshifts of the matched galaxies.
        good_only: set values with a nonzero ``flag`` to NaN first (so they are dropped).
        edges: ``{statistic: edges}`` for the JSD histograms (overrides ``ranges``).
        ranges: ``{statistic: (lo, hi)}`` in the column's units (px for ``semi_major_axis`` and
            ``isophotal_area``), ``bins`` equal bins; defaults ``DEFAULT_RANGES`` (64-px stamps).

    Returns:
        ``{"bcd": {stat: (obs, boot mean, boot std)}, "jsd": {stat: (obs, mean, std)}}``.
    """
    out: dict[str, dict[str, tuple[float, float, float]]] = {"bcd": {}, "jsd": {}}
    for stat in statistics:
        r, g = good_values(ref, stat, good_only), good_values(gen, stat, good_only)
        out["bcd"][stat] = bcd(redshift, r, g, n_boot=n_boot, seed=seed)
        out["jsd"][stat] = jsd_bootstrap(
            r,
            g,
            statistic=stat,
            edges=None if edges is None else edges.get(stat),
            n_boot=n_boot,
            seed=seed,
            ranges=ranges,
            bins=bins,
        )
    return out

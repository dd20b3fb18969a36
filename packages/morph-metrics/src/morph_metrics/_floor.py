"""The real-vs-real floor: every distribution metric between two disjoint real samples.

A JSD of 0.05 bits means nothing until one knows what two real samples of the same size and
redshift distribution score on the same bins with the same bootstrap. :func:`compare_columns`
computes JSD and redshift-binned BCD (with bootstrap) for any columns — morphology, photometry —
with :func:`morph_metrics.jsd_bootstrap` and :func:`morph_metrics.bcd`; :func:`real_floor` is the
same call on a second real sample matched in redshift by :func:`match_redshifts`, and
:func:`floor_ratio` divides a method's numbers by the floor.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import numpy as np

from ._metrics import DEFAULT_RANGES, bcd, default_edges, good_values, jsd_bootstrap
from ._photometry import flux_edges, photometry_edges

#: Offset added to "absolute" statistics before :func:`bcd` (which drops negative values and
#: divides by the reference mean); the result is multiplied back by the shifted reference mean, so
#: the BCD is ``Σ_k |μ_gen,k − μ_ref,k|`` in the statistic's own units (mag for magnitudes and
#: colours). The bootstrap replicates' shifted means differ from the full sample's by
#: ~σ/(√N·10⁴), a relative error far below the bootstrap error itself.
_ABS_OFFSET = 1.0e4

Result = dict[str, dict[str, tuple[float, float, float]]]


def column_edges(name: str, ref: np.ndarray) -> np.ndarray:
    """Default shared histogram edges for a column: morphology (``DEFAULT_RANGES``), ``mag_*`` and
    colours (:func:`photometry_edges`), ``flux_*`` (:func:`flux_edges` of the reference)."""
    if name in DEFAULT_RANGES:
        return default_edges(name)
    if name.startswith("flux_"):
        return flux_edges(ref)
    return photometry_edges(name)


def bcd_units(name: str) -> str:
    """``"absolute"`` (BCD in the column's units) for magnitudes and colours — a colour's mean can
    be zero or negative, so the Table-1 normalization is undefined — else ``"normalized"``."""
    return "absolute" if name.startswith("mag_") or "-" in name else "normalized"


def _bcd_absolute(z, r, g, n_boot, seed):
    ok = np.isfinite(z) & np.isfinite(r) & np.isfinite(g)
    if not ok.any():
        return np.nan, np.nan, np.nan
    norm = float(np.mean(r[ok] + _ABS_OFFSET))
    res = bcd(np.where(ok, z, np.nan), r + _ABS_OFFSET, g + _ABS_OFFSET, n_boot=n_boot, seed=seed)
    return tuple(float(v) * norm for v in res)


def compare_columns(
    ref: Mapping[str, np.ndarray],
    gen: Mapping[str, np.ndarray],
    redshift: np.ndarray,
    statistics: Sequence[str],
    *,
    edges: Mapping[str, np.ndarray] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    good_only: bool = True,
) -> Result:
    """JSD (bits) and redshift-binned BCD, each ``(observed, bootstrap mean, bootstrap std)``.

    Args:
        ref, gen: column dicts of matched galaxies, each column ``(N,)``; row ``i`` of ``gen`` was
            conditioned on (or matched to) the redshift of row ``i`` of ``ref``.
        redshift: ``(N,)`` redshifts of ``ref``.
        statistics: columns to compare.
        edges: per-column histogram edges; default :func:`column_edges` (computed from ``ref``,
            so pass the same edges when comparing several sets to one reference).
        good_only: with a ``flag`` column, values of flagged rows are dropped.

    BCD is :func:`morph_metrics.bcd` (8 bins on [0, 4], Table-1 normalization) for morphology and
    fluxes; for magnitudes and colours it is in mag (see :func:`bcd_units`).

    Returns:
        ``{"bcd": {stat: (obs, mean, std)}, "jsd": {stat: (obs, mean, std)}}``.
    """
    z = np.asarray(redshift, dtype=np.float64)
    out: Result = {"bcd": {}, "jsd": {}}
    for s in statistics:
        r, g = good_values(ref, s, good_only), good_values(gen, s, good_only)
        if r.shape != z.shape or g.shape != z.shape:
            raise ValueError(
                f"compare_columns: {s!r} has {r.size} reference and {g.size} generated values "
                f"for {z.size} redshifts; the sets must be matched row by row"
            )
        e = edges[s] if edges is not None and s in edges else column_edges(s, r)
        if bcd_units(s) == "absolute":
            out["bcd"][s] = _bcd_absolute(z, r, g, n_boot, seed)
        else:
            out["bcd"][s] = bcd(z, r, g, n_boot=n_boot, seed=seed)
        out["jsd"][s] = jsd_bootstrap(r, g, edges=e, n_boot=n_boot, seed=seed)
    return out


def match_redshifts(target: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Indices into ``pool`` ``(len(target),)``: for each target redshift the nearest unused pool
    redshift (greedy, without replacement, targets taken in increasing order).

    Raises:
        ValueError: if the pool is smaller than the target or holds non-finite redshifts.
    """
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(pool, dtype=np.float64)
    if p.size < t.size:
        raise ValueError(f"match_redshifts: pool has {p.size} galaxies, need {t.size}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
        raise ValueError("match_redshifts: redshifts must be finite")
    order = np.argsort(p, kind="stable")
    zs = p[order].tolist()
    ids = order.tolist()
    out = np.empty(t.size, dtype=np.int64)
    for i in np.argsort(t, kind="stable"):
        k = bisect.bisect_left(zs, t[i])
        if k == len(zs) or (k > 0 and t[i] - zs[k - 1] <= zs[k] - t[i]):
            k -= 1
        out[i] = ids[k]
        del zs[k], ids[k]
    return out


def real_floor(
    ref: Mapping[str, np.ndarray],
    ref2: Mapping[str, np.ndarray],
    redshift: np.ndarray,
    statistics: Sequence[str],
    **kwargs,
) -> Result:
    """The floor: :func:`compare_columns` between the reference and a second, disjoint real sample.

    ``ref2`` row ``i`` must be a real galaxy redshift-matched to ``ref`` row ``i`` (e.g. chosen by
    :func:`match_redshifts` from another split). Pass the same ``edges``, ``n_boot`` and ``seed``
    as for the methods so that the numbers are comparable.
    """
    return compare_columns(ref, ref2, redshift, statistics, **kwargs)


def floor_ratio(result: Result, floor: Result) -> dict[str, dict[str, float]]:
    """Observed value over the floor's observed value, per metric and statistic (NaN if the floor
    is zero or undefined). A ratio near 1 means indistinguishable from a second real sample."""
    out: dict[str, dict[str, float]] = {}
    for metric, stats in result.items():
        if metric not in ("bcd", "jsd"):
            continue
        out[metric] = {}
        for s, v in stats.items():
            f = floor[metric][s][0]
            out[metric][s] = float(v[0] / f) if np.isfinite(f) and f > 0 else float("nan")
    return out

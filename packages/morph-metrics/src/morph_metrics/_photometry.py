"""Aperture photometry per band: fluxes, asinh magnitudes (Lupton et al. 1999) and colours.

Input stamps are ``(N, H, W, C)`` **linear flux** (HSC coadd units: ``mag = zero_point − 2.5 log10
flux`` with ``zero_point = 27``). Every galaxy is measured in the same circular aperture, centred
on the stamp centre by default, so the numbers compare generated and real stamps like for like.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: HSC coadd zero point of the pixel values (AB mag): ``mag = 27 − 2.5 log10(flux)``.
HSC_ZERO_POINT = 27.0
#: HSC bands in wavelength order.
HSC_BANDS: tuple[str, ...] = ("g", "r", "i", "z", "y")
#: Redshift bins of the per-bin colour offsets: [0, 0.5), [0.5, 1), [1, 2), [2, 4].
COLOUR_Z_EDGES = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
#: Default histogram ranges (50 bins) of photometry columns, used by :func:`photometry_edges`:
#: asinh magnitudes [15, 30] mag, colours [−1.5, 2.5] mag (HSC-like galaxies at ZP 27 lie well
#: inside). Values outside are clipped into the end bins by :func:`morph_metrics.histograms`.
PHOTOMETRY_RANGES: dict[str, tuple[float, float]] = {"mag": (15.0, 30.0), "colour": (-1.5, 2.5)}

_POGSON = 2.5 / np.log(10.0)  # 1.0857...


def _check_images(images: np.ndarray, where: str = "images") -> np.ndarray:
    """``images`` as an ``(N, H, W, C)`` array of real numbers (``(N, H, W)`` gains ``C = 1``).

    The one check of every entry point that takes stamps: wrong ndim, a non-numeric dtype and a
    channels-first ``(N, C, H, W)`` batch (fewer rows than channels, e.g. ``(N, 5, 64, 64)``)
    raise a ``ValueError`` naming ``where`` and the shape.
    """
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{where}: images must be (N, H, W, C) or (N, H, W), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{where}: images must be real numbers, got dtype {x.dtype}")
    n, h, w, c = x.shape
    if h < c and h <= 16:
        raise ValueError(
            f"{where}: images of shape {x.shape} look channels-first (N, C, H, W); pass "
            f"channels-last (N, H, W, C), e.g. images.transpose(0, 2, 3, 1)"
        )
    return x


def aperture_weights(
    shape: tuple[int, int], radius: float, center: tuple[float, float] | None = None
) -> np.ndarray:
    """Exact fractional overlap ``(H, W)`` of each pixel with a circle of ``radius`` px.

    ``center`` is ``(x, y)`` in pixels (pixel centres at integers); default the stamp centre
    ``((W − 1)/2, (H − 1)/2)``. Computed with photutils' exact geometric overlap.
    """
    from photutils.aperture import CircularAperture

    h, w = shape
    if not radius > 0:
        raise ValueError(f"aperture radius must be > 0 px, got {radius}")
    cx, cy = ((w - 1) / 2.0, (h - 1) / 2.0) if center is None else center
    mask = CircularAperture((cx, cy), r=radius).to_mask(method="exact")
    return mask.to_image((h, w)).astype(np.float64)


def aperture_flux(
    images: np.ndarray, radius: float, center: tuple[float, float] | None = None
) -> np.ndarray:
    """Circular-aperture flux ``(N, C)`` (image units) of ``(N, H, W, C)`` stamps.

    ``radius`` in pixels; ``center`` ``(x, y)`` px, default the stamp centre. Non-finite pixels
    make that galaxy's band NaN.
    """
    x = _check_images(images, "aperture_flux")
    w = aperture_weights(x.shape[1:3], radius, center)
    return np.einsum("nhwc,hw->nc", x.astype(np.float64, copy=False), w)


def softening_from_sky(sky_sigma: np.ndarray, radius: float) -> np.ndarray:
    """Lupton's optimal asinh softening ``b = 1.042 σ_ap`` per band (flux units).

    ``sky_sigma``: per-pixel sky σ per band ``(C,)``; ``σ_ap = σ √(π r²)`` is the noise of the
    aperture flux for uncorrelated pixels (``radius`` in px).
    """
    s = np.asarray(sky_sigma, dtype=np.float64)
    return 1.042 * s * np.sqrt(np.pi * radius**2)


def asinh_mag(
    flux: np.ndarray, softening: np.ndarray | float, zero_point: float = HSC_ZERO_POINT
) -> np.ndarray:
    """Asinh magnitudes (Lupton, Gunn & Szalay 1999) of fluxes ``(..., C)``.

    ``m = zp − 2.5 log10(b) − (2.5 / ln 10) · asinh(f / (2b))`` with ``b`` (``softening``, flux
    units, scalar or ``(C,)``) the softening per band: equal to ``zp − 2.5 log10 f`` for ``f ≫ b``,
    finite and monotonic for faint, zero and negative fluxes. Returns mag, same shape as ``flux``.
    """
    f = np.asarray(flux, dtype=np.float64)
    b = np.asarray(softening, dtype=np.float64)
    if np.any(~(b > 0)):
        raise ValueError("asinh_mag: softening must be > 0 in every band")
    return zero_point - _POGSON * (np.arcsinh(f / (2.0 * b)) + np.log(b))


def colour_names(bands: Sequence[str] = HSC_BANDS) -> list[str]:
    """Names of the adjacent colours, e.g. ``["g-r", "r-i", "i-z", "z-y"]``."""
    return [f"{a}-{b}" for a, b in zip(bands[:-1], bands[1:])]


def colours(mags: np.ndarray, bands: Sequence[str] = HSC_BANDS) -> dict[str, np.ndarray]:
    """Adjacent colours ``{"g-r": m_g − m_r, ...}`` (each ``(N,)``, mag) from ``mags (N, C)``."""
    m = np.asarray(mags, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != len(bands):
        raise ValueError(f"mags must be (N, {len(bands)}) for bands {tuple(bands)}, got {m.shape}")
    return {n: m[:, k] - m[:, k + 1] for k, n in enumerate(colour_names(bands))}


def photometry(
    images: np.ndarray,
    radius: float,
    softening: np.ndarray | float,
    *,
    zero_point: float = HSC_ZERO_POINT,
    bands: Sequence[str] = HSC_BANDS,
    center: tuple[float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Aperture photometry columns of ``(N, H, W, C)`` stamps, each ``(N,)``.

    Columns: ``flux_<band>`` (image units), ``mag_<band>`` (asinh mag, :func:`asinh_mag`) and the
    adjacent colours ``"<a>-<b>"`` (mag). Use the same ``radius`` and ``softening`` for every set
    you compare (e.g. ``softening_from_sky`` of the real stamps' sky σ).
    """
    x = _check_images(images, "photometry")
    if x.shape[-1] != len(bands):
        raise ValueError(f"images have {x.shape[-1]} bands but bands={tuple(bands)}")
    flux = aperture_flux(x, radius, center)
    mags = asinh_mag(flux, softening, zero_point)
    cols = {f"flux_{b}": flux[:, k] for k, b in enumerate(bands)}
    cols |= {f"mag_{b}": mags[:, k] for k, b in enumerate(bands)}
    cols |= colours(mags, bands)
    return cols


def photometry_edges(name: str, bins: int = 50) -> np.ndarray:
    """Default histogram edges ``(bins + 1,)`` of a photometry column from :func:`photometry`.

    ``mag_*`` → ``PHOTOMETRY_RANGES["mag"]``, colours ``a-b`` → ``PHOTOMETRY_RANGES["colour"]``.
    Fluxes span decades and have no fixed range: use :func:`flux_edges`.
    """
    if name.startswith("mag_"):
        lo, hi = PHOTOMETRY_RANGES["mag"]
    elif "-" in name:
        lo, hi = PHOTOMETRY_RANGES["colour"]
    else:
        raise ValueError(f"no default edges for photometry column {name!r}; use flux_edges")
    return np.linspace(lo, hi, bins + 1)


def flux_edges(ref_flux: np.ndarray, bins: int = 50) -> np.ndarray:
    """Edges for a flux column: ``bins`` equal-count bins of the reference (real) fluxes between
    their 0.5 and 99.5 percentiles (fluxes span decades, so fixed linear bins would put nearly
    every galaxy in one bin). Share them between every set compared to that reference."""
    r = np.asarray(ref_flux, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        raise ValueError("flux_edges: no finite reference flux")
    e = np.unique(np.quantile(r, np.linspace(0.005, 0.995, bins + 1)))
    if e.size < 2:
        e = np.array([e[0] - 0.5, e[0] + 0.5])
    return e


def binned_median_offset(
    redshift: np.ndarray,
    ref: np.ndarray,
    gen: np.ndarray,
    edges: np.ndarray = COLOUR_Z_EDGES,
    gen_redshift: np.ndarray | None = None,
) -> np.ndarray:
    """Median of ``gen`` minus median of ``ref`` per redshift bin ``(len(edges) − 1,)``.

    ``redshift`` are the redshifts of ``ref`` (and of ``gen`` unless ``gen_redshift`` is given);
    bins ``[e_k, e_k+1)``, the last closed. NaN where a bin is empty in either set.
    """

    def _idx(z):
        z = np.asarray(z, dtype=np.float64)
        i = np.searchsorted(edges, z, side="right") - 1
        i[z == edges[-1]] = len(edges) - 2
        i[(z < edges[0]) | (z > edges[-1]) | ~np.isfinite(z)] = -1
        return i

    edges = np.asarray(edges, dtype=np.float64)
    ir, ig = _idx(redshift), _idx(redshift if gen_redshift is None else gen_redshift)
    r, g = np.asarray(ref, np.float64), np.asarray(gen, np.float64)
    out = np.full(len(edges) - 1, np.nan)
    for k in range(len(edges) - 1):
        a, b = r[(ir == k) & np.isfinite(r)], g[(ig == k) & np.isfinite(g)]
        if a.size and b.size:
            out[k] = np.median(b) - np.median(a)
    return out


def binned_quantiles(
    redshift: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    q: Sequence[float] = (0.16, 0.5, 0.84),
) -> np.ndarray:
    """Quantiles of ``values`` per redshift bin: ``(len(q), len(edges) − 1)``, NaN for empty bins."""
    z = np.asarray(redshift, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, len(edges) - 2)
    ok = np.isfinite(z) & np.isfinite(v) & (z >= edges[0]) & (z <= edges[-1])
    out = np.full((len(q), len(edges) - 1), np.nan)
    for k in range(len(edges) - 1):
        x = v[ok & (idx == k)]
        if x.size:
            out[:, k] = np.quantile(x, q)
    return out

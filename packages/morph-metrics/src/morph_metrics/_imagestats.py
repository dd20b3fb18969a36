"""Image statistics of ``(N, H, W, C)`` linear-flux stamps: sky noise, border excess, radial
profiles and pixel-value histograms — the defects (missing sky noise, bright frames, colour
casts in the outskirts) that morphology alone does not see."""

from __future__ import annotations

import numpy as np

from ._photometry import _check_images

#: Scale factor turning a median absolute deviation into a Gaussian σ.
MAD_TO_SIGMA = 1.482602218505602


def border_mask(shape: tuple[int, int], width: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the outer ``width`` pixels of a stamp."""
    h, w = shape
    if not 1 <= width <= min(h, w) // 2:
        raise ValueError(f"border width must be in [1, {min(h, w) // 2}] px, got {width}")
    m = np.ones((h, w), dtype=bool)
    m[width : h - width, width : w - width] = False
    return m


def border_pixels(images: np.ndarray, width: int = 4) -> np.ndarray:
    """Pixels of the outer ``width`` px of each stamp: ``(N, P, C)``."""
    x = _check_images(images, "border_pixels")
    return x[:, border_mask(x.shape[1:3], width), :]


def sky_noise(images: np.ndarray, width: int = 4) -> np.ndarray:
    """Robust per-stamp, per-band sky σ ``(N, C)`` (image units): ``1.4826 · MAD`` of the
    outer ``width`` px, insensitive to a few galaxy pixels reaching the border."""
    b = border_pixels(_check_images(images, "sky_noise"), width).astype(np.float64)
    med = np.median(b, axis=1, keepdims=True)
    return MAD_TO_SIGMA * np.median(np.abs(b - med), axis=1)


def sky_ratio(gen: np.ndarray, real: np.ndarray, width: int = 4) -> np.ndarray:
    """Median sky σ of generated over median sky σ of real stamps, per band ``(C,)``.

    1 for a generator that reproduces the noise; 0.5 if its sky is half as noisy.
    """
    return np.median(sky_noise(gen, width), axis=0) / np.median(sky_noise(real, width), axis=0)


def border_level(images: np.ndarray) -> np.ndarray:
    """Median of each stamp's outermost pixel ring (width 1), per stamp and band ``(N, C)``.

    A median, not a mean: a companion galaxy crossing the edge of a few stamps does not move it,
    while a frame of constant amplitude on the edge shifts it by exactly that amplitude.
    """
    return np.median(border_pixels(images, 1).astype(np.float64), axis=1)


def border_excess(
    gen: np.ndarray, real: np.ndarray, sky_width: int = 4, real_sky: np.ndarray | None = None
) -> np.ndarray:
    """Border excess per band ``(C,)``, in units of the real sky σ.

    ``(level of gen − level of real) / σ_sky,real``, with the level of a set the median over its
    stamps of :func:`border_level` (outermost ring) and ``σ_sky,real`` the median
    :func:`sky_noise` of the real stamps (border ``sky_width`` px) unless ``real_sky`` ``(C,)`` is
    given. A bright frame of amplitude ``A σ`` on the edge pixels scores ``A``.
    """
    sky = np.median(sky_noise(real, sky_width), axis=0) if real_sky is None else real_sky
    diff = np.median(border_level(gen), axis=0) - np.median(border_level(real), axis=0)
    return diff / np.asarray(sky, dtype=np.float64)


def radial_profile(
    images: np.ndarray,
    edges: np.ndarray | None = None,
    center: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean flux in circular annuli, per stamp and band.

    Args:
        images: ``(N, H, W, C)`` linear flux.
        edges: annulus edges in px ``(R + 1,)``; default 1-px annuli out to ``min(H, W) / 2``.
        center: ``(x, y)`` px, default the stamp centre ``((W − 1)/2, (H − 1)/2)``.

    Returns:
        ``(profiles (N, R, C) image units per pixel, edges (R + 1,))``; NaN for empty annuli.
    """
    x = _check_images(images, "radial_profile")
    n, h, w, c = x.shape
    cx, cy = ((w - 1) / 2.0, (h - 1) / 2.0) if center is None else center
    if edges is None:
        edges = np.arange(0.0, min(h, w) / 2.0 + 1e-9, 1.0)
    edges = np.asarray(edges, dtype=np.float64)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(xx - cx, yy - cy).ravel()
    idx = np.searchsorted(edges, r, side="right") - 1
    n_r = len(edges) - 1
    onehot = np.zeros((h * w, n_r))
    ok = (idx >= 0) & (idx < n_r)
    onehot[np.flatnonzero(ok), idx[ok]] = 1.0
    counts = onehot.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.einsum("npc,pr->nrc", x.reshape(n, h * w, c).astype(np.float64), onehot)
        prof = prof / counts[None, :, None]
    return prof, edges


def pixel_histogram(
    images: np.ndarray, edges: np.ndarray, softening: np.ndarray | float = 1.0
) -> np.ndarray:
    """Histogram of ``asinh(pixel / softening)`` per band: counts ``(C, B)`` on ``edges (B + 1,)``.

    ``softening`` (image units, scalar or ``(C,)``, e.g. the real sky σ) makes the stretch
    linear within the noise and logarithmic for bright pixels; use the same value and edges for
    every set compared. Values outside the edges are clipped into the end bins; NaN dropped.
    """
    x = _check_images(images, "pixel_histogram").astype(np.float64)
    s = np.broadcast_to(np.asarray(softening, dtype=np.float64), (x.shape[-1],))
    edges = np.asarray(edges, dtype=np.float64)
    out = np.empty((x.shape[-1], len(edges) - 1))
    for k in range(x.shape[-1]):
        v = np.arcsinh(x[..., k].ravel() / s[k])
        v = np.clip(v[np.isfinite(v)], edges[0], edges[-1])
        out[k] = np.histogram(v, bins=edges)[0]
    return out

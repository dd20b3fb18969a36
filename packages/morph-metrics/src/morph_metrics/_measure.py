"""Per-stamp morphology measurement (two protocols) and the chunked, executor-driven batch driver."""

from __future__ import annotations

import concurrent.futures as cf
import enum
import importlib
import multiprocessing as mp
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ._photometry import _check_images
from ._survey import Survey, gaussian_psf

PROTOCOLS = ("statmorph", "paper")


class Flag(enum.IntFlag):
    """Bits of the ``flag`` column (0 = good). Values are NaN when any of bits 1-16 is set."""

    NONFINITE = 1  #: the stamp (selected band) has NaN or inf pixels
    NONPOSITIVE_FLUX = 2  #: total flux of the stamp <= 0
    LOW_SIGNAL = 4  #: paper protocol: mean(sub / rms) < 0.5 (the reference code skips these)
    NO_DETECTION = 8  #: no segment found (or zero background RMS)
    FAILED = 16  #: photutils/statmorph raised; values NaN
    STATMORPH_BAD = 32  #: statmorph flag >= 2 (bad/catastrophic); values kept, use with care
    SERSIC_BAD = 64  #: statmorph flag_sersic != 0 (fit did not converge well); values kept


_NAN_FLAGS = Flag.NONFINITE | Flag.NONPOSITIVE_FLUX | Flag.LOW_SIGNAL | Flag.NO_DETECTION
_NAN_FLAGS |= Flag.FAILED

COMMON_COLUMNS = (
    "semi_major_axis",
    "ellipticity",
    "sersic_index",
    "isophotal_area",
    "x_centroid",
    "y_centroid",
    "background",
    "background_rms",
    "snr",
)
PAPER_COLUMNS = (*COMMON_COLUMNS, "semi_minor_axis", "orientation", "mean_snr")
STATMORPH_COLUMNS = (
    *COMMON_COLUMNS,
    "half_light_radius",
    "ellipticity_moments",
    "sn_per_pixel",
    "concentration",
    "asymmetry",
    "smoothness",
    "gini",
    "m20",
    "statmorph_flag",
)


#: statmorph protocol's default segmentation (measured on structured GalSim galaxies, see the
#: README): detection on the stamp smoothed to a total FWHM >= ``DETECT_FWHM_PX`` px; the central
#: segment is deblended on that image smoothed to a total sigma >= ``DEBLEND_SMOOTH`` x its
#: radius sqrt(area / pi), and a branch becomes a separate source only if it holds
#: >= ``STATMORPH_CONTRAST`` of the flux
#: (SExtractor's DEBLEND_MINCONT). The paper protocol keeps the reference code's contrast 0.001
#: without the extra smoothing.
STATMORPH_CONTRAST = 0.1
PAPER_CONTRAST = 0.001
DEBLEND_LEVELS = 32
DETECT_FWHM_PX = 3.0
DEBLEND_SMOOTH = 0.1


@dataclass(frozen=True)
class _Params:
    protocol: str
    psf: np.ndarray | None
    gain: float | None
    n_sigma: float
    n_pixels: int
    smooth_sigma: float
    min_mean_snr: float
    statmorph_all: bool = False
    contrast: float = STATMORPH_CONTRAST
    n_levels: int = DEBLEND_LEVELS
    detect_fwhm: float = DETECT_FWHM_PX
    smooth: float = DEBLEND_SMOOTH


def _clipped_stats(x: np.ndarray, sigma: float = 3.0, maxiters: int = 10) -> tuple[float, float]:
    """Iterative sigma-clipped (median, std) of a 1-D sample."""
    x = x[np.isfinite(x)]
    for _ in range(maxiters):
        if x.size == 0:
            return np.nan, np.nan
        med, std = np.median(x), x.std()
        keep = np.abs(x - med) <= sigma * std
        if keep.all():
            break
        x = x[keep]
    return float(np.median(x)), float(x.std())


def _sextractor_background(x: np.ndarray) -> tuple[float, float]:
    """SExtractor/SEP global background (mode estimate 2.5 median - 1.5 mean) and RMS."""
    x = x.ravel()
    for _ in range(20):
        mean, std = x.mean(), x.std()
        keep = np.abs(x - mean) <= 3.0 * std
        if keep.all() or keep.sum() < 3:
            break
        x = x[keep]
    mean, med, std = x.mean(), np.median(x), x.std()
    if std > 0 and abs(mean - med) / std > 0.3:
        bkg = med  # strongly skewed: SExtractor falls back to the median
    else:
        bkg = 2.5 * med - 1.5 * mean
    return float(bkg), float(std)


def _central_label(segm: np.ndarray) -> int:
    """Label of the segment containing the stamp centre, else the one nearest to it (0: none)."""
    h, w = segm.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    lab = int(segm[int(round(cy)), int(round(cx))])
    if lab:
        return lab
    yy, xx = np.nonzero(segm)
    if yy.size == 0:
        return 0
    i = np.argmin((yy - cy) ** 2 + (xx - cx) ** 2)
    return int(segm[yy[i], xx[i]])


def _segment(
    det: np.ndarray,
    threshold: float,
    n_pixels: int,
    contrast: float,
    n_levels: int,
    smooth: float = 0.0,
    mask: np.ndarray | None = None,
    det_sigma: float = 0.0,
) -> tuple[np.ndarray | None, int]:
    """photutils detection, then deblending of the central segment only.

    Returns ``(labels, central label)``; ``(None, 0)`` if nothing is detected. Only the segment
    containing (or nearest to) the stamp centre is deblended, by SExtractor's multi-threshold
    contrast criterion (``n_levels`` exponential levels; a branch becomes a separate source if it
    holds at least ``contrast`` of the segment's flux; ``contrast >= 1``: no deblending). With
    ``smooth > 0`` the deblending runs on the detection image smoothed to a Gaussian sigma of at
    least ``smooth * sqrt(area / pi)`` of the segment (``det_sigma``: the smoothing it already
    has; the extra sigma adds in quadrature), so knots, arms and clumps much smaller than the
    galaxy merge into it while a neighbour galaxy (its own saddle) stays apart. The other
    segments are only masked, and skipping them makes detection several times faster.
    """
    from photutils.segmentation import deblend_sources, detect_sources

    segm = detect_sources(det, threshold, n_pixels, mask=mask)
    if segm is None:
        return None, 0
    lab = _central_label(segm.data)
    if lab == 0 or contrast >= 1:
        return segm.data, lab
    data = det
    if smooth > 0:
        radius = np.sqrt(np.count_nonzero(segm.data == lab) / np.pi)
        extra = (smooth * radius) ** 2 - det_sigma**2
        if extra > 0.01:
            data = ndimage.gaussian_filter(det, np.sqrt(extra), mode="nearest")
    segm = deblend_sources(
        data, segm, n_pixels, labels=[lab], n_levels=n_levels, contrast=contrast, progress_bar=False
    )
    return segm.data, _central_label(segm.data)


def _kernel_sigma(kernel: np.ndarray) -> float:
    """RMS width (px) of a kernel: sqrt of the mean of its two second moments."""
    k = np.clip(kernel, 0, None)
    yy, xx = np.mgrid[: k.shape[0], : k.shape[1]].astype(np.float64)
    t = k.sum()
    x0, y0 = (k * xx).sum() / t, (k * yy).sum() / t
    return float(np.sqrt(0.5 * (k * ((xx - x0) ** 2 + (yy - y0) ** 2)).sum() / t))


def _detection_image(img: np.ndarray, p: _Params) -> tuple[np.ndarray, float]:
    """The stamp convolved with the PSF, then with the Gaussian that brings the total smoothing
    to FWHM ``p.detect_fwhm`` px (none if the PSF is already that wide); and the RMS width (px)
    of that total smoothing kernel."""
    from scipy.signal import fftconvolve

    from ._survey import FWHM_TO_SIGMA

    det = fftconvolve(img, p.psf, mode="same") if p.psf.size > 1 else img.copy()
    psf_sigma = _kernel_sigma(p.psf)
    target = p.detect_fwhm * FWHM_TO_SIGMA
    extra = target**2 - psf_sigma**2
    if extra > 0.01:
        det = ndimage.gaussian_filter(det, np.sqrt(extra), mode="nearest")
    return det, max(psf_sigma, target)


def _second_moments(img: np.ndarray, mask: np.ndarray) -> tuple[float, ...]:
    """SExtractor-style isophotal moments of ``img`` over ``mask``.

    Returns ``(x, y, a, b, theta_deg)``: flux-weighted centroid, 1-sigma semi-major/minor axes of
    the second-moment ellipse (px) and its orientation (degrees from +x, counter-clockwise).
    """
    yy, xx = np.nonzero(mask)
    v = img[yy, xx].astype(np.float64)
    tot = v.sum()
    if not tot > 0:
        return (np.nan,) * 5
    x = (v * xx).sum() / tot
    y = (v * yy).sum() / tot
    x2 = (v * xx * xx).sum() / tot - x * x
    y2 = (v * yy * yy).sum() / tot - y * y
    xy = (v * xx * yy).sum() / tot - x * y
    if x2 * y2 - xy * xy < 0.00694:  # SExtractor's guard for single-pixel-like objects
        x2 += 1 / 12
        y2 += 1 / 12
    half = 0.5 * (x2 + y2)
    root = np.sqrt((0.5 * (x2 - y2)) ** 2 + xy * xy)
    a = np.sqrt(half + root)
    b = np.sqrt(max(half - root, 0.0))
    theta = 0.5 * np.degrees(np.arctan2(2 * xy, x2 - y2))
    return x, y, a, b, theta


_Result = tuple[dict[str, float], int, str]


def _measure_paper(img: np.ndarray, p: _Params, bad: np.ndarray | None = None) -> _Result:
    sm = ndimage.gaussian_filter(img, p.smooth_sigma)  # scipy default mode, as the reference
    bkg, rms = _sextractor_background(sm if bad is None else sm[~bad])
    out: dict[str, float] = {"background": bkg, "background_rms": rms}
    if not rms > 0:
        return out, int(Flag.NO_DETECTION), "zero background RMS"
    sub = sm - bkg
    if bad is not None:
        sub[bad] = 0.0
    mean_snr = float(np.mean(sub / rms))
    out["mean_snr"] = mean_snr
    if mean_snr < p.min_mean_snr:
        return out, int(Flag.LOW_SIGNAL), f"mean S/N {mean_snr:.3g} < {p.min_mean_snr}"
    det = ndimage.convolve(sub, _SEP_FILTER, mode="constant")
    det_sigma = float(np.hypot(p.smooth_sigma, 0.71))  # the 1.5 px Gaussian, then the SEP filter
    segm, lab = _segment(
        det, p.n_sigma * rms, p.n_pixels, p.contrast, p.n_levels, p.smooth, bad, det_sigma
    )
    if lab == 0:
        return out, int(Flag.NO_DETECTION), f"no segment of >= {p.n_pixels} px above threshold"
    seg = segm == lab
    x, y, a, b, theta = _second_moments(sub, seg)
    e = 1.0 - b / a
    with np.errstate(divide="ignore"):
        n_placeholder = np.log(2.0) / np.log((1 + e) / (1 - e))
    out.update(
        semi_major_axis=a,
        semi_minor_axis=b,
        ellipticity=e,
        sersic_index=float(n_placeholder),
        isophotal_area=float(seg.sum()),
        snr=float(sub[seg].sum() / (rms * np.sqrt(seg.sum()))),
        x_centroid=x,
        y_centroid=y,
        orientation=theta,
    )
    return out, 0, ""


_SEP_FILTER = np.array([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


#: statmorph quantities computed when ``statmorph_all=False``.
_FAST_QUANTITIES = (
    "xc_centroid",
    "yc_centroid",
    "ellipticity_centroid",
    "orientation_centroid",
    "sersic_rhalf",
    "sersic_n",
    "sersic_ellip",
    "sersic_theta",
)


def _sersic_only_morphology(base: type) -> type:
    """A ``SourceMorphology`` that evaluates only ``_FAST_QUANTITIES`` (Sérsic fit + moments).

    statmorph evaluates every statistic in its constructor (CAS, Gini-M20, MID, ...); most of the
    time goes to the asymmetry centre, which the Sérsic fit needs only for its initial guess. We
    pass that guess ourselves and skip the rest (and the Gini/MID segmap comparison, so ``flag``
    then reflects only the checks statmorph runs before the statistics).
    """

    class _SersicOnly(base):  # type: ignore[misc, valid-type]
        def _calculate_morphology(self) -> None:
            for q in _FAST_QUANTITIES:
                _ = self[q]

        def _check_segmaps(self) -> None:
            return None

        # statmorph's fit reads the concentration for its default initial n even when n is
        # given; a constant avoids the asymmetry-centre search (the column is NaN in this mode)
        concentration = 3.0

    return _SersicOnly


def _sersic_guess(sub: np.ndarray, seg: np.ndarray) -> dict[str, Any]:
    """Initial Sérsic parameters from the segment's moments (statmorph's own guess needs the
    expensive asymmetry centre): centre, ellipticity, angle, r_eff ~ 1.18 sigma_major, n = 1.5."""
    x, y, a, b, theta = _second_moments(np.clip(sub, 0, None), seg)
    if not np.isfinite(a):
        return {"bounds": {"n": (0.01, None)}}
    return {
        "x_0": x,
        "y_0": y,
        "ellip": float(min(max(1 - b / a, 0.0), 0.9)),
        "theta": float(np.radians(theta)),
        "r_eff": float(max(1.18 * a, 1.0)),
        "n": 1.5,
        "bounds": {"n": (0.01, None)},
    }


def _measure_statmorph(
    img: np.ndarray, p: _Params, var: np.ndarray | None = None, bad: np.ndarray | None = None
) -> _Result:
    if bad is not None:
        img = np.where(bad, np.median(img[~bad]) if (~bad).any() else 0.0, img)
    det, det_sigma = _detection_image(img, p)
    dbkg, drms = _clipped_stats(det.ravel() if bad is None else det[~bad])
    out: dict[str, float] = {}
    if not drms > 0:
        return out, int(Flag.NO_DETECTION), "zero RMS of the detection image"
    segm, lab = _segment(
        det - dbkg, p.n_sigma * drms, p.n_pixels, p.contrast, p.n_levels, p.smooth, bad, det_sigma
    )
    if lab == 0:
        return out, int(Flag.NO_DETECTION), f"no segment of >= {p.n_pixels} px above threshold"
    seg = segm == lab
    # background and noise of the raw stamp: sigma-clipped pixels away from the central galaxy
    # (masking every 1.5-sigma noise segment too would bias the sky low)
    away = ~ndimage.binary_dilation(seg, iterations=4)
    if bad is not None:
        away &= ~bad
    sky = img[away]
    bkg, rms = _clipped_stats(sky) if sky.size >= 20 else _clipped_stats(img.ravel())
    out.update(background=bkg, background_rms=rms)
    if not rms > 0:
        return out, int(Flag.NO_DETECTION), "zero background RMS"
    sub = img - bkg
    if var is None:
        var = np.full(sub.shape, rms * rms)
        if p.gain:
            var += np.clip(sub, 0, None) / p.gain
    mask = (segm > 0) & ~seg
    if bad is not None:
        mask |= bad
    return _fit_statmorph(sub, seg, mask, var, p, out)


def _fit_statmorph(
    sub: np.ndarray,
    seg: np.ndarray,
    mask: np.ndarray,
    var: np.ndarray,
    p: _Params,
    out: dict[str, float] | None = None,
) -> _Result:
    """statmorph on a background-subtracted stamp, a segment (bool), a mask of pixels to ignore
    and a variance map; columns, flag bits and reason."""
    import statmorph

    out = {} if out is None else out
    seg = seg & ~mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if p.statmorph_all:
            m = statmorph.SourceMorphology(
                sub, seg.astype(np.int32), 1, mask=mask, weightmap=np.sqrt(var), psf=p.psf
            )
        else:
            m = _sersic_only_morphology(statmorph.SourceMorphology)(
                sub,
                seg.astype(np.int32),
                1,
                mask=mask,
                weightmap=np.sqrt(var),
                psf=p.psf,
                sersic_model_args=_sersic_guess(sub, seg),
            )

    def val(name: str) -> float:
        if not p.statmorph_all and name not in _FAST_QUANTITIES:
            return np.nan
        v = float(getattr(m, name))
        return np.nan if v == -99.0 else v

    noise = float(np.sqrt(var[seg].sum()))
    out.update(
        semi_major_axis=val("sersic_rhalf"),
        ellipticity=val("sersic_ellip"),
        sersic_index=val("sersic_n"),
        isophotal_area=float(seg.sum()),
        x_centroid=val("xc_centroid"),
        y_centroid=val("yc_centroid"),
        half_light_radius=val("rhalf_ellip"),
        ellipticity_moments=val("ellipticity_centroid"),
        sn_per_pixel=val("sn_per_pixel"),
        snr=float(sub[seg].sum() / noise) if noise > 0 else np.nan,
        concentration=val("concentration"),
        asymmetry=val("asymmetry"),
        smoothness=val("smoothness"),
        gini=val("gini"),
        m20=val("m20"),
        statmorph_flag=float(m.flag),
    )
    flag, why = 0, []
    if m.flag >= 2:
        flag |= Flag.STATMORPH_BAD
        why.append(f"statmorph flag {int(m.flag)}")
    if m.flag_sersic != 0:
        flag |= Flag.SERSIC_BAD
        why.append(f"Sérsic fit flag {int(m.flag_sersic)}")
    return out, int(flag), "; ".join(why)


def _measure_one(
    img: np.ndarray, p: _Params, var: np.ndarray | None = None, bad: np.ndarray | None = None
) -> _Result:
    finite = np.isfinite(img)
    if bad is not None:
        if bad.all():
            return {}, int(Flag.NO_DETECTION), "every pixel masked"
        finite |= bad  # NaN/inf under the mask are allowed
        img = np.where(bad, 0.0, img)
    if not finite.all():
        return {}, int(Flag.NONFINITE), f"{int((~finite).sum())} NaN/inf pixels"
    if var is not None:
        good = np.isfinite(var) & (var > 0)
        if bad is not None:
            good |= bad
        if not good.all():
            return {}, int(Flag.FAILED), "variance not finite and > 0 on unmasked pixels"
        var = np.where(np.isfinite(var) & (var > 0), var, np.inf if bad is None else 1.0)
    total = img.sum()
    if not total > 0:
        return {}, int(Flag.NONPOSITIVE_FLUX), f"total flux {total:.3g} <= 0"
    try:
        if p.protocol == "paper":
            return _measure_paper(img, p, bad)
        return _measure_statmorph(img, p, var, bad)
    except Exception as exc:  # noqa: BLE001 - one bad stamp must never abort the batch
        return {}, int(Flag.FAILED), f"{type(exc).__name__}: {exc}"[:200]


def _measure_chunk(
    stamps: np.ndarray,
    p: _Params,
    variance: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Measure ``stamps (n, H, W)`` -> columns of length n. Runs inside executor workers."""
    names = PAPER_COLUMNS if p.protocol == "paper" else STATMORPH_COLUMNS
    n = stamps.shape[0]
    cols: dict[str, np.ndarray] = {k: np.full(n, np.nan) for k in names}
    flags = np.zeros(n, dtype=np.int32)
    reasons = []
    for i in range(n):
        vals, flag, reason = _measure_one(
            np.asarray(stamps[i], dtype=np.float64),
            p,
            None if variance is None else np.asarray(variance[i], dtype=np.float64),
            None if mask is None else np.asarray(mask[i], dtype=bool),
        )
        for k, v in vals.items():
            cols[k][i] = v
        if flag & _NAN_FLAGS:
            for k in ("semi_major_axis", "ellipticity", "sersic_index", "isophotal_area"):
                cols[k][i] = np.nan
        flags[i] = flag
        reasons.append(reason)
    cols["flag"] = flags
    cols["fail_reason"] = np.array(reasons, dtype=str)
    return cols


def _per_stamp(name: str, arr: Any, shape: tuple[int, ...], band: int, dtype: Any) -> np.ndarray:
    """``variance``/``mask`` as ``(N, H, W)`` of the selected band (accepts ``(N, H, W, C)``)."""
    arr = np.asarray(arr)
    n, h, w, c = shape
    if arr.shape == (n, h, w, c):
        arr = arr[..., band]
    elif arr.shape != (n, h, w):
        raise ValueError(
            f"measure: {name} must have shape {(n, h, w)} or {(n, h, w, c)}, got {arr.shape}"
        )
    if dtype is bool and arr.dtype != bool:
        raise ValueError(f"measure: {name} must be a boolean array (True = bad), got {arr.dtype}")
    return arr.astype(dtype, copy=False)


#: ``measure`` settings that :func:`measure_chunks` forwards (everything but the per-stamp arrays
#: and the executor options).
_SETTINGS = (
    "survey",
    "pixel_scale",
    "psf_fwhm",
    "psf",
    "gain",
    "deblend_contrast",
    "deblend_levels",
    "deblend_smooth",
    "detect_fwhm",
    "n_sigma",
    "n_pixels",
    "statmorph_all",
)


def _resolve(
    where: str,
    shape: tuple[int, ...],
    band: int | str = 0,
    protocol: str = "statmorph",
    *,
    survey: Survey | None = None,
    pixel_scale: float | None = None,
    psf_fwhm: float | None = None,
    psf: np.ndarray | None = None,
    gain: float | None = None,
    deblend_contrast: float | None = None,
    deblend_levels: int = DEBLEND_LEVELS,
    deblend_smooth: float | None = None,
    detect_fwhm: float = DETECT_FWHM_PX,
    n_sigma: float = 1.5,
    n_pixels: int = 5,
    statmorph_all: bool = False,
) -> tuple[_Params, int]:
    """Check :func:`measure`'s settings for stamps of ``shape`` ``(N, H, W, C)`` (errors start
    with ``where``); returns the per-stamp parameters and the band as a channel index."""
    c = shape[-1]
    if survey is not None:
        kw = survey.kwargs(band)
        band = kw["band"]
        pixel_scale = kw["pixel_scale"] if pixel_scale is None else pixel_scale
        if psf is None and psf_fwhm is None:
            psf_fwhm = kw["psf_fwhm"]
        gain = kw["gain"] if gain is None else gain
    elif isinstance(band, str):
        raise ValueError(f"{where}: band={band!r} given by name needs survey= (e.g. HSC)")
    if not -c <= band < c:
        raise ValueError(f"{where}: band={band} out of range for {c} channels")
    if protocol not in PROTOCOLS:
        raise ValueError(f"{where}: protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if deblend_contrast is None:
        deblend_contrast = STATMORPH_CONTRAST if protocol == "statmorph" else PAPER_CONTRAST
    if deblend_smooth is None:
        deblend_smooth = DEBLEND_SMOOTH if protocol == "statmorph" else 0.0
    if not deblend_smooth >= 0:
        raise ValueError(f"{where}: deblend_smooth must be >= 0, got {deblend_smooth}")
    if not 0 <= deblend_contrast:
        raise ValueError(f"{where}: deblend_contrast must be >= 0, got {deblend_contrast}")

    kernel = None
    if protocol == "statmorph":
        if psf is not None:
            kernel = np.asarray(psf, dtype=np.float64)
            if kernel.ndim != 2 or not np.all(np.isfinite(kernel)) or not kernel.sum() > 0:
                raise ValueError(f"{where}: psf must be a finite 2-D kernel with positive sum")
            kernel = kernel / kernel.sum()
        elif psf_fwhm is not None:
            if pixel_scale is None:
                raise ValueError(
                    f"{where}: pixel_scale= (arcsec/px) is required to use psf_fwhm= (arcsec); "
                    "or pass survey="
                )
            if not (pixel_scale > 0 and psf_fwhm > 0):
                raise ValueError(
                    f"{where}: pixel_scale and psf_fwhm must be > 0, got {pixel_scale}, {psf_fwhm}"
                )
            kernel = gaussian_psf(psf_fwhm / pixel_scale)
        else:
            raise ValueError(
                f"{where}: protocol='statmorph' needs a PSF: psf_fwhm= (arcsec, with "
                "pixel_scale=), psf= (kernel in px) or survey= (e.g. HSC); without it the "
                "Sérsic index is strongly biased"
            )
    params = _Params(
        protocol=protocol,
        psf=kernel,
        gain=gain,
        n_sigma=float(n_sigma),
        n_pixels=int(n_pixels),
        smooth_sigma=1.5,
        min_mean_snr=0.5,
        statmorph_all=bool(statmorph_all),
        contrast=float(deblend_contrast),
        n_levels=int(deblend_levels),
        detect_fwhm=float(detect_fwhm),
        smooth=float(deblend_smooth),
    )
    return params, int(band)


def _progress(n: int, progress: bool, protocol: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=n, disable=not progress, unit="stamp", desc=f"measure[{protocol}]")


def _accelerator_live() -> bool:
    """True when this process has imported JAX and its default backend is not the CPU."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False
    try:
        return jax.default_backend() != "cpu"
    except Exception:  # a broken or half-configured jax install: no accelerator to protect
        return False


def _task_modules(protocol: str) -> tuple[str, ...]:
    """The modules a measurement task of ``protocol`` imports (statmorph alone takes ~5 s)."""
    return (
        ("photutils.segmentation", "statmorph")
        if protocol == "statmorph"
        else ("photutils.segmentation",)
    )


def _process_pool(n_workers: int | None, preload: Sequence[str] = ()) -> cf.ProcessPoolExecutor:
    """A pool of ``n_workers`` processes (None = all cores). The platform's default start method
    (fork on Linux: fast, no ``__main__`` guard needed), except after JAX has started a GPU or TPU
    backend: CUDA does not survive a fork (the children abort with CUDA_ERROR_NOT_INITIALIZED and
    the pool breaks), so then the workers are spawned.

    With fork, the modules ``preload`` are imported here first, so the workers inherit them
    instead of each importing them again for every pool (``galgen evaluate`` starts one pool per
    file: 9 pools x ~5 s of statmorph import were 40 % of the smoke preset's evaluation)."""
    if _accelerator_live():
        ctx = mp.get_context("spawn")
    else:
        ctx = None
        for name in preload:
            importlib.import_module(name)
    return cf.ProcessPoolExecutor(max_workers=n_workers or os.cpu_count() or 1, mp_context=ctx)


def _run(
    fn: Callable[..., dict[str, np.ndarray]],
    args: Sequence[tuple[Any, ...]],
    *,
    executor: cf.Executor | None,
    n_workers: int | None,
    bar: Any,
    preload: Sequence[str] = (),
) -> list[dict[str, np.ndarray]]:
    """``[fn(*a) for a in args]`` in the order of ``args``: in this process when there is no
    executor and ``n_workers == 1`` or a single task; else on ``executor`` (or a process pool of
    ``n_workers``, None = all cores, shut down at the end, its workers inheriting the modules
    ``preload``), collected as they complete. Each
    result (a dict of columns) advances ``bar`` by its rows. On an error the tasks not yet
    started are cancelled and the error is raised here."""
    parts: list[Any] = [None] * len(args)
    if executor is None and (n_workers == 1 or len(args) <= 1):
        for j, a in enumerate(args):
            parts[j] = fn(*a)
            bar.update(parts[j]["flag"].size)
        return parts
    own_pool = None
    if executor is None:
        own_pool = executor = _process_pool(n_workers, preload)
    futures: dict[cf.Future, int] = {}
    try:
        futures = {executor.submit(fn, *a): j for j, a in enumerate(args)}
        for fut in cf.as_completed(futures):
            j = futures[fut]
            parts[j] = fut.result()
            bar.update(parts[j]["flag"].size)
    finally:
        for fut in futures:
            fut.cancel()  # no-op for finished tasks
        if own_pool is not None:
            own_pool.shutdown(cancel_futures=True)
    return parts


def _concat(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([pt[k] for pt in parts]) for k in parts[0]}


def measure(
    images: np.ndarray,
    band: int | str = 0,
    protocol: str = "statmorph",
    *,
    survey: Survey | None = None,
    pixel_scale: float | None = None,
    psf_fwhm: float | None = None,
    psf: np.ndarray | None = None,
    gain: float | None = None,
    variance: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    deblend_contrast: float | None = None,
    deblend_levels: int = DEBLEND_LEVELS,
    deblend_smooth: float | None = None,
    detect_fwhm: float = DETECT_FWHM_PX,
    n_sigma: float = 1.5,
    n_pixels: int = 5,
    statmorph_all: bool = False,
    executor: cf.Executor | None = None,
    n_workers: int | None = None,
    chunk_size: int = 64,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Measure galaxy morphology on one band of a batch of stamps.

    Args:
        images: ``(N, H, W, C)`` linear flux (undo any training stretch first), or ``(N, H, W)``.
        band: channel index to measure, or a band name of ``survey`` (e.g. ``"g"``).
        protocol: ``"statmorph"`` (default; PSF-aware Sérsic fit) or ``"paper"`` (the reference
            study's SEP-style second moments; its ``sersic_index`` is the placeholder
            ``ln2 / ln((1+e)/(1-e))``, not a fit). See the package README for both definitions.
        survey: a :class:`Survey` (e.g. ``HSC``): fills ``pixel_scale``, ``psf_fwhm`` of ``band``
            and ``gain`` where those are not given explicitly. There is no default survey.
        pixel_scale: arcsec per pixel; converts ``psf_fwhm``. Required with ``psf_fwhm``.
        psf_fwhm: Gaussian PSF FWHM in arcsec. The statmorph protocol needs ``psf_fwhm`` (with
            ``pixel_scale``), ``psf`` or ``survey``; the paper protocol (pixel units, no PSF)
            ignores all three.
        psf: PSF kernel array ``(k, k)`` in pixels (normalized here); overrides ``psf_fwhm``.
            ``np.ones((1, 1))`` is a delta PSF.
        gain: electrons per image unit for the source Poisson term of the statmorph error map;
            None = background-limited (error = sky RMS). Not with ``variance``.
        variance: optional per-pixel variance ``(N, H, W)`` or ``(N, H, W, C)`` (image units
            squared, everything included); the statmorph protocol's error map is its square root
            (otherwise the sky RMS measured on the stamp). The paper protocol ignores it.
        mask: optional boolean ``(N, H, W)`` or ``(N, H, W, C)``, True = bad pixel: excluded from
            the background, detection, segment and fit (NaN/inf allowed there), in both protocols.
        deblend_contrast: fraction of the central segment's flux a branch must hold to be split
            off as another source (SExtractor's DEBLEND_MINCONT; >= 1: never deblend). None =
            the protocol's default: statmorph 0.1 (keeps clumpy galaxies whole, see README),
            paper 0.001 (the reference code).
        deblend_levels: multi-threshold levels of the deblending (SExtractor's DEBLEND_NTHRESH).
        deblend_smooth: the deblending runs on the detection image smoothed (in quadrature with
            the smoothing it already has) to a Gaussian sigma of ``deblend_smooth`` x
            sqrt(area / pi) of the central segment (0: not smoothed). None = statmorph 0.1,
            paper 0.
        detect_fwhm: statmorph protocol: the detection image is the stamp convolved with the PSF
            and, if the PSF is narrower, further smoothed to this total FWHM (px).
        n_sigma: detection threshold in background RMS of the detection image.
        n_pixels: minimum connected pixels of a segment.
        statmorph_all: statmorph protocol only. False (default) runs statmorph's Sérsic fit and
            centroid moments only (about 5x faster); True evaluates every statmorph statistic
            (fills ``half_light_radius``, ``concentration``, ``asymmetry``, ``smoothness``,
            ``gini``, ``m20``, otherwise NaN) and statmorph's Gini/MID segmap check.
        executor: any ``concurrent.futures.Executor`` (e.g. a Dask cluster's
            ``client.get_executor()``); None = a process pool of ``n_workers`` processes. For
            stamps read from a file by the workers themselves, see :func:`measure_chunks`.
        n_workers: processes of the default pool (None = all cores); 1 = run in this process.
        chunk_size: stamps per task.
        progress: show a tqdm progress bar (stamps done).

    Returns:
        dict of ``(N,)`` arrays: ``semi_major_axis`` (px), ``ellipticity`` (1 - b/a),
        ``sersic_index``, ``isophotal_area`` (px), ``x_centroid``, ``y_centroid`` (px),
        ``background``, ``background_rms`` (image units), protocol-specific extras, ``flag``
        (int32 bitmask of :class:`Flag`; 0 = good, values NaN for failed stamps) and
        ``fail_reason`` (str; ``""`` when ``flag`` is 0, else why).

    Raises:
        ValueError: wrong ndim, empty batch, band out of range or unknown, non-numeric dtype,
            unknown protocol, missing or invalid PSF or pixel scale, variance/mask of the wrong
            shape. Per-stamp problems (NaN/inf pixels, total flux <= 0, nothing detected, a fit
            that raises) never raise: they are flagged, with the reason in ``fail_reason``.
    """
    images = _check_images(images, "measure")
    n, h, w, c = images.shape
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"measure: empty image batch, shape {images.shape}")
    if chunk_size < 1:
        raise ValueError(f"measure: chunk_size must be >= 1, got {chunk_size}")
    params, band = _resolve(
        "measure",
        images.shape,
        band,
        protocol,
        survey=survey,
        pixel_scale=pixel_scale,
        psf_fwhm=psf_fwhm,
        psf=psf,
        gain=gain,
        deblend_contrast=deblend_contrast,
        deblend_levels=deblend_levels,
        deblend_smooth=deblend_smooth,
        detect_fwhm=detect_fwhm,
        n_sigma=n_sigma,
        n_pixels=n_pixels,
        statmorph_all=statmorph_all,
    )
    if variance is not None and params.gain is not None:
        raise ValueError("measure: pass gain= or variance=, not both (variance is the total)")
    if variance is not None:
        variance = _per_stamp("variance", variance, images.shape, band, np.float64)
    if mask is not None:
        mask = _per_stamp("mask", mask, images.shape, band, bool)
    stamps = images[..., band]

    def sl(a: np.ndarray | None, s: int) -> np.ndarray | None:
        return None if a is None else np.ascontiguousarray(a[s : s + chunk_size])

    args = [(sl(stamps, s), params, sl(variance, s), sl(mask, s)) for s in range(0, n, chunk_size)]
    with _progress(n, progress, protocol) as bar:
        parts = _run(
            _measure_chunk,
            args,
            executor=executor,
            n_workers=n_workers,
            bar=bar,
            preload=_task_modules(params.protocol),
        )
    return _concat(parts)


def _read_band(reader: Callable[[int, int], Any], i: int, j: int, shape: tuple, band: int):
    """``reader(i, j)`` checked against ``(j - i, *shape)``; the ``(j - i, H, W)`` band."""
    x = _check_images(reader(i, j), f"measure_chunks: reader({i}, {j})")
    if x.shape != (j - i, *shape):
        raise ValueError(
            f"measure_chunks: reader({i}, {j}) returned shape {x.shape}; expected {(j - i, *shape)}"
        )
    return np.ascontiguousarray(x[..., band])


def _read_and_measure(
    reader: Callable[[int, int], Any], i: int, j: int, shape: tuple, band: int, p: _Params
) -> dict[str, np.ndarray]:
    """One task of :func:`measure_chunks`: read stamps ``i:j`` where it runs, measure them."""
    return _measure_chunk(_read_band(reader, i, j, shape, band), p)


def measure_chunks(
    reader: Callable[[int, int], Any],
    n: int,
    band: int | str = 0,
    protocol: str = "statmorph",
    *,
    chunk: int = 2048,
    client: Any = None,
    executor: cf.Executor | None = None,
    n_workers: int | None = None,
    chunk_size: int = 64,
    progress: bool = False,
    **settings: Any,
) -> dict[str, np.ndarray]:
    """:func:`measure` of ``n`` stamps that are read ``chunk`` at a time, never all at once.

    ``reader(i, j)`` returns stamps ``i`` to ``j - 1`` as ``(j - i, H, W, C)`` (or
    ``(j - i, H, W)``) linear flux, e.g. a slice of an HDF5 or memory-mapped file that the reader
    opens itself. Rows come back in reader order, equal to ``measure(all_stamps, ...)``.

    - ``client`` (a ``dask.distributed.Client``, see :func:`dask_client`) or ``executor`` (any
      ``concurrent.futures.Executor``): each chunk is one task that calls ``reader`` and measures
      on the worker, so ``reader`` must be picklable (a top-level class holding a path, not an
      open file handle or a lambda) and, on a remote cluster, able to reach the data from the
      workers. Memory per worker is about one chunk of stamps; this process holds only the
      result columns. Dask recomputes the tasks of a worker lost mid-run; each chunk's result is
      taken once, so no row is lost or duplicated.
    - neither: this process reads the chunks in order and spreads each over a process pool of
      ``n_workers`` (None = all cores, 1 = in this process) in tasks of ``chunk_size`` stamps,
      as :func:`measure` does; memory is about one chunk.

    Args:
        reader: ``reader(i, j) -> (j - i, H, W, C)`` array; ``reader(0, 1)`` is called here
            once first, to check the layout and every setting before any task is sent.
        n: number of stamps (rows ``0 .. n - 1``).
        band, protocol: as in :func:`measure`.
        chunk: stamps per read (and per task on ``client``/``executor``).
        client: a Dask client (anything with ``get_executor()``); dask is imported only by it.
        executor: any ``concurrent.futures.Executor``; not with ``client``.
        n_workers, chunk_size: the local pool when neither is given (see above).
        progress: a tqdm progress bar of stamps done.
        **settings: :func:`measure`'s survey and segmentation settings (``survey``,
            ``pixel_scale``, ``psf_fwhm``, ``psf``, ``gain``, ``deblend_*``, ``detect_fwhm``,
            ``n_sigma``, ``n_pixels``, ``statmorph_all``); per-stamp ``variance``/``mask`` are
            not supported here.

    Returns:
        :func:`measure`'s dict of ``(n,)`` columns.

    Raises:
        ValueError: ``n``/``chunk`` < 1, both ``client`` and ``executor``, a reader result of
            the wrong shape or layout (naming the rows), or any setting :func:`measure` refuses.
        TypeError: an unknown setting (or ``variance``/``mask``).
    """
    where = "measure_chunks"
    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise TypeError(
            f"{where}: unexpected keyword argument(s) {', '.join(unknown)}; it takes "
            f"{', '.join(_SETTINGS)} (per-stamp variance/mask only through measure)"
        )
    if n < 1 or chunk < 1 or chunk_size < 1:
        raise ValueError(
            f"{where}: n, chunk and chunk_size must be >= 1, got {n}, {chunk}, {chunk_size}"
        )
    if client is not None and executor is not None:
        raise ValueError(f"{where}: pass client= or executor=, not both")
    first = _check_images(reader(0, 1), f"{where}: reader(0, 1)")
    if first.shape[0] != 1:
        raise ValueError(f"{where}: reader(0, 1) returned {first.shape[0]} stamps; expected 1")
    shape = first.shape[1:]
    params, band = _resolve(where, first.shape, band, protocol, **settings)
    del first
    spans = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    if client is not None:
        executor = client.get_executor(pure=False)
    with _progress(n, progress, protocol) as bar:
        if executor is not None:
            tasks = [(reader, i, j, shape, band, params) for i, j in spans]
            return _concat(
                _run(_read_and_measure, tasks, executor=executor, n_workers=None, bar=bar)
            )
        pool = None
        if n_workers != 1 and n > chunk_size:
            pool = _process_pool(n_workers, _task_modules(params.protocol))
        parts = []
        try:
            for i, j in spans:
                stamps = _read_band(reader, i, j, shape, band)
                sub = [(stamps[s : s + chunk_size], params) for s in range(0, j - i, chunk_size)]
                parts.append(
                    _concat(_run(_measure_chunk, sub, executor=pool, n_workers=1, bar=bar))
                )
                del stamps, sub
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    return _concat(parts)

"""Invertible per-band intensity transforms."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._schema import BANDS

__all__ = [
    "ArcsinhStretch",
    "MinMaxScale",
    "transform_from_dict",
    "sample_images",
]

PAPER_MIN = -25241.32
PAPER_MAX = 3647.63
"""Global pixel min/max of the GalaxiesML-64 training set used by the baseline code's [-1, 1] map."""


def sample_images(data: Any, max_images: int | None = 2048, seed: int = 0) -> np.ndarray:
    """Up to ``max_images`` images ``(n, H, W, 5)`` float32 drawn without replacement by ``seed``.

    ``data`` is a :class:`Dataset` (read lazily) or an array ``(N, H, W, 5)``.
    """
    images = getattr(data, "images", data)
    n = len(images)
    if n == 0:
        raise ValueError("cannot fit a transform on an empty data set")
    if max_images is None or max_images >= n:
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))
    return np.asarray(images[idx], dtype=np.float32)


def _per_band(v: Any, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, len(BANDS))
    if a.size != len(BANDS):
        raise ValueError(f"{name} must have {len(BANDS)} values (one per band), got {a.size}")
    return a


def _noise_sigma(x: np.ndarray) -> float:
    """Sky σ from the negative half of ``x`` (half-normal median); the std if there is none."""
    x = x[np.isfinite(x)]
    neg = -x[x < 0]
    if neg.size >= 10:
        s = float(np.median(neg) / 0.6744897501960817)
    else:
        s = float(np.std(x)) if x.size else 0.0
    return s if s > 0 else 1.0


class ArcsinhStretch:
    """``y = asinh(x / scale_b) / norm_b`` per band b (channels-last), inverse ``x = scale_b sinh(norm_b y)``.

    ``scale_b`` (flux units) is the softening: below it the map is linear, above logarithmic.
    :meth:`fit` sets it to ``softening`` × the band's sky noise, estimated robustly from the
    negative pixels (galaxy light is positive; sky-subtracted noise is symmetric about 0:
    ``σ = median(|x| : x < 0) / 0.6745``), and ``norm_b`` so that the
    ``quantile`` of ``|asinh(x/scale_b)|`` maps to ``peak`` (default 1). Values are not clipped, so it is exactly
    invertible to float32 precision (relative error ~1e-6).
    """

    kind = "arcsinh"

    def __init__(self, scale: Any, norm: Any = 1.0):
        self.scale = _per_band(scale, "scale")
        self.norm = _per_band(norm, "norm")
        if np.any(self.scale <= 0) or np.any(self.norm <= 0):
            raise ValueError("ArcsinhStretch scale and norm must be > 0")

    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        max_images: int | None = 2048,
        seed: int = 0,
        softening: float = 1.0,
        quantile: float = 0.999,
        peak: float = 1.0,
    ) -> ArcsinhStretch:
        """Estimate per-band scales from a sample of ``data`` (Dataset or ``(N,H,W,5)`` array).

        ``peak`` sets the stretched value of the ``quantile``: stamps are mostly sky, so with
        ``peak=1`` the stretched data have a standard deviation of only ~0.2, which shifts every
        noise level of a diffusion schedule toward low signal-to-noise; ``peak=2`` doubles it.
        """
        if not (np.isfinite(peak) and peak > 0):
            raise ValueError(f"ArcsinhStretch.fit: peak must be a positive number, got {peak!r}")
        x = sample_images(data, max_images, seed).reshape(-1, len(BANDS)).astype(np.float64)
        scale = softening * np.array([_noise_sigma(x[:, b]) for b in range(x.shape[1])])
        a = np.abs(np.arcsinh(x / scale))
        norm = np.nanquantile(a, quantile, axis=0) / peak
        return cls(scale, np.where(norm > 0, norm, 1.0 / peak))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Linear flux ``(..., 5)`` → stretched ``(..., 5)`` float32 (computed in float32)."""
        y = np.asarray(x, dtype=np.float32) * (1.0 / self.scale).astype(np.float32)
        np.arcsinh(y, out=y)
        y *= (1.0 / self.norm).astype(np.float32)
        return y

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Stretched ``(..., 5)`` → linear flux ``(..., 5)`` float32 (computed in float32)."""
        x = np.asarray(y, dtype=np.float32) * self.norm.astype(np.float32)
        np.sinh(x, out=x)
        x *= self.scale.astype(np.float32)
        return x

    __call__ = forward

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable parameters (inverse of :func:`transform_from_dict`)."""
        return {"kind": self.kind, "scale": self.scale.tolist(), "norm": self.norm.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArcsinhStretch:
        return cls(d["scale"], d["norm"])

    def __repr__(self) -> str:
        return f"ArcsinhStretch(scale={self.scale.round(5).tolist()}, norm={self.norm.round(4).tolist()})"


class MinMaxScale:
    """The baseline code's map of a global ``[lo, hi]`` to ``[-1, 1]``: ``y = 2 (x - lo) / (hi - lo) - 1``.

    ``lo``/``hi`` are scalars (one for all bands, as in the paper code) or per-band 5-vectors.
    :meth:`paper` gives the published GalaxiesML-64 constants.
    """

    kind = "minmax"

    def __init__(self, lo: Any, hi: Any):
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        if self.lo.shape != self.hi.shape or self.lo.ndim > 1:
            raise ValueError("MinMaxScale lo and hi must be scalars or matching per-band vectors")
        if np.any(self.hi <= self.lo):
            raise ValueError(f"MinMaxScale needs hi > lo, got lo={self.lo}, hi={self.hi}")

    @classmethod
    def paper(cls) -> MinMaxScale:
        """Global min/max of GalaxiesML-64 training images used in the baseline code."""
        return cls(PAPER_MIN, PAPER_MAX)

    @classmethod
    def fit(
        cls, data: Any, *, max_images: int | None = 2048, seed: int = 0, per_band: bool = False
    ) -> MinMaxScale:
        """Min/max of a sample of ``data`` (``max_images=None`` scans all, which a Dataset does lazily)."""
        images = getattr(data, "images", data)
        if max_images is None and hasattr(data, "images"):
            lo = np.full(len(BANDS), np.inf)
            hi = np.full(len(BANDS), -np.inf)
            for s in range(0, len(images), 1024):
                x = images[s : s + 1024]
                lo = np.minimum(lo, np.nanmin(x, axis=(0, 1, 2)))
                hi = np.maximum(hi, np.nanmax(x, axis=(0, 1, 2)))
        else:
            x = sample_images(data, max_images, seed)
            lo, hi = np.nanmin(x, axis=(0, 1, 2)), np.nanmax(x, axis=(0, 1, 2))
        if not per_band:
            lo, hi = lo.min(), hi.max()
        return cls(lo, hi)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Linear flux ``(..., 5)`` → ``[-1, 1]`` (inside the fitted range) float32."""
        return (2.0 * (np.asarray(x) - self.lo) / (self.hi - self.lo) - 1.0).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """``[-1, 1]`` → linear flux float32."""
        return (
            (np.asarray(y, dtype=np.float64) + 1.0) * 0.5 * (self.hi - self.lo) + self.lo
        ).astype(np.float32)

    __call__ = forward

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lo": self.lo.tolist(), "hi": self.hi.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MinMaxScale:
        return cls(d["lo"], d["hi"])

    def __repr__(self) -> str:
        return f"MinMaxScale(lo={self.lo.tolist()}, hi={self.hi.tolist()})"


_KINDS = {ArcsinhStretch.kind: ArcsinhStretch, MinMaxScale.kind: MinMaxScale}


def transform_from_dict(d: dict[str, Any]) -> ArcsinhStretch | MinMaxScale:
    """Rebuild a transform from its ``to_dict()`` (dispatching on ``d["kind"]``)."""
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown transform kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind].from_dict(d)

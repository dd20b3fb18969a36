"""The GalaxiesML HDF5 schema: band order, pixel scale, file names, column names, and a writer."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

BANDS: tuple[str, ...] = ("g", "r", "i", "z", "y")
"""HSC bands in the order of the image channels."""

PIXEL_SCALE: float = 0.168
"""HSC coadd pixel scale in arcsec per pixel."""

ZERO_POINT: float = 27.0
"""AB magnitude zero point of the pixel values: ``mag = 27 - 2.5 log10(flux)``."""

REDSHIFT_RANGE: tuple[float, float] = (0.0, 4.0)
"""The redshift domain of GalaxiesML (spectroscopic redshifts 0-4): valid conditioning values."""

SPLITS: tuple[str, ...] = ("training", "validation", "testing")
"""Split names as they appear in the published file names."""

IMAGE_KEY = "image"
REDSHIFT_KEY = "specz_redshift"
OBJECT_ID_KEY = "object_id"
REQUIRED_KEYS: tuple[str, ...] = (IMAGE_KEY, REDSHIFT_KEY)
"""Keys without which a file cannot be opened (``object_id`` falls back to ``arange(N)``)."""

SEXTRACTOR_COLUMNS: tuple[str, ...] = (
    "ellipticity",
    "major_axis",
    "minor_axis",
    "pos_angle",
    "isophotal_area",
    "half_light_radius",
    "sersic_index",
    "petro_rad",
    "peak_surface_brightness",
)
"""Per-band Source Extractor columns, stored as ``{band}_{name}`` (lengths in pixels)."""

CATALOG_COLUMNS: tuple[str, ...] = (
    "object_id",
    "specz_redshift",
    "specz_redshift_err",
    "specz_ra",
    "specz_dec",
    *(f"{b}_cmodel_mag" for b in BANDS),
    *(f"{b}_cmodel_magsigma" for b in BANDS),
    *(f"{b}_{c}" for b in BANDS for c in SEXTRACTOR_COLUMNS),
)
"""Every 1-D column of the published files that the synthetic set also writes."""


class GalaxiesMLFormatError(ValueError):
    """A file is not a readable GalaxiesML-schema HDF5 file; the message names the file and key."""


def file_name(split: str, size: int = 64) -> str:
    """Published file name of a split, e.g. ``5x64x64_training_with_morphology.hdf5``.

    Args:
        split: one of ``"training"``, ``"validation"``, ``"testing"``.
        size: image side in pixels (64 or 127 for the published files; any size for synthetic ones).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return f"5x{int(size)}x{int(size)}_{split}_with_morphology.hdf5"


def find_split(directory: str | Path, split: str, size: int | None = None) -> Path:
    """The file of ``split`` in ``directory`` (published naming, see :func:`file_name`).

    With ``size`` the file of that image side is required; without it the directory must hold
    exactly one size of that split (the published 64- and 127-pixel files side by side are
    ambiguous: the error names both and asks for ``size``).

    Raises:
        FileNotFoundError: the directory or the file is missing (the message names both).
        ValueError: several image sizes and no ``size``.
    """
    directory = Path(directory)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not directory.is_dir():
        raise FileNotFoundError(f"data directory {directory} does not exist")
    if size is not None:
        path = directory / file_name(split, size)
        if not path.is_file():
            raise FileNotFoundError(f"no {path.name} in {directory}")
        return path
    found = sorted(directory.glob(f"5x*x*_{split}_with_morphology.hdf5"))
    if not found:
        raise FileNotFoundError(f"no 5xHxW_{split}_with_morphology.hdf5 file in {directory}")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ValueError(f"{directory} holds several image sizes of {split} ({names}); pass size=")
    return found[0]


def write_split(
    path: str | Path,
    images: np.ndarray,
    redshift: np.ndarray,
    columns: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a small in-memory split in the GalaxiesML schema (e.g. generated samples).

    Args:
        path: output ``.hdf5`` file (overwritten).
        images: ``(N, H, W, 5)`` float32 channels-last linear flux; stored channels-first.
        redshift: ``(N,)`` redshifts, stored as ``specz_redshift``.
        columns: extra 1-D columns of length N (e.g. ``object_id``).
    Returns:
        The path written.
    """
    images = np.asarray(images, dtype=np.float32)
    redshift = np.asarray(redshift, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != len(BANDS):
        raise ValueError(f"images must be (N, H, W, {len(BANDS)}), got {images.shape}")
    if redshift.shape != (images.shape[0],):
        raise ValueError(f"redshift must be ({images.shape[0]},), got {redshift.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(IMAGE_KEY, data=np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        f.create_dataset(REDSHIFT_KEY, data=redshift)
        for name, col in (columns or {}).items():
            col = np.asarray(col)
            if col.shape[:1] != (images.shape[0],):
                raise ValueError(
                    f"column {name!r} has length {col.shape[:1]}, expected {images.shape[0]}"
                )
            f.create_dataset(name, data=col)
    return path

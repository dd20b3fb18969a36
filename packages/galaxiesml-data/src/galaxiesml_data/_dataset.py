"""Lazy access to one GalaxiesML split file, and a chunked validator."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from ._schema import (
    BANDS,
    IMAGE_KEY,
    OBJECT_ID_KEY,
    REDSHIFT_KEY,
    REDSHIFT_RANGE,
    GalaxiesMLFormatError,
)

__all__ = [
    "Dataset",
    "ImageView",
    "ValidationReport",
    "check_values",
    "open_split",
    "validate",
]


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise FileNotFoundError(f"GalaxiesML file not found: {path}")
    if path.is_dir():
        raise GalaxiesMLFormatError(f"{path} is a directory, not a GalaxiesML HDF5 file")
    if not h5py.is_hdf5(path):
        raise GalaxiesMLFormatError(f"{path} is not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # e.g. "truncated file: eof = ..." from a copy that stopped early
        raise GalaxiesMLFormatError(
            f"{path} is not a readable HDF5 file (truncated or corrupt: {_first_line(exc)})"
        ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _bad_redshift(z: np.ndarray) -> np.ndarray:
    """Mask of redshifts that are NaN, inf or outside ``REDSHIFT_RANGE`` (e.g. a -99 sentinel)."""
    z = np.asarray(z, dtype=np.float64)
    lo, hi = REDSHIFT_RANGE
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(z) | (z < lo) | (z > hi)


def _nonfinite_rows(images: np.ndarray) -> np.ndarray:
    """Indices of the images (axis 0) holding at least one NaN or inf pixel."""
    x = np.asarray(images)
    return np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))


def _row_list(rows: np.ndarray, values: np.ndarray | None = None, limit: int = 5) -> str:
    """``"3, 17 and 4 more"``; with ``values`` (aligned with ``rows``) ``"3 (-99), ..."``."""
    shown = [
        str(int(r)) if values is None else f"{int(r)} ({float(v):g})"
        for r, v in zip(rows[:limit], rows[:limit] if values is None else values[:limit])
    ]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return ", ".join(shown) + more


def _redshift_error(path: Path | str, z: np.ndarray, rows: np.ndarray | None = None) -> str | None:
    """The one-sentence problem with the redshifts ``z`` read from ``path`` (None when all are
    valid); ``rows`` are the file rows of ``z`` (default ``0..len(z)-1``)."""
    bad = np.flatnonzero(_bad_redshift(z))
    if not bad.size:
        return None
    rows = np.arange(len(z)) if rows is None else np.asarray(rows)
    lo, hi = REDSHIFT_RANGE
    listed = _row_list(rows[bad], np.asarray(z, np.float64)[bad])
    return (
        f"{path}: {REDSHIFT_KEY!r} is NaN, inf or outside [{lo:g}, {hi:g}] in row {listed} "
        f"({bad.size} of {len(z)} galaxies); a missing-value sentinel such as -99 must be "
        "dropped, not clipped"
    )


def _image_error(path: Path | str, bad_rows: np.ndarray) -> str | None:
    """The one-sentence problem of the file rows ``bad_rows`` of ``path`` whose images hold a NaN
    or inf pixel (None when there are none); see :func:`_nonfinite_rows`."""
    if not len(bad_rows):
        return None
    return (
        f"{path}: {IMAGE_KEY!r} has NaN or inf pixels in row {_row_list(np.asarray(bad_rows))}; "
        "drop or repair those galaxies (galaxiesml_data.validate counts every bad value)"
    )


def _check_image(path: Path, dset: object) -> tuple[int, int, int]:
    """Return ``(N, H, W)`` of a channels-first ``(N, 5, H, W)`` image dataset, else raise."""
    if not isinstance(dset, h5py.Dataset):
        raise GalaxiesMLFormatError(f"{path}: key {IMAGE_KEY!r} is not a dataset")
    shape = dset.shape
    if len(shape) != 4 or shape[1] != len(BANDS):
        raise GalaxiesMLFormatError(
            f"{path}: key {IMAGE_KEY!r} has shape {shape}; expected (N, {len(BANDS)}, H, W) "
            "channels-first (bands g,r,i,z,y)"
        )
    if dset.dtype.kind != "f":
        raise GalaxiesMLFormatError(
            f"{path}: key {IMAGE_KEY!r} has dtype {dset.dtype}; expected float"
        )
    return shape[0], shape[2], shape[3]


def _decode(col: np.ndarray) -> np.ndarray:
    """Decode byte-string columns to ``str`` arrays; leave everything else untouched."""
    if col.dtype.kind == "S":
        return np.char.decode(col, "utf-8", "replace")
    if col.dtype.kind == "O" and col.size and isinstance(col.flat[0], bytes):
        return np.array([v.decode("utf-8", "replace") for v in col.ravel()]).reshape(col.shape)
    return col


class ImageView:
    """Lazy, indexable view of the ``image`` key, returning channels-last ``(..., H, W, 5)`` float32.

    Index with an int, a slice or an integer array; reads go through a read-only ``np.memmap`` when
    the HDF5 dataset is contiguous and uncompressed (the published layout), else through h5py with
    sorted indices.
    """

    def __init__(self, dataset: Dataset):
        self._ds = dataset

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, H, W, 5)``."""
        return (len(self._ds), self._ds.height, self._ds.width, len(BANDS))

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        n = len(self._ds)
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"index {key} out of range for {n} images in {self._ds.path}")
            return self._ds._read(np.array([i]))[0]
        if isinstance(key, slice):
            return self._ds._read(np.arange(n)[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).ravel()
        idx = np.where(idx < 0, idx + n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices out of range for {n} images in {self._ds.path}")
        return self._ds._read(idx).reshape(*np.shape(key), *self.shape[1:])


class _Columns(Mapping):
    """Mapping of every 1-D root dataset of length N to a fully loaded numpy array (cached)."""

    def __init__(self, dataset: Dataset):
        self._ds = dataset
        self._cache: dict[str, np.ndarray] = {}

    def _names(self) -> list[str]:
        f = self._ds._file()
        n = len(self._ds)
        return [
            k
            for k, v in f.items()
            if isinstance(v, h5py.Dataset) and k != IMAGE_KEY and v.shape[:1] == (n,)
        ]

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            f = self._ds._file()
            if name not in self._names():
                raise KeyError(
                    f"{self._ds.path}: no per-galaxy column {name!r} (available: {', '.join(self._names())})"
                )
            with self._ds._lock:
                self._cache[name] = _decode(f[name][()])
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._cache or name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


class Dataset:
    """A lazily read GalaxiesML split (see :func:`open_split`).

    Attributes:
        path: the HDF5 file.
        images: :class:`ImageView`, ``images[idx]`` → ``(..., H, W, 5)`` float32 linear flux.
        redshift: ``(N,)`` float32 ``specz_redshift`` (loaded once, small).
        object_id: ``(N,)`` int64 (``arange(N)`` if the file has no ``object_id``).
        columns: mapping ``name`` → ``(N, ...)`` array of every other per-galaxy key; byte strings
            are decoded to ``str``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._h5: h5py.File | None = None
        f = self._file()
        for key in (IMAGE_KEY, REDSHIFT_KEY):
            if key not in f:
                raise GalaxiesMLFormatError(f"{self.path}: missing required key {key!r}")
        self._n, self.height, self.width = _check_image(self.path, f[IMAGE_KEY])
        z = f[REDSHIFT_KEY]
        if not isinstance(z, h5py.Dataset) or z.shape != (self._n,):
            raise GalaxiesMLFormatError(
                f"{self.path}: key {REDSHIFT_KEY!r} has shape {getattr(z, 'shape', None)}; expected ({self._n},)"
            )
        self.redshift = np.asarray(z[()], dtype=np.float32)
        if OBJECT_ID_KEY in f and f[OBJECT_ID_KEY].shape == (self._n,):
            self.object_id = np.asarray(f[OBJECT_ID_KEY][()], dtype=np.int64)
        else:
            self.object_id = np.arange(self._n, dtype=np.int64)
        self._mmap = self._try_memmap(f[IMAGE_KEY])
        self.images = ImageView(self)
        self.columns: Mapping[str, np.ndarray] = _Columns(self)

    def _file(self) -> h5py.File:
        if self._h5 is None or not self._h5.id.valid:
            self._h5 = _open_h5(self.path)
        return self._h5

    def _try_memmap(self, dset: h5py.Dataset) -> np.ndarray | None:
        """A memmap of a contiguous, unfiltered image dataset; ``None`` if the layout does not allow it."""
        if dset.chunks is not None or dset.compression is not None or dset.external:
            return None
        offset = dset.id.get_offset()
        if offset is None or dset.size == 0:
            return None
        return np.memmap(self.path, dtype=dset.dtype, mode="r", offset=offset, shape=dset.shape)

    def _read_cf(self, idx: np.ndarray) -> np.ndarray:
        """Channels-first ``(len(idx), 5, H, W)`` rows ``idx`` (any order, repeats allowed)."""
        if self._mmap is not None:
            return np.take(self._mmap, idx, axis=0)
        order = np.argsort(idx, kind="stable")
        uniq, inverse = np.unique(idx[order], return_inverse=True)
        with self._lock:
            try:
                rows = (
                    self._file()[IMAGE_KEY][uniq]
                    if uniq.size
                    else np.empty((0, 5, self.height, self.width))
                )
            except OSError as exc:  # a damaged chunk: h5py's message names neither file nor row
                raise GalaxiesMLFormatError(
                    f"{self.path}: cannot read {IMAGE_KEY!r} rows {int(uniq[0])}-{int(uniq[-1])} "
                    f"(corrupt file: {_first_line(exc)})"
                ) from None
        out = np.empty((idx.size, *rows.shape[1:]), dtype=rows.dtype)
        out[order] = rows[inverse]
        return out

    def _read(self, idx: np.ndarray) -> np.ndarray:
        """Channels-last float32 ``(len(idx), H, W, 5)``."""
        cf = self._read_cf(idx)
        out = np.empty((idx.size, self.height, self.width, len(BANDS)), dtype=np.float32)
        out[...] = cf.transpose(0, 2, 3, 1)
        return out

    def __len__(self) -> int:
        return self._n

    def close(self) -> None:
        """Close the HDF5 handle (reopened on demand)."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, n={self._n}, image=({self.height}, {self.width}, {len(BANDS)}))"


def open_split(path: str | Path, *, min_galaxies: int = 0) -> Dataset:
    """Open a GalaxiesML-schema HDF5 file lazily (nothing but redshift and object_id is loaded).

    An empty split is a valid file (``synthesize`` writes one for ``n_val=0``); pass
    ``min_galaxies=1`` where galaxies are needed.

    Raises:
        FileNotFoundError: the file does not exist.
        GalaxiesMLFormatError: not HDF5, truncated or corrupt, a required key (``image``,
            ``specz_redshift``) is missing, ``image`` is not ``(N, 5, H, W)`` float, or it holds
            fewer than ``min_galaxies`` galaxies; the message names the file and the key.
    """
    ds = Dataset(path)
    if len(ds) < min_galaxies:
        raise GalaxiesMLFormatError(
            f"{ds.path}: key {IMAGE_KEY!r} holds {len(ds)} galaxies; need at least {min_galaxies}"
        )
    return ds


def check_values(dataset: Dataset | str | Path, *, chunk: int = 1024) -> None:
    """Refuse a file that cannot be trained on: no galaxies, a redshift that is NaN, inf or
    outside ``REDSHIFT_RANGE`` (e.g. a -99 sentinel), or an image with a NaN or inf pixel.

    Reads the images chunk by chunk (never the whole file at once). Use it before anything is
    written; :func:`validate` reports the same problems as counts instead of raising.

    Raises:
        GalaxiesMLFormatError: naming the file, the key and the first bad rows (with the values
            for redshifts).
    """
    ds = dataset if isinstance(dataset, Dataset) else open_split(dataset)
    if len(ds) == 0:
        open_split(ds.path, min_galaxies=1)  # raises, naming the file
    msg = _redshift_error(ds.path, ds.redshift)
    if msg is None:
        bad = [s + _nonfinite_rows(ds._read_cf(np.arange(s, min(s + chunk, len(ds)))))
               for s in range(0, len(ds), chunk)]  # fmt: skip
        msg = _image_error(ds.path, np.concatenate(bad))
    if msg is not None:
        raise GalaxiesMLFormatError(msg)


@dataclass
class ValidationReport:
    """Result of :func:`validate`. ``ok`` is True when ``problems`` is empty."""

    path: Path
    n: int = 0
    image_shape: tuple[int, ...] | None = None
    image_dtype: str | None = None
    nan_pixels: int = 0
    inf_pixels: int = 0
    nan_redshift: int = 0
    inf_redshift: int = 0
    out_of_range_redshift: int = 0
    band_min: list[float] = field(default_factory=list)
    band_max: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"{self.path}: {'OK' if self.ok else 'PROBLEMS'}"]
        lines.append(
            f"  galaxies: {self.n}, image {self.image_shape} {self.image_dtype} (on disk, channels-first)"
        )
        lines.append(f"  NaN pixels: {self.nan_pixels}, inf pixels: {self.inf_pixels}")
        lines.append(
            f"  redshift NaN: {self.nan_redshift}, inf: {self.inf_redshift}, "
            f"outside [0, 4]: {self.out_of_range_redshift}"
        )
        if self.band_min:
            rng = ", ".join(
                f"{b} [{lo:.4g}, {hi:.4g}]"
                for b, lo, hi in zip(BANDS, self.band_min, self.band_max)
            )
            lines.append(f"  finite pixel range per band: {rng}")
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def validate(path: str | Path, *, chunk: int = 1024, progress: bool = False) -> ValidationReport:
    """Check a GalaxiesML file chunk by chunk (never loading it whole).

    Counts NaN/inf pixels and redshifts and redshifts outside [0, 4]; reports missing required keys,
    wrong image shape/dtype and per-galaxy columns whose length differs from N. Never raises for a
    bad file (only for a missing one); the findings are in ``report.problems``.
    """
    path = Path(path)
    rep = ValidationReport(path=path)
    try:
        f = _open_h5(path)
    except GalaxiesMLFormatError as e:
        rep.problems.append(str(e))
        return rep
    with f:
        missing = [k for k in (IMAGE_KEY, REDSHIFT_KEY) if k not in f]
        rep.problems += [f"missing required key {k!r}" for k in missing]
        n = None
        if IMAGE_KEY in f:
            img = f[IMAGE_KEY]
            rep.image_shape, rep.image_dtype = tuple(img.shape), str(img.dtype)
            try:
                n, _, _ = _check_image(path, img)
            except GalaxiesMLFormatError as e:
                rep.problems.append(str(e))
            else:
                if img.dtype != np.float32:
                    rep.problems.append(
                        f"key 'image' has dtype {img.dtype}; the published files are float32"
                    )
                rep.n = n
                lo = np.full(len(BANDS), np.inf)
                hi = np.full(len(BANDS), -np.inf)
                for s in tqdm(
                    range(0, n, chunk), disable=not progress, desc=f"validate {path.name}"
                ):
                    x = img[s : s + chunk].astype(np.float32, copy=False)
                    fin = np.isfinite(x)
                    rep.nan_pixels += int(np.isnan(x).sum())
                    rep.inf_pixels += int(np.isinf(x).sum())
                    if fin.any():
                        lo = np.minimum(lo, np.where(fin, x, np.inf).min(axis=(0, 2, 3)))
                        hi = np.maximum(hi, np.where(fin, x, -np.inf).max(axis=(0, 2, 3)))
                rep.band_min, rep.band_max = lo.tolist(), hi.tolist()
                if rep.nan_pixels or rep.inf_pixels:
                    rep.problems.append(
                        f"{rep.nan_pixels} NaN and {rep.inf_pixels} inf pixels in 'image'"
                    )
        if REDSHIFT_KEY in f:
            z = np.asarray(f[REDSHIFT_KEY][()], dtype=np.float64)
            if n is not None and z.shape != (n,):
                rep.problems.append(f"key {REDSHIFT_KEY!r} has shape {z.shape}; expected ({n},)")
            rep.nan_redshift = int(np.isnan(z).sum())
            rep.inf_redshift = int(np.isinf(z).sum())
            lo, hi = REDSHIFT_RANGE
            rep.out_of_range_redshift = int(_bad_redshift(z).sum()) - rep.nan_redshift
            rep.out_of_range_redshift -= rep.inf_redshift
            if rep.nan_redshift or rep.inf_redshift or rep.out_of_range_redshift:
                rep.problems.append(
                    f"{rep.nan_redshift} NaN, {rep.inf_redshift} inf and {rep.out_of_range_redshift} "
                    f"out-of-range (outside [{lo:g}, {hi:g}]) values in {REDSHIFT_KEY!r}"
                )
        if n is not None:
            for k, v in f.items():
                if (
                    isinstance(v, h5py.Dataset)
                    and k in (OBJECT_ID_KEY, "specz_redshift_err", "specz_ra", "specz_dec")
                    and v.shape[:1] != (n,)
                ):
                    rep.problems.append(f"key {k!r} has length {v.shape[:1]}; expected {n}")
    return rep

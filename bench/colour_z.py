"""Median aperture colours of real and generated galaxies in fine redshift bins.

The colour–redshift relation is where the DDPM family's colour cast sits (docs/results.md,
diagnosis items 7–8): the real g − r drops by ~0.3 mag at z ≈ 0.5 (the 4000 Å break crossing
r) and a model that smooths the relation misses it. Same aperture and asinh softening as
``galgen evaluate`` (from the real file's first 4,096 stamps). Each sample file must hold the
real file's redshifts in order (``galgen sample --redshifts test``).

    .venv/bin/python bench/colour_z.py DATA/..._testing_with_morphology.hdf5 a.hdf5 b.hdf5
    .venv/bin/python bench/colour_z.py DATA/... a.hdf5 --edges 2 2.5 3 4   # the rare high-z bins
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

EDGES = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.25, 1.5, 2.0, 4.0)


def colours(path: Path, st: dict, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 4)`` aperture colours g−r, r−i, i−z, z−y (asinh mag) and ``(N,)`` redshifts."""
    from galaxiesml_data import open_split
    from galgen._photeval import colour_array

    ds = open_split(path)
    n = len(ds) if n is None else min(n, len(ds))
    x = np.asarray(ds.images[:n], np.float32)
    return colour_array(x, st), np.asarray(ds.redshift[:n], np.float64)


def main() -> None:
    from galgen._photeval import settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("real", type=Path, help="real test file (GalaxiesML schema)")
    ap.add_argument("samples", nargs="*", type=Path, help="sample files on the same redshifts")
    ap.add_argument("--n", type=int, default=None, help="first N galaxies only")
    ap.add_argument("--edges", type=float, nargs="+", default=EDGES,
                    help="redshift bin edges (default: fine bins below z = 2)")  # fmt: skip
    a = ap.parse_args()
    st = settings(a.real, a.n or 4096)
    sets = [("real", *colours(a.real, st, a.n))]
    for p in a.samples:
        c, z = colours(p, st, a.n)
        if z.size != sets[0][2].size or not np.allclose(z, sets[0][2], atol=1e-3):
            raise SystemExit(f"{p}: redshifts differ from {a.real}'s")
        sets.append((p.stem, c, z))
    z = sets[0][2]
    print("median colour g-r / r-i per redshift bin, (its scatter: 1.4826 MAD), N real galaxies")
    print(f"{'bin':>9} {'N':>5} " + " ".join(f"{name[:29]:>29}" for name, _, _ in sets))
    for lo, hi in zip(a.edges[:-1], a.edges[1:], strict=True):
        m = (z >= lo) & (z < hi)
        if m.sum() < 10:
            continue
        cells = []
        for _, c, _ in sets:
            med = np.median(c[m, :2], axis=0)
            mad = 1.4826 * np.median(np.abs(c[m, :2] - med), axis=0)
            cells.append(f"{med[0]:+.2f} ({mad[0]:.2f}) / {med[1]:+.2f} ({mad[1]:.2f})")
        print(f"{lo:4.2f}-{hi:4.2f} {m.sum():5d} " + " ".join(f"{x:>29}" for x in cells))


if __name__ == "__main__":
    main()

"""Mean linear-flux profile in rings, in units of the real sky σ per pixel, per redshift bin:
real test galaxies against generated files (GalaxiesML schema, same redshift order).

Where a method's aperture fluxes are off, this says whether the light is missing from the core,
spread into the outskirts, or below the sky (a dark halo). Prints bands r and y.

    .venv/bin/python bench/ring_profiles.py RUN/data/5x32x32_testing_with_morphology.hdf5 \
        RUN/samples/ddpm.hdf5 RUN/samples/p_mf_1_step.hdf5
"""

from __future__ import annotations

import sys

import h5py
import numpy as np

RINGS = ((0, 2), (2, 4), (4, 8), (8, 12), (12, 23))  # px from the stamp centre
ZBINS = ((0, 0.5), (0.5, 1), (1, 2), (2, 2.5), (2.5, 3), (3, 4))
BORDER = 4  # px: the evaluation's sky border


def load(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W, C) in linear flux and their redshifts (N,)."""
    with h5py.File(path) as f:
        return (np.asarray(f["image"][:n], np.float64).transpose(0, 2, 3, 1),
                np.asarray(f["specz_redshift"][:n]))  # fmt: skip


def main(test: str, gens: list[str], n: int = 1024) -> None:
    real, z = load(test, n)
    size = real.shape[1]
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2)
    edge = np.zeros((size, size), bool)
    edge[:BORDER] = edge[-BORDER:] = True
    edge[:, :BORDER] = edge[:, -BORDER:] = True
    sky = np.median(np.std(real[:, edge], axis=1), axis=0)  # (C,) per-band sky σ
    print("real sky σ per band:", np.round(sky, 4), " rings (px):", RINGS)
    files = [("real", real)] + [(g.rsplit("/", 1)[-1], load(g, n)[0]) for g in gens]
    for lo, hi in ZBINS:
        m = (z >= lo) & (z < hi)
        if not m.any():
            continue
        print(f"{lo} <= z < {hi}: {m.sum()} galaxies; band r rings | band y rings")
        for name, x in files:
            prof = [x[m][:, (r >= a) & (r < b)].mean(axis=(0, 1)) / sky for a, b in RINGS]
            rr = " ".join(f"{p[1]:+8.2f}" for p in prof)
            ry = " ".join(f"{p[4]:+8.2f}" for p in prof)
            print(f"  {name[:16]:16s} {rr} | {ry}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])

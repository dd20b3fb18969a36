"""Per-band brightness of generated galaxies against real ones, per redshift bin.

For a reproduce directory: the median asinh aperture magnitude of every band in each redshift bin
(the same aperture and softening as ``galgen evaluate``'s photometry, read from its
imagestats.json), for the real test galaxies and each named sample file, and the offset of each
from real. A model that ignores its redshift draws the same median magnitude in every bin.

    .venv/bin/python bench/band_offsets.py out/cpu ddpm dpm__2m p_mf_1_step
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np
from morph_metrics import COLOUR_Z_EDGES, HSC_BANDS, aperture_flux, asinh_mag


def magnitudes(path: Path, n: int, radius: float, softening: np.ndarray):
    """``(N, 5)`` asinh aperture magnitudes and ``(N,)`` redshifts of the first n galaxies."""
    with h5py.File(path, "r") as f:
        x = np.moveaxis(np.asarray(f["image"][:n]), 1, -1)
        z = np.asarray(f["specz_redshift"][:n])
    return asinh_mag(aperture_flux(x, radius), softening), z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="galgen reproduce output directory")
    ap.add_argument("samples", nargs="+", help="sample file stems under RUN/samples")
    a = ap.parse_args()
    settings = json.loads((a.run / "eval" / "imagestats.json").read_text())["settings"]
    n = json.loads((a.run / "eval" / "table1.json").read_text())["n_real"]
    soft, radius = np.asarray(settings["softening"]), settings["radius"]
    test = next((a.run / "data").glob("*_testing_with_morphology.hdf5"))
    real, z = magnitudes(test, n, radius, soft)
    edges = COLOUR_Z_EDGES
    bins = [(z >= lo) & (z < hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    label = "  ".join(f"z {lo}-{hi}" for lo, hi in zip(edges[:-1], edges[1:], strict=True))
    print(f"median asinh aperture magnitude per band ({' '.join(HSC_BANDS)}); bins: {label}")
    print(f"{'real':>24}: " + " | ".join(
        " ".join(f"{v:5.2f}" for v in np.median(real[m], 0)) for m in bins))  # fmt: skip
    for stem in a.samples:
        gen, zg = magnitudes(a.run / "samples" / f"{stem}.hdf5", n, radius, soft)
        if not np.allclose(zg, z, atol=1e-3):
            raise SystemExit(f"{stem}: redshifts differ from the test file's first {n}")
        print(f"{stem:>24}: " + " | ".join(
            " ".join(f"{v:+5.2f}" for v in np.median(gen[m], 0) - np.median(real[m], 0))
            for m in bins))  # fmt: skip


if __name__ == "__main__":
    main()

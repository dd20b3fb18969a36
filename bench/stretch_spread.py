"""Where a brightness or colour error of generated galaxies comes from: mean or spread.

Per band and redshift bin, generated against real (same redshifts, in order): the mean aperture
sum in the run's stretched space (where the network works), the mean and median aperture flux in
linear units, and the mean and spread of the stretched pixel values in rings around the centre.
Above its softening the arcsinh stretch is logarithmic, so its inverse is convex: generated pixels
with the right stretched mean but a larger spread than real ones have too much linear flux (by
about exp(norm² (s_gen² − s_real²) / 2)). The "×" column is that linear-flux ratio per ring;
"noise ×" compares the pixel-scale noise in the core (real cores are smooth there).

    .venv/bin/python bench/stretch_spread.py RUN DATA/..._testing_with_morphology.hdf5 gen.hdf5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ZBINS = ((0.0, 0.35), (0.35, 0.5), (0.5, 0.65), (0.65, 1.0), (1.0, 2.0), (2.0, 4.0))
RINGS = ((0.0, 1.5), (1.5, 3.0), (3.0, 5.0), (5.0, 8.0))  # px from the stamp centre


def _images(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from galaxiesml_data import open_split

    ds = open_split(path)
    return np.asarray(ds.images[:], np.float32), np.asarray(ds.redshift[:], np.float64)


def core_highpass(y: np.ndarray) -> np.ndarray:
    """``(N, C)`` std of ``y (N, H, W, C)`` minus its 3×3 running mean over the central 6×6 px:
    pixel-scale noise in the galaxy core (real cores are smooth in the stretched space)."""
    from scipy.ndimage import uniform_filter

    c = y.shape[1] // 2
    hp = y - uniform_filter(y, size=(1, 3, 3, 1), mode="nearest")
    return hp[:, c - 3 : c + 3, c - 3 : c + 3, :].std(axis=(1, 2))


def _inverse_band(tf, y: np.ndarray, band: int) -> np.ndarray:
    """Linear flux of stretched values ``y`` of one band (any per-band transform)."""
    from galaxiesml_data import BANDS

    full = np.zeros((*y.shape, len(BANDS)), np.float32)
    full[..., band] = y
    return tf.inverse(full)[..., band]


def main() -> None:
    import morph_metrics as mm
    from galaxiesml_data import BANDS
    from galgen import Simulator
    from galgen._photeval import settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the run (or model file) whose stretch to use")
    ap.add_argument("real", type=Path, help="real test file")
    ap.add_argument("generated", type=Path, help="sample file on the real file's redshifts")
    a = ap.parse_args()
    tf = Simulator.load(a.run)._transform
    xr, z = _images(a.real)
    xg, zg = _images(a.generated)
    if zg.shape != z.shape or not np.allclose(zg, z, atol=1e-3):
        raise SystemExit(f"{a.generated}: redshifts differ from {a.real}'s")
    size = xr.shape[1]
    radius = settings(a.real, len(z))["radius"]  # galgen evaluate's aperture
    yr, yg = tf.forward(xr), tf.forward(xg)
    sr, sg = (mm.aperture_flux(y, radius) for y in (yr, yg))
    fr, fg = (mm.aperture_flux(x, radius) for x in (xr, xg))
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    rr = np.hypot(yy - c, xx - c)
    print(f"{a.generated.name} vs {a.real.name}; bands {' '.join(BANDS)}")
    hr, hg = core_highpass(yr), core_highpass(yg)
    print("generated / real − 1 (%): stretched mean aperture sum | linear mean | linear median;")
    print("then core noise (median high-pass std, central 6x6 px), generated / real")
    for lo, hi in ZBINS:
        m = (z >= lo) & (z < hi)
        if m.sum() < 10:
            continue
        parts = [
            100 * (sg[m].mean(0) / sr[m].mean(0) - 1),
            100 * (fg[m].mean(0) / fr[m].mean(0) - 1),
            100 * (np.median(fg[m], 0) / np.median(fr[m], 0) - 1),
        ]
        print(
            f"z {lo:4.2f}-{hi:4.2f} (N={int(m.sum()):4d}) "
            + " | ".join(" ".join(f"{v:+6.1f}" for v in p) for p in parts)
            + " ; noise ×"
            + " ".join(f"{v:.1f}" for v in np.median(hg[m], 0) / np.median(hr[m], 0))
        )
        for b, band in enumerate(BANDS):
            cells = []
            for r0, r1 in RINGS:
                ring = (rr >= r0) & (rr < r1)
                pr, pg = yr[m][:, ring, b], yg[m][:, ring, b]
                lin_r, lin_g = (_inverse_band(tf, p, b).mean() for p in (pr, pg))
                cells.append(
                    f"{pr.mean():.2f}±{pr.std():.2f} {pg.mean():.2f}±{pg.std():.2f} "
                    f"×{lin_g / lin_r:.2f}"
                )
            print(f"   {band}: " + " | ".join(cells))


if __name__ == "__main__":
    main()

"""Draw a small GalSim scene of generated galaxies: one image per band.

    python galsim_scene.py MODEL [--n 30] [--size 256] [--seed 1] [--out scene.fits]

MODEL is a run directory (``galgen train``) or a model file (``galgen export``). Every galaxy is
drawn with ``method="no_pixel"`` and no PSF: the generated stamps are *observed* HSC-like galaxies
whose PSF and pixel response are already in the pixels. The stamps also carry the survey's sky
noise, so the scene has noise only where a stamp landed; add your own sky to the whole image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import galgen
import galsim
import numpy as np


def draw_scene(
    sim: galgen.Simulator,
    n: int = 30,
    size: int = 256,
    seed: int = 1,
    z_range: tuple[float, float] = (0.1, 3.0),
    **sample_kw,
) -> tuple[dict[str, galsim.Image], dict[str, np.ndarray]]:
    """A ``size``x``size`` image per band with ``n`` galaxies at random positions.

    Returns (images by band, catalog with ``redshift``, ``x``, ``y`` in pixels). Reproducible:
    one ``galsim.BaseDeviate(seed)`` drives redshifts, positions and the model's noise.
    """
    rng = galsim.BaseDeviate(seed)
    ud = galsim.UniformDeviate(rng)
    lo, hi = z_range
    stamp = sim.image_shape[0] + 8  # room for the interpolant at a sub-pixel offset
    margin = stamp / 2 + 1
    catalog = {
        "redshift": np.array([lo + (hi - lo) * ud() for _ in range(n)]),
        "x": np.array([margin + (size - 2 * margin) * ud() for _ in range(n)]),
        "y": np.array([margin + (size - 2 * margin) * ud() for _ in range(n)]),
    }
    profiles = sim.sample_galsim(catalog, rng, **sample_kw)
    scene = {b: galsim.ImageF(size, size, scale=sim.pixel_scale) for b in sim.bands}
    for prof, x, y in zip(profiles, catalog["x"], catalog["y"]):
        for band, obj in prof.items():
            img = obj.drawImage(
                nx=stamp, ny=stamp, scale=sim.pixel_scale, method="no_pixel",
                center=galsim.PositionD(x, y),
            )  # fmt: skip
            bounds = img.bounds & scene[band].bounds
            scene[band][bounds] += img[bounds]
    return scene, catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="run directory or .galgen model file")
    ap.add_argument("--n", type=int, default=30, help="galaxies in the scene")
    ap.add_argument("--size", type=int, default=256, help="scene side in pixels")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("scene.fits"))
    args = ap.parse_args()
    sim = galgen.Simulator.load(args.model)
    scene, _ = draw_scene(sim, n=args.n, size=args.size, seed=args.seed)
    galsim.fits.writeMulti(list(scene.values()), str(args.out))
    print(f"wrote {args.out}: {len(scene)} bands ({', '.join(scene)}), {args.n} galaxies")


if __name__ == "__main__":
    main()

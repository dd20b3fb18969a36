"""morph-metrics benchmarks: throughput per protocol and a GalSim ground-truth validation table.

    uv run --package morph-metrics --group test python bench/morph_metrics_bench.py throughput
    uv run --package morph-metrics --group test python bench/morph_metrics_bench.py validation

``throughput`` measures stamps/s with the work in 1 and 2 worker processes (pools warmed up first,
so imports are not timed) and prints stamps/s per core. ``validation`` renders a few hundred Sérsic
galaxies (64x64, 0.168"/px, Gaussian PSF 0.7", S/N 50-200, 0.5 <= n <= 4, 2 <= r_half <= 5 px,
0.4 <= q <= 1) and prints median errors of the statmorph protocol per Sérsic-index bin.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import time

import galsim
import numpy as np
from morph_metrics import measure

SCALE, FWHM, SIZE = 0.168, 0.7, 64


def render(n: float, rhalf_px: float, q: float, snr: float, seed: int) -> np.ndarray:
    """Sheared Sérsic * Gaussian PSF + Gaussian noise at the given (optimal) S/N, (SIZE, SIZE)."""
    gal = galsim.Sersic(n, half_light_radius=rhalf_px * SCALE, flux=1000.0)
    gal = gal.shear(q=q, beta=(37.0 * seed % 180) * galsim.degrees)
    img = galsim.Convolve(gal, galsim.Gaussian(fwhm=FWHM)).drawImage(nx=SIZE, ny=SIZE, scale=SCALE)
    img.addNoiseSNR(galsim.GaussianNoise(galsim.BaseDeviate(seed)), snr, preserve_flux=True)
    return img.array


def sample(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random galaxies: truth ``(count, 4)`` = n, r_half (px), q, S/N and images."""
    rng = np.random.default_rng(seed)
    truth = np.column_stack(
        [
            rng.uniform(0.5, 4.0, count),
            rng.uniform(2.0, 5.0, count),
            rng.uniform(0.4, 1.0, count),
            rng.uniform(50, 200, count),
        ]
    )
    imgs = np.stack([render(*t, seed=i + 1) for i, t in enumerate(truth)])
    return truth, imgs[..., None].astype(np.float32)


def throughput(args: argparse.Namespace) -> None:
    _, base = sample(64, seed=1)
    print("| protocol | processes | stamps | seconds | stamps/s | stamps/s per core |")
    print("|---|---|---|---|---|---|")
    for protocol, count in (("paper", args.paper_stamps), ("statmorph", args.statmorph_stamps)):
        imgs = np.concatenate([base] * (count // len(base) + 1))[:count]
        kw = {"protocol": protocol, "pixel_scale": SCALE, "psf_fwhm": FWHM}
        for workers in (1, 2):
            with cf.ProcessPoolExecutor(workers) as ex:
                measure(imgs[: 2 * workers], **kw, executor=ex, chunk_size=1)  # warm
                t0 = time.perf_counter()
                cols = measure(imgs, **kw, executor=ex, chunk_size=args.chunk_size)
                dt = time.perf_counter() - t0
            assert cols["flag"].size == count
            rate = count / dt
            print(
                f"| {protocol} | {workers} | {count} | {dt:.2f} | {rate:.1f} | {rate / workers:.1f} |"
            )


def validation(args: argparse.Namespace) -> None:
    truth, imgs = sample(args.stamps, seed=args.seed)
    t0 = time.perf_counter()
    cols = measure(imgs, protocol="statmorph", pixel_scale=SCALE, psf_fwhm=FWHM, progress=True)
    dt = time.perf_counter() - t0
    n, rh, q = truth[:, 0], truth[:, 1], truth[:, 2]
    rel_n = cols["sersic_index"] / n - 1
    d_e = cols["ellipticity"] - (1 - q)
    rel_a = cols["semi_major_axis"] / (rh / np.sqrt(q)) - 1
    print(f"{args.stamps} stamps in {dt:.1f} s\n")
    print(
        "| true n | stamps | flag=0 | median abs rel. err n | median rel. bias n "
        "| median abs Δe | median abs rel. err SMA |"
    )
    print("|---|---|---|---|---|---|---|")
    bins = [(0.5, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (0.5, 4.0)]
    for lo, hi in bins:
        s = (n >= lo) & (n <= hi)
        good = np.mean(cols["flag"][s] == 0)
        print(
            f"| {lo}–{hi} | {s.sum()} | {good:.0%} | {np.nanmedian(np.abs(rel_n[s])):.3f} "
            f"| {np.nanmedian(rel_n[s]):+.3f} | {np.nanmedian(np.abs(d_e[s])):.3f} "
            f"| {np.nanmedian(np.abs(rel_a[s])):.3f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--paper-stamps", type=int, default=2000)
    t.add_argument("--statmorph-stamps", type=int, default=200)
    t.add_argument("--chunk-size", type=int, default=32)
    v = sub.add_parser("validation")
    v.add_argument("--stamps", type=int, default=300)
    v.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    {"throughput": throughput, "validation": validation}[args.cmd](args)


if __name__ == "__main__":
    main()

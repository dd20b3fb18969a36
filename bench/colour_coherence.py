"""Are a method's colour errors a coherent SED change or independent per-band flux jitter?

At 0 ≤ z < 0.5 (where the real colour distributions are narrowest), per galaxy: the aperture
colours (g−r, r−i, i−z, z−y; galgen evaluate's photometry, radius size/4) minus the real median
colour in its redshift bin of width 0.05. For the real test set, the real-vs-real floor (the
evaluation's redshift-matched second sample) and each generated file it prints

- the spread along the real colours' principal direction (the real galaxies' one-parameter SED
  family) and the rms off it ("perp"): independent per-band errors land off it;
- the correlation of adjacent colours: a flux error in one band alone moves its two colours in
  opposite directions, so independent per-band jitter makes them anticorrelated;
- the red tail: the fraction of galaxies more than 0.2 mag redder than the median along that
  direction (the synthetic set's bulge-dominated galaxies), and with ``--sersic`` the rank
  correlation of that colour with the g-band Sérsic index (statmorph, as ``galgen evaluate``
  measures it; real galaxies: redder = more bulge = higher n);
- the core pixel noise in linear flux: the std of (image − its 3×3 running mean) over the central
  6×6 px, divided by the mean core flux, median over galaxies and bands. Noise that keeps the
  sky's amplitude in the stretched space y = asinh(x / (S σ)) / norm, where the stretch is
  logarithmic, is a fractional flux noise of about 1/S per pixel.

    .venv/bin/python bench/colour_coherence.py RUN/data/5x32x32_testing_with_morphology.hdf5 \
        RUN/samples/ddpm.hdf5 RUN/samples/dpm__2m.hdf5 [--sersic] [--cache DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ZMAX = 0.5
ZSTEP = 0.05
COLOURS = ("g-r", "r-i", "i-z", "z-y")


def core_noise_fraction(path: Path, mask: np.ndarray) -> np.ndarray:
    """``(N,)`` median over bands of the core's pixel-scale noise (``stretch_spread.core_highpass``
    of the linear-flux stamps) over the mean flux of the same central 6×6 px."""
    from galaxiesml_data import open_split
    from stretch_spread import core_highpass  # bench/, beside this script

    x = np.asarray(open_split(path).images[: mask.size], np.float32)[mask]
    c = x.shape[1] // 2
    core = np.abs(x[:, c - 3 : c + 3, c - 3 : c + 3, :].mean(axis=(1, 2)))
    return np.median(core_highpass(x) / np.maximum(core, 1e-12), axis=1)


def sersic_correlation(path: Path, mask: np.ndarray, along: np.ndarray, cache: Path) -> float:
    """Spearman correlation of ``along`` with the g-band Sérsic index of the galaxies ``mask`` of
    ``path``, measured (and cached in ``cache``) by ``galgen evaluate``'s own ``measure_file``."""
    from galgen._study import measure_file

    n = measure_file(path, cache, "statmorph", idx=np.flatnonzero(mask))
    ok = np.isfinite(n["sersic_index"]) & (n["flag"] == 0 if "flag" in n else True)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return float(np.corrcoef(rank(along[ok]), rank(n["sersic_index"][ok]))[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("test", type=Path)
    ap.add_argument("gen", type=Path, nargs="+")
    ap.add_argument(
        "--n", type=int, default=None, help="first N test galaxies (default: as many as each file)"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/colour_coherence_cache"))
    ap.add_argument("--sersic", action="store_true", help="also measure the Sérsic index (slow)")
    a = ap.parse_args()
    from galaxiesml_data import open_split
    from galgen import _photeval as pe

    n = a.n or min(len(open_split(g)) for g in a.gen)
    st = pe.settings(a.test, n)
    ref = pe.summarize(a.test, st, a.cache, np.arange(n))
    floor_path, idx = pe.floor_indices(a.test, n)
    sets = [
        ("real", ref, a.test),
        ("real vs real", pe.summarize(floor_path, st, a.cache, idx), None),
    ]
    sets += [(g.name, pe.summarize(g, st, a.cache, np.arange(n)), g) for g in a.gen]
    z = ref["redshift"]
    low = z < ZMAX
    zb = np.floor(z / ZSTEP).astype(int)
    med = {c: {b: np.median(ref[c][low & (zb == b)]) for b in np.unique(zb[low])} for c in COLOURS}

    def residuals(cols: dict) -> np.ndarray:
        r = np.stack(
            [cols[c][:n][low] - np.array([med[c][b] for b in zb[low]]) for c in COLOURS], 1
        )
        return r - np.median(r, axis=0)

    w, v = np.linalg.eigh(np.cov(residuals(ref).T))
    d = v[:, -1] * np.sign(v[0, -1])
    print(f"{low.sum()} galaxies at z < {ZMAX}; real principal colour direction "
          f"({', '.join(COLOURS)}) = {np.round(d, 2).tolist()}")  # fmt: skip
    print(f"{'set':28s} {'sd along':>8s} {'rms perp':>8s} {'r(gr,ri)':>8s} {'r(ri,iz)':>8s} "
          f"{'r(iz,zy)':>8s} {'red tail':>8s} {'r(along,n)':>10s} {'core noise / flux':>18s}")  # fmt: skip
    for name, cols, path in sets:
        r = residuals(cols)
        along = r @ d
        perp = np.sqrt(((r - along[:, None] * d) ** 2).sum(axis=1).mean())
        cc = np.corrcoef(r.T)
        red = np.mean(along - np.median(along) > 0.2)
        noise = f"{np.median(core_noise_fraction(path, low)):.3f}" if path is not None else "—"
        rn = (
            f"{sersic_correlation(path, low, along, a.cache):+10.2f}"
            if a.sersic and path
            else f"{'—':>10s}"
        )
        print(f"{name[:28]:28s} {along.std():8.3f} {perp:8.3f} {cc[0, 1]:+8.2f} {cc[1, 2]:+8.2f} "
              f"{cc[2, 3]:+8.2f} {red:8.3f} {rn} {noise:>18s}")  # fmt: skip


if __name__ == "__main__":
    main()

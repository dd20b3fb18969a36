"""Bias of a trained DDPM's clean-image estimate, per band, redshift bin and noise level.

For a denoiser that has learned the data, the mean of its clean-image estimate over the noise and
over the galaxies of a redshift bin equals the bin's mean image (E[E[x0 | x_t, z] | z] = E[x0 | z]).
So for real galaxies x0 of a bin, noised to x_t at time t, the mean aperture sum of x̂0(x_t, t, z)
minus that of x0 is zero up to sampling error; anything else is a bias of the network at that t,
band and redshift. Measured in the run's stretched space (where the network works and the identity
holds), as a percentage of the bin's mean aperture sum, with its standard error. A colour cast of
the samples shows here as bands whose bias differs; the t where it sits says which part of the
sampling trajectory draws it (high t: the conditional mean; low t: the details).

Second table: the noise left in the galaxy core. Real cores are smooth in the stretched space
(above the softening the stretch is logarithmic, so sky noise shrinks there); the median over
galaxies of the high-pass (pixel minus its 3×3 mean) standard deviation of the central 6×6 px,
for x̂0 and for x_t/α (the noisy input), divided by that of x0. A denoiser that removes the noise
gives ~1 for x̂0 at small t; ≈ the x_t/α column means the noise passes through into the samples.

    .venv/bin/python bench/denoiser_bias.py RUN DATA/..._training_with_morphology.hdf5 --n 4096
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ZBINS = (0.0, 0.35, 0.5, 0.65, 1.0, 2.0, 4.0)
TIMES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
NOISE_Z = (0.35, 1.0)  # the redshifts of the colour cast (docs/results.md, diagnosis item 9)


def main() -> None:
    import diffusion_core as dc
    import jax
    import jax.numpy as jnp
    import morph_metrics as mm
    from galaxiesml_data import BANDS, open_split
    from galgen import Simulator
    from galgen._photeval import settings
    from galgen._simulator import data_stats
    from stretch_spread import core_highpass  # bench/, the script's directory

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="DDPM run directory or model file")
    ap.add_argument("data", type=Path, help="a GalaxiesML-schema split (real galaxies)")
    ap.add_argument("--n", type=int, default=4096, help="first N galaxies")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    sim = Simulator.load(a.run)
    if sim.model != "ddpm":
        raise SystemExit(f"{a.run}: a {sim.model} model; this measures a DDPM's x0 estimate")
    cfg = sim.config
    ds = open_split(a.data)
    n = min(a.n, len(ds))
    x0 = np.asarray(sim._transform.forward(np.asarray(ds.images[:n], np.float32)), np.float32)
    z = np.asarray(ds.redshift[:n], np.float32)
    radius = settings(a.data, n)["radius"]  # galgen evaluate's aperture

    sched = dc.ddpm_schedule()
    dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
    apply = dc.with_baseline(sim._net.apply, sched, dcfg, data_stats(cfg))
    params = sim._params

    @jax.jit
    def denoise(x, zz, t, key):
        """x0_hat and x_t / alpha (B, H, W, C) for clean x at time t."""
        tt = jnp.full((x.shape[0],), t, jnp.float32)
        al, si = sched.alpha(tt)[:, None, None, None], sched.sigma(tt)[:, None, None, None]
        eps = jax.random.normal(key, x.shape)
        xt = al * x + si * eps
        pred = apply(params, xt, tt, z=zz)
        xhat = al * xt - si * pred if dcfg.prediction == "v" else (xt - si * pred) / al
        return xhat, xt / al

    ref = mm.aperture_flux(x0, radius)
    bins = [(z >= lo) & (z < hi) for lo, hi in zip(ZBINS[:-1], ZBINS[1:], strict=True)]
    key = jax.random.key(a.seed)
    print(f"{a.run}: {n} galaxies of {a.data.name}; bias of the aperture sum of x0_hat, % of the")
    print("bin's mean (± standard error), bands " + " ".join(BANDS))
    head = " ".join(f"z {lo}-{hi} (N={int(m.sum())})".center(38) for lo, hi, m in
                    zip(ZBINS[:-1], ZBINS[1:], bins, strict=True))  # fmt: skip
    print(f"{'t':>5} {head}")
    in_noise = (z >= NOISE_Z[0]) & (z < NOISE_Z[1])
    hp0 = np.median(core_highpass(x0[in_noise]), axis=0)
    noise_rows = []
    for t in TIMES:
        errs, hp_hat, hp_in = [], [], []
        for i in range(0, n, a.batch):
            key, k = jax.random.split(key)
            xhat, xin = (
                np.asarray(v) for v in denoise(x0[i : i + a.batch], z[i : i + a.batch], t, k)
            )
            errs.append(mm.aperture_flux(xhat - x0[i : i + a.batch], radius))
            sel = in_noise[i : i + a.batch]
            hp_hat.append(core_highpass(xhat[sel]))
            hp_in.append(core_highpass(xin[sel]))
        noise_rows.append(
            (
                t,
                np.median(np.concatenate(hp_hat), 0) / hp0,
                np.median(np.concatenate(hp_in), 0) / hp0,
            )
        )
        e = np.concatenate(errs)
        cells = []
        for m in bins:
            mean = ref[m].mean(0)
            bias = 100 * e[m].mean(0) / mean
            se = 100 * e[m].std(0) / np.sqrt(max(m.sum(), 1)) / np.abs(mean)
            cells.append(" ".join(f"{b:+5.1f}" for b in bias) + f" ±{se.max():4.1f}")
        print(f"{t:5.2f} " + " | ".join(cells))
    print(
        f"\ncore noise, {int(in_noise.sum())} galaxies at {NOISE_Z[0]} <= z < {NOISE_Z[1]}: "
        "high-pass std of the central 6x6 px / that of x0 (median over galaxies)"
    )
    print(f"{'t':>5} {'x0_hat':^34} | {'x_t / alpha':^34}")
    for t, hat, inp in noise_rows:
        print(f"{t:5.2f} " + " ".join(f"{v:6.2f}" for v in hat) + " | "
              + " ".join(f"{v:6.2f}" for v in inp))  # fmt: skip


if __name__ == "__main__":
    main()

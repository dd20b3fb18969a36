"""Bias of a trained DDPM's clean-image estimate, per band, redshift bin and noise level.

For a denoiser that has learned the data, the mean of its clean-image estimate over the noise and
over the galaxies of a redshift bin equals the bin's mean image (E[E[x0 | x_t, z] | z] = E[x0 | z]).
So for real galaxies x0 of a bin, noised to x_t at time t, the mean aperture sum of x̂0(x_t, t, z)
minus that of x0 is zero up to sampling error; anything else is a bias of the network at that t,
band and redshift. Measured in the run's stretched space (where the network works and the identity
holds), as a percentage of the bin's mean aperture sum, with its standard error. A colour cast of
the samples shows here as bands whose bias differs; the t where it sits says which part of the
sampling trajectory draws it (high t: the conditional mean; low t: the details).

    .venv/bin/python bench/denoiser_bias.py RUN DATA/..._training_with_morphology.hdf5 --n 4096
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ZBINS = (0.0, 0.35, 0.5, 0.65, 1.0, 2.0, 4.0)
TIMES = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


def main() -> None:
    import diffusion_core as dc
    import jax
    import jax.numpy as jnp
    import morph_metrics as mm
    from galaxiesml_data import BANDS, open_split
    from galgen import Simulator
    from galgen._simulator import data_stats

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
    size = x0.shape[1]
    w = jnp.asarray(mm.aperture_weights((size, size), size / 4.0), jnp.float32)

    sched = dc.ddpm_schedule()
    dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
    apply = dc.with_baseline(sim._net.apply, sched, dcfg, data_stats(cfg))
    params = sim._params

    @jax.jit
    def apert_err(x, zz, t, key):
        """Aperture sums (B, C) of x0_hat - x0 at time t."""
        tt = jnp.full((x.shape[0],), t, jnp.float32)
        al, si = sched.alpha(tt)[:, None, None, None], sched.sigma(tt)[:, None, None, None]
        eps = jax.random.normal(key, x.shape)
        xt = al * x + si * eps
        pred = apply(params, xt, tt, z=zz)
        xhat = al * xt - si * pred if dcfg.prediction == "v" else (xt - si * pred) / al
        return jnp.einsum("nhwc,hw->nc", xhat - x, w)

    ref = np.einsum("nhwc,hw->nc", x0, np.asarray(w))
    bins = [(z >= lo) & (z < hi) for lo, hi in zip(ZBINS[:-1], ZBINS[1:], strict=True)]
    key = jax.random.key(a.seed)
    print(f"{a.run}: {n} galaxies of {a.data.name}; bias of the aperture sum of x0_hat, % of the")
    print("bin's mean (± standard error), bands " + " ".join(BANDS))
    head = " ".join(f"z {lo}-{hi} (N={int(m.sum())})".center(38) for lo, hi, m in
                    zip(ZBINS[:-1], ZBINS[1:], bins, strict=True))  # fmt: skip
    print(f"{'t':>5} {head}")
    for t in TIMES:
        errs = []
        for i in range(0, n, a.batch):
            key, k = jax.random.split(key)
            errs.append(np.asarray(apert_err(x0[i : i + a.batch], z[i : i + a.batch], t, k)))
        e = np.concatenate(errs)
        cells = []
        for m in bins:
            mean = ref[m].mean(0)
            bias = 100 * e[m].mean(0) / mean
            se = 100 * e[m].std(0) / np.sqrt(max(m.sum(), 1)) / np.abs(mean)
            cells.append(" ".join(f"{b:+5.1f}" for b in bias) + f" ±{se.max():4.1f}")
        print(f"{t:5.2f} " + " | ".join(cells))


if __name__ == "__main__":
    main()

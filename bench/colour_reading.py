"""Does a DDPM's denoiser keep the colour it sees? The colour slope of x̂0 on real galaxies.

Takes the real test galaxies below ``--zmax``, noises their stretched stamps to x_t at a few t
(one fixed draw), and regresses the aperture colours (galgen evaluate's aperture and asinh
softening) of each estimate of x0 on the galaxies' true colours: slope 1 keeps each galaxy's own
colour, 0 replaces it by one colour for all. Rows per t: the run's denoiser ("net"), its baseline
alone (the network's output set to 0; the run's ``objective.baseline``), the naive unbiased
reading x_t/α (is the colour there to be read?) and, with ``--train``, the
``"gaussian_mixture"`` baseline alone with its pixel mixture fitted to the training split. The
last columns are the rms of x̂0 − x0 over all pixels and over the galaxy-core pixels (more than
5 sky σ above the test stamps' border sky; stretched units). An ideal denoiser keeps slope ≈ 1
wherever the naive reading has it (docs/results.md, diagnosis item 17). The baseline alone's core
rms divided by σ (printed per t) is the size of what the network must add in the cores:
v-prediction's target minus the baseline's is (x̂0_baseline − x0)/σ (diagnosis item 18).

    .venv/bin/python bench/colour_reading.py RUN DATA/5x32x32_testing_with_morphology.hdf5 \
        --train DATA/5x32x32_training_with_morphology.hdf5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TIMES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def main() -> None:
    import diffusion_core as dc
    import jax
    import jax.numpy as jnp
    import morph_metrics as mm
    from galaxiesml_data import open_split
    from galgen import Simulator
    from galgen._photeval import colour_array, settings
    from galgen._simulator import data_stats
    from galgen._study import sky_stats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="DDPM run directory or model file")
    ap.add_argument("real", type=Path, help="real test file (GalaxiesML schema)")
    ap.add_argument("--train", type=Path, default=None, help="training split: adds 'mixture'")
    ap.add_argument("--zmax", type=float, default=0.5, help="galaxies with z below this")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    sim = Simulator.load(a.run)
    if sim.model != "ddpm":
        raise SystemExit(f"{a.run}: a {sim.model} model; this reads a DDPM's denoiser")
    cfg = sim.config
    ds = open_split(a.real)
    z = np.asarray(ds.redshift[:], np.float32)
    keep = z < a.zmax
    imgs, z = np.asarray(ds.images[:], np.float32)[keep], z[keep]
    st = settings(a.real, min(len(ds), 4096))
    names = mm.colour_names(st["bands"])

    true = colour_array(imgs, st)  # (N, C - 1), galgen evaluate's photometry
    x0 = jnp.asarray(sim._transform.forward(imgs), jnp.float32)
    sky = sky_stats(np.asarray(x0))  # the test stamps' own border sky, whatever the run's baseline
    core = np.asarray((x0 - np.asarray(sky["mean"])) / np.asarray(sky["std"]) > 5)
    sched = dc.ddpm_schedule()
    dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
    zero = lambda params, x, t, r=None, w=None, z=None, drop=None: jnp.zeros_like(x)  # noqa: E731
    stats = data_stats(cfg)
    estimators = {
        "net": (dc.with_baseline(sim._net.apply, sched, dcfg, stats), sim._params),
        f"{dcfg.baseline} alone": (dc.with_baseline(zero, sched, dcfg, stats), None),
    }
    if a.train is not None:
        y = sim._transform.forward(np.asarray(open_split(a.train).images[:2048], np.float32))
        ys = sky_stats(y)  # as galgen train fits it
        mix = dc.fit_pixel_mixture(y, ys["mean"], ys["std"])
        mcfg = dcfg.replace(baseline="gaussian_mixture", pixel_weight=0.0)
        mstats = (mix["weight"], mix["mean"], mix["cov"])
        estimators["mixture alone"] = (dc.with_baseline(zero, sched, mcfg, mstats), None)
    # one compiled prediction per estimator, reused at every t
    jitted = {
        name: (jax.jit(lambda p, x, t, z, apply=apply: apply(p, x, t, z=z)), params)
        for name, (apply, params) in estimators.items()
    }
    zz = jnp.asarray(z)
    v_pred = dcfg.prediction == "v"
    print(f"{len(z)} real galaxies with z < {a.zmax}; slope of x0_hat's colour on the true one")
    print(f"{core.mean():.1%} of their pixels are core pixels (> 5 sky sigma)")
    print(f"{'t':>4} {'estimator':>24} {'/'.join(names):>31} {'rms':>7} {'core':>7}")
    for t in TIMES:
        tt = jnp.full((len(z),), t, jnp.float32)
        al, si = sched.alpha(tt)[:, None, None, None], sched.sigma(tt)[:, None, None, None]
        eps = jax.random.normal(jax.random.fold_in(jax.random.key(a.seed), int(t * 1000)), x0.shape)
        xt = al * x0 + si * eps
        s0, a0 = float(si[0, 0, 0, 0]), float(al[0, 0, 0, 0])
        print(f"t = {t}: sigma = {s0:.3f}, sigma/alpha = {s0 / a0:.3f}")
        est = {"naive x_t/alpha": xt / al}
        for name, (f, params) in jitted.items():
            pred = jnp.concatenate([f(params, xt[i:i + 256], tt[i:i + 256], zz[i:i + 256])
                                    for i in range(0, len(z), 256)])  # fmt: skip
            est[name] = al * xt - si * pred if v_pred else (xt - si * pred) / al
        for name, xh in est.items():
            c = colour_array(np.asarray(sim._transform.inverse(np.asarray(xh)), np.float32), st)
            slopes = " ".join(f"{np.polyfit(true[:, k], c[:, k], 1)[0]:+7.2f}"
                              for k in range(true.shape[1]))  # fmt: skip
            err2 = np.asarray((xh - x0) ** 2)
            rms, rms_core = np.sqrt(err2.mean()), np.sqrt(err2[core].mean())
            print(f"{t:4.1f} {name:>24} {slopes:>31} {rms:7.3f} {rms_core:7.3f}")


if __name__ == "__main__":
    main()

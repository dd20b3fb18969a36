"""Where along a DDPM's sampling trajectory the colour–redshift relation is set (or lost).

Runs deterministic DDIM (η = 0, uniform in t) from t = 1 to 0 for the first N test redshifts and,
at a few times t, takes the network's clean-image estimate x̂0(x_t, t, z), maps it back to linear
flux and measures galgen evaluate's aperture colours. Prints the median g − r and r − i per
redshift bin at each t, beside the real galaxies' medians, then the spread of g − r above its
median (95th − 50th percentile: the red tail) the same way. At t = 1 x̂0 is the conditional mean
image, whose colours follow z; a model that uses z weakly at intermediate t lets the bins' colours
merge toward the marginal as t falls. ``--guidance w`` applies classifier-free guidance (a model
trained with ``objective.dropout > 0``); several values compare the same noise at each w.
``--train FILE`` adds the row "ideal 1.00": what x̂0 at t = 1 would be for a perfect network, the
mean stretched training stamp within ±``--window`` of each test redshift, mapped back the same way.

    .venv/bin/python bench/colour_trajectory.py RUN DATA/..._testing_with_morphology.hdf5 \
        --n 512 --guidance 1 2 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ZBINS = (0.0, 0.35, 0.5, 0.65, 1.0, 2.0, 4.0)
REPORT_T = (1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.0)


def main() -> None:
    import diffusion_core as dc
    import jax
    import jax.numpy as jnp
    from galaxiesml_data import open_split
    from galgen import Simulator
    from galgen._photeval import colour_array, settings
    from galgen._simulator import data_stats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="DDPM run directory or model file")
    ap.add_argument("real", type=Path, help="real test file (GalaxiesML schema)")
    ap.add_argument("--n", type=int, default=512, help="first N test redshifts")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=Path, default=None, help="training split: adds 'ideal 1.00'")
    ap.add_argument("--window", type=float, default=0.02, help="redshift half-width of the mean")
    a = ap.parse_args()

    sim = Simulator.load(a.run)
    if sim.model != "ddpm":
        raise SystemExit(f"{a.run}: a {sim.model} model; this follows a DDPM's trajectory")
    cfg = sim.config
    ds = open_split(a.real)
    n = min(a.n, len(ds))
    z = np.asarray(ds.redshift[:n], np.float32)
    st = settings(a.real, min(len(ds), 4096))  # galgen evaluate's aperture and softening

    def colours(lin: np.ndarray) -> np.ndarray:  # (N, 2): g − r, r − i as galgen evaluate's
        return colour_array(lin, st)[:, :2]

    sched = dc.ddpm_schedule()
    dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
    apply = dc.with_baseline(sim._net.apply, sched, dcfg, data_stats(cfg))
    v_pred = dcfg.prediction == "v"
    shape = (n, *np.asarray(ds.images[:1]).shape[1:])
    ts = np.linspace(1.0, 0.0, a.steps + 1)
    report = {int(np.argmin(np.abs(ts - t))) for t in REPORT_T}
    bins = [(lo, hi, (z >= lo) & (z < hi)) for lo, hi in zip(ZBINS[:-1], ZBINS[1:], strict=True)]
    real = colours(np.asarray(ds.images[:n], np.float32))
    ideal = None
    if a.train is not None:
        tr = open_split(a.train)
        xs = np.asarray(sim._transform.forward(np.asarray(tr.images[:], np.float32)), np.float32)
        zt = np.asarray(tr.redshift[:], np.float32)
        means = np.stack([xs[np.abs(zt - zi) <= a.window].mean(axis=0) for zi in z])
        ideal = colours(np.asarray(sim._transform.inverse(means), np.float32))

    for w in a.guidance:
        model = dc.ddpm_model_fn(apply, sim._params, jnp.asarray(z), None if w == 1.0 else w)

        @jax.jit
        def x0_hat(x, t, model=model):
            tt = jnp.full((x.shape[0],), t, jnp.float32)
            al, si = sched.alpha(tt)[:, None, None, None], sched.sigma(tt)[:, None, None, None]
            pred = model(x, tt)
            if v_pred:
                return al * x - si * pred, si * x + al * pred
            return (x - si * pred) / al, pred

        x = jax.random.normal(jax.random.key(a.seed), shape, jnp.float32)
        rows = {}
        for i, t in enumerate(ts[:-1]):
            xh, eps = x0_hat(x, max(float(t), 1e-3))
            if i in report:
                rows[float(t)] = colours(np.asarray(sim._transform.inverse(np.asarray(xh))))
            t_next = jnp.asarray(ts[i + 1], jnp.float32)
            x = sched.alpha(t_next) * xh + sched.sigma(t_next) * eps
        rows[0.0] = colours(np.asarray(sim._transform.inverse(np.asarray(x))))

        print(f"\nguidance w = {w}: median g-r / r-i of x0_hat per redshift bin (N galaxies)")
        head = " ".join(f"{f'{lo:.2f}-{hi:.2f} ({m.sum()})':>15}" for lo, hi, m in bins)
        print(f"{'t':>10} {head}")
        table = [("real", real)] + ([("ideal 1.00", ideal)] if ideal is not None else [])
        for label, c in table + [(f"{t:.2f}", rows[t]) for t in sorted(rows)[::-1]]:
            cells = []
            for _, _, m in bins:
                med = np.median(c[m], axis=0) if m.sum() else (np.nan, np.nan)
                cells.append(f"{med[0]:+.2f}/{med[1]:+.2f}")
            print(f"{label:>10} " + " ".join(f"{x:>15}" for x in cells))
        print("\nspread: 95th minus 50th percentile of g-r per redshift bin (the red tail)")
        for label, c in table + [(f"{t:.2f}", rows[t]) for t in sorted(rows)[::-1]]:
            cells = [np.subtract(*np.percentile(c[m, 0], [95, 50])) if m.sum() else np.nan
                     for _, _, m in bins]  # fmt: skip
            print(f"{label:>10} " + " ".join(f"{x:>15.2f}" for x in cells))


if __name__ == "__main__":
    main()

"""Cost of the pMF objective: train-step time ÷ plain flow-matching step time (same backbone,
same batch), and one-step sampling throughput.

    JAX_PLATFORMS=cpu .venv/bin/python bench/meanflow_step_cost.py --preset pmf-tiny \
        --image-size 32 --channels 5 --batch 32
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from gen_backbones import build, param_count
from meanflow import PMFConfig, flow_matching_loss, pmf_loss, sample


def _step_fn(loss_fn, tx):
    @jax.jit
    def step(params, opt_state, batch, key):
        (loss, _), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        upd, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state, loss

    return step


def _time(fn, repeats):
    fn()  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="pmf-tiny")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sample-batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()

    net = build(a.preset, image_size=a.image_size, channels=a.channels)
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    shape = (a.batch, a.image_size, a.image_size, a.channels)
    batch = {
        "image": rng.standard_normal(shape).astype(np.float32),
        "redshift": rng.uniform(0, 4, a.batch).astype(np.float32),
    }
    tx = optax.adam(1e-4)
    opt_state = tx.init(params)
    key = jax.random.key(1)
    objectives = {
        "flow matching": flow_matching_loss(net.apply),
        "pMF algorithm1": pmf_loss(net.apply, PMFConfig()),
        "pMF official": pmf_loss(net.apply, PMFConfig(variant="official")),
    }
    times = {}
    for name, loss_fn in objectives.items():
        step = _step_fn(loss_fn, tx)
        times[name] = _time(lambda s=step: s(params, opt_state, batch, key)[2], a.repeats)

    noise = jax.random.normal(jax.random.key(2), (a.sample_batch, *shape[1:]))
    red = jnp.linspace(0.0, 4.0, a.sample_batch)
    t_sample = _time(lambda: sample(net.apply, params, noise, red), a.repeats)

    print(
        f"backend={jax.default_backend()} preset={a.preset} params={param_count(params)} "
        f"image={a.image_size}x{a.image_size}x{a.channels} batch={a.batch}"
    )
    print("| objective | train step (s) | ÷ flow matching |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t:.4f} | {t / times['flow matching']:.2f} |")
    print(
        f"\none-step sampling: {a.sample_batch / t_sample:.1f} images/s "
        f"(batch {a.sample_batch}, {t_sample:.4f} s per batch, 1 NFE)"
    )


if __name__ == "__main__":
    main()

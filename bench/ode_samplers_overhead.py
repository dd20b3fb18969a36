"""Sampler overhead: wall(sample) / (NFE x wall(one model call)), model call >= 10 ms.

    JAX_PLATFORMS=cpu uv run python bench/ode_samplers_overhead.py

The model is an MLP eps-predictor on (B, D) float32 whose jitted call costs >= 10 ms on CPU;
`sample` is jitted whole (one program). Goal: overhead <= 1.05. Sampler runs alternate
with NFE separate model calls (same load for both); medians of 5 repeats.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
from ode_samplers import VPSchedule, sample
from ode_samplers import nfe as nfe_of

B, D, H = 256, 512, 4096


def median_time(fn, *args, repeats=5):
    jax.block_until_ready(fn(*args))  # compile + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w1 = jax.random.normal(k1, (D, H), jnp.float32) / np.sqrt(D)
    w2 = jax.random.normal(k2, (H, D), jnp.float32) / np.sqrt(H)

    def model_fn(x, t):
        h = jnp.tanh(x @ w1 + t[:, None])
        return 0.1 * jnp.tanh(h @ w2)

    noise = jax.random.normal(k3, (B, D), jnp.float32)
    t = jnp.full((B,), 0.5, jnp.float32)
    jit_model = jax.jit(model_fn)
    call = median_time(jit_model, noise, t, repeats=20)
    print(f"one model call: {call * 1e3:.1f} ms  (B={B}, D={D}, hidden={H})")
    sched = VPSchedule.linear()
    print("| method | num_steps | NFE | sample wall (s) | NFE x call (s) | overhead |")
    print("|---|---|---|---|---|---|")
    for method, steps in [("ddim", 60), ("dpmpp_2m", 30), ("deis", 30), ("dpmpp_2s", 15),
                          ("heun", 15), ("ddpm", 100)]:  # fmt: skip

        def run(z, key, method=method, steps=steps):
            return sample(model_fn, z, schedule=sched, method=method, num_steps=steps, key=key)

        nfe = nfe_of(method, steps)
        jit_run = jax.jit(run)
        jax.block_until_ready(jit_run(noise, k3))  # compile
        # The machine may be shared: alternate one sampler run with NFE separate model calls so
        # both see the same load; medians over the repeats.
        walls, calls = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(jit_run(noise, k3))
            walls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for _ in range(nfe):
                jax.block_until_ready(jit_model(noise, t))
            calls.append((time.perf_counter() - t0) / nfe)
        wall, call = float(np.median(walls)), float(np.median(calls))
        print(
            f"| {method} | {steps} | {nfe} | {wall:.3f} | {nfe * call:.3f} | {wall / (nfe * call):.3f} |"
        )


if __name__ == "__main__":
    main()

"""Sampler overhead: wall(sample) / (NFE x wall(one model call)), model call >= 10 ms.

    JAX_PLATFORMS=cpu uv run python bench/ode_samplers_overhead.py

The model is an MLP eps-predictor on (B, D) float32 whose jitted call costs >= 10 ms on CPU;
`sample` is jitted whole (one program). Goal: overhead <= 1.05. Medians of repeated runs.
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
    call = median_time(jax.jit(model_fn), noise, t, repeats=20)
    print(f"one model call: {call * 1e3:.1f} ms  (B={B}, D={D}, hidden={H})")
    sched = VPSchedule.linear()
    print("| method | num_steps | NFE | sample wall (s) | NFE x call (s) | overhead |")
    print("|---|---|---|---|---|---|")
    for method, steps in [("ddim", 60), ("dpmpp_2m", 30), ("deis", 30), ("dpmpp_2s", 15),
                          ("heun", 15), ("ddpm", 100)]:  # fmt: skip

        def run(z, key, method=method, steps=steps):
            return sample(model_fn, z, schedule=sched, method=method, num_steps=steps, key=key)

        nfe = nfe_of(method, steps)
        wall = median_time(jax.jit(run), noise, k3, repeats=3)
        print(
            f"| {method} | {steps} | {nfe} | {wall:.3f} | {nfe * call:.3f} | {wall / (nfe * call):.3f} |"
        )


if __name__ == "__main__":
    main()

"""Forward time per image and XLA GFLOPs for every gen_backbones preset.

    JAX_PLATFORMS=cpu .venv/bin/python bench/gen_backbones_forward.py [--batch 8] [--repeats 5]

Paper presets run at 64x64x5 (the study's configuration), tiny presets at 32x32x5. Also prints
the study's GFLOPs divided by ours per image (the batch the study's numbers would imply), and
forward+backward time of the tiny presets at batch 16 (the CPU training budget).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from gen_backbones import PRESETS, build, forward_flops, param_count

STUDY_GFLOPS = {"ddpm-paper": 7.02, "pmf-1m": 23.2, "pmf-25m": 154.0}


def _time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile + warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--presets", nargs="*", default=list(PRESETS))
    args = ap.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), batch {args.batch}")
    print("| preset | size | params | GFLOPs/image | study GFLOPs | study/ours | ms/image (fwd) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.presets:
        size = 32 if name.endswith("tiny") else 64
        net = build(name, image_size=size, channels=5)
        params = net.init(jax.random.key(0))
        gf = forward_flops(net, params) / 1e9
        b = args.batch
        x = jax.random.normal(jax.random.key(1), (b, size, size, 5))
        t = jnp.full((b,), 0.5)
        z = jnp.full((b,), 1.0)
        fwd = jax.jit(net.apply)
        sec = _time(lambda: fwd(params, x, t, t * 0.5, t + 1.0, z), args.repeats)  # noqa: B023
        study = STUDY_GFLOPS.get(name)
        ratio = f"{study / gf:.2f}" if study else "-"
        print(
            f"| {name} | {size}x{size}x5 | {param_count(params) / 1e6:.3f}M | {gf:.3f} | "
            f"{study or '-'} | {ratio} | {1e3 * sec / b:.2f} |",
            flush=True,
        )
    print("\nforward+backward, batch 16, 32x32x5 (training-step network cost):")
    for name in [n for n in args.presets if n.endswith("tiny")]:
        net = build(name, image_size=32, channels=5)
        params = net.init(jax.random.key(0))
        x = jax.random.normal(jax.random.key(1), (16, 32, 32, 5))
        t = jnp.full((16,), 0.5)
        loss = lambda p: jnp.mean(net.apply(p, x, t, r=t * 0.5, z=t) ** 2)  # noqa: E731,B023
        step = jax.jit(jax.value_and_grad(loss))
        sec = _time(lambda: step(params), args.repeats)  # noqa: B023
        print(f"  {name}: {1e3 * sec:.1f} ms")


if __name__ == "__main__":
    main()

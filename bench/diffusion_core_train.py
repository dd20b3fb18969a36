"""Training throughput (images/s) of diffusion-core's engine with the DDPM objective.

For each backbone preset: the engine (`diffusion_core.train`: jit step, EMA, prefetch, metrics
every `--log-every` steps) and, for reference, a bare jit loop doing the same gradient + AdamW
update on one device-resident batch (no data transfer, no EMA, no metrics). Timing excludes
compilation (the first interval is a warm-up).

    .venv/bin/python bench/diffusion_core_train.py --presets ddpm-tiny pmf-1m --size 32 --batch 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax
from diffusion_core import DDPMConfig, TrainConfig, ddpm_loss, ddpm_schedule, train
from gen_backbones import build, param_count


def bench(preset: str, size: int, channels: int, batch: int, steps: int) -> dict:
    net = build(preset, image_size=size, channels=channels)
    params = net.init(jax.random.key(0))
    loss_fn = ddpm_loss(net.apply, ddpm_schedule(), DDPMConfig())
    rng = np.random.default_rng(0)
    data = {
        "image": rng.normal(size=(batch, size, size, channels)).astype(np.float32),
        "redshift": rng.uniform(0, 4, batch).astype(np.float32),
    }

    def batches_fn(start):
        while True:
            yield {k: v.copy() for k, v in data.items()}

    cfg = TrainConfig(
        steps=3 * steps,
        batch_size=batch,
        lr=5e-5,
        log_every=steps,
        checkpoint_every=10**9,
        progress=False,
    )
    with tempfile.TemporaryDirectory() as d:
        train(loss_fn, params, batches_fn, cfg, d)
        recs = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    engine = float(np.mean([r["images_per_s"] for r in recs[1:]]))

    tx = optax.adamw(5e-5)

    @jax.jit
    def step(p, o, b, k):
        g = jax.grad(lambda q: loss_fn(q, b, k)[0])(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    p, o, b = params, tx.init(params), jax.device_put(data)
    key = jax.random.key(1)
    p, o = step(p, o, b, key)
    jax.block_until_ready(p)
    t0 = time.perf_counter()
    for i in range(steps):
        p, o = step(p, o, b, jax.random.fold_in(key, i))
    jax.block_until_ready(p)
    bare = steps * batch / (time.perf_counter() - t0)
    return {
        "preset": preset,
        "params": param_count(params),
        "image": f"{size}x{size}x{channels}",
        "batch": batch,
        "engine_img_s": round(engine, 1),
        "bare_jit_img_s": round(bare, 1),
        "device": f"{jax.default_backend()} x{jax.device_count()}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["ddpm-tiny", "pmf-1m"])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per interval")
    args = ap.parse_args()
    print("| backbone | params | image | batch | engine img/s | bare jit img/s | device |")
    print("|---|---|---|---|---|---|---|")
    for preset in args.presets:
        r = bench(preset, args.size, args.channels, args.batch, args.steps)
        print(
            f"| {r['preset']} | {r['params']:,} | {r['image']} | {r['batch']} | "
            f"{r['engine_img_s']} | {r['bare_jit_img_s']} | {r['device']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

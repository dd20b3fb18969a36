"""CPU training throughput side by side: our engine and bare jit loops (XLA default options vs the
engine's `step_compiler_options`) and, for the DDPM U-Nets, the PyTorch peer of the same network.

Issue 21. For each preset, in one process and one run (so the load is shared):

* ``bare/default``: a jit step (grad + AdamW) compiled with XLA's default options (what the engine
  compiled before), ``bare/tuned``: the same step with ``diffusion_core.step_compiler_options``;
  the two are interleaved step by step, medians of ``--repeats``;
* ``engine/before``, ``engine/after``: ``diffusion_core.train`` (EMA, NaN guard, prefetch, metrics)
  without and with the step compiler options; median images/s of the timed log intervals;
* ``torch``: ``bench/torch_ddpm_peer.py`` run with ``--torch-python`` (a venv with CPU torch;
  skipped when not given), same preset, size, batch; its parameter count must equal ours;
* for pMF presets: the pMF (JVP) step ÷ the flow-matching step, both tuned, interleaved.

    .venv/bin/python bench/cpu_train_vs_torch.py --torch-python /work/torchvenv/bin/python \\
        --cases ddpm-tiny:32 pmf-tiny:32 ddpm-paper:64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import diffusion_core
import flax
import jax
import numpy as np
import optax
from diffusion_core import (
    DDPMConfig,
    TrainConfig,
    ddpm_loss,
    ddpm_schedule,
    step_compiler_options,
    train,
)
from gen_backbones import build, param_count

HERE = Path(__file__).parent


def load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def objective(preset: str, net, kind: str | None = None):
    if preset.startswith("pmf") or kind in ("pmf", "fm"):
        from meanflow import PMFConfig, flow_matching_loss, pmf_loss

        return flow_matching_loss(net.apply) if kind == "fm" else pmf_loss(net.apply, PMFConfig())
    return ddpm_loss(net.apply, ddpm_schedule(), DDPMConfig())


def data(size: int, channels: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "image": rng.normal(size=(batch, size, size, channels)).astype(np.float32),
        "redshift": rng.uniform(0, 4, batch).astype(np.float32),
    }


def bare_steps(loss_fns: dict, params, batch: dict, repeats: int, options: dict) -> dict:
    """Median seconds per step of each ``(loss name, options name)`` jit step, interleaved."""
    tx = optax.adamw(5e-5, weight_decay=0.01)

    def make(loss_fn, opts):
        def step(p, o, b, k):
            g = jax.grad(lambda q: loss_fn(q, b, k)[0])(p)
            u, o = tx.update(g, o, p)
            return optax.apply_updates(p, u), o

        return jax.jit(step, compiler_options=opts)

    o = tx.init(params)
    b = jax.device_put(batch)
    key = jax.random.key(1)
    fns = {(ln, on): make(lf, ov) for ln, lf in loss_fns.items() for on, ov in options.items()}
    for f in fns.values():  # compile + warm up
        jax.block_until_ready(f(params, o, b, key))
    times: dict = {k: [] for k in fns}
    for i in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(params, o, b, jax.random.fold_in(key, i)))
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def engine_img_s(loss_fn, params, batch: dict, interval: int, intervals: int, tuned: bool) -> float:
    """Median images/s of the engine's log intervals after the first (compile) one."""
    saved = dict(diffusion_core._engine.CPU_STEP_COMPILER_OPTIONS)
    if not tuned:  # the engine as it was: XLA's default options
        diffusion_core._engine.CPU_STEP_COMPILER_OPTIONS.clear()
    try:
        cfg = TrainConfig(
            steps=interval * (intervals + 1),
            batch_size=len(batch["redshift"]),
            lr=5e-5,
            weight_decay=0.01,
            log_every=interval,
            checkpoint_every=10**9,
            progress=False,
        )

        def batches_fn(start):
            while True:
                yield {k: v.copy() for k, v in batch.items()}

        with tempfile.TemporaryDirectory() as d:
            train(loss_fn, jax.tree.map(np.array, params), batches_fn, cfg, d)  # host copy
            recs = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    finally:
        diffusion_core._engine.CPU_STEP_COMPILER_OPTIONS.update(saved)
    return float(np.median([r["images_per_s"] for r in recs[1:]]))


def torch_peer(python: str, preset: str, size: int, channels: int, batch: int, steps: int):
    cmd = [python, str(HERE / "torch_ddpm_peer.py"), "--preset", preset, "--size", str(size)]
    cmd += ["--channels", str(channels), "--batch", str(batch), "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["ddpm-tiny:32", "pmf-tiny:32"],
                    help="preset:image_size")  # fmt: skip
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=0, help="bare steps per variant (0: auto)")
    ap.add_argument("--torch-python", default=None, help="python of a venv with CPU torch")
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--cpu-devices", type=int, default=1,
                    help="JAX CPU devices the engine trains data-parallel over (galgen train's "
                    "--cpu-devices; the bare steps run on one)")  # fmt: skip
    a = ap.parse_args()
    jax.config.update("jax_num_cpu_devices", a.cpu_devices)  # before JAX's first computation
    tuned = step_compiler_options(jax.devices())
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; jax {jax.__version__}, flax {flax.__version__}, "
        f"optax {optax.__version__}, python {sys.version.split()[0]}; backend "
        f"{jax.default_backend()}; tuned options {tuned}; XLA_FLAGS={os.environ.get('XLA_FLAGS')!r}"
        f"; engine on {jax.device_count()} device(s)"
    )
    results = []
    for case in a.cases:
        preset, size = case.split(":")
        size = int(size)
        net = build(preset, image_size=size, channels=a.channels)
        params = net.init(jax.random.key(0))
        batch = data(size, a.channels, a.batch)
        big = size >= 64 and "paper" in preset
        repeats = a.repeats or (3 if big else 15)
        r: dict = {"preset": preset, "params": param_count(params), "image": f"{size}x{size}x"
                   f"{a.channels}", "batch": a.batch}  # fmt: skip
        r["load_start"] = load()
        opts = {"default": None, "tuned": tuned}
        losses = {"main": objective(preset, net)}
        if preset.startswith("pmf"):
            losses["fm"] = objective(preset, net, "fm")
        t = bare_steps(losses, params, batch, repeats, opts)
        r["bare_default_img_s"] = a.batch / t[("main", "default")]
        r["bare_tuned_img_s"] = a.batch / t[("main", "tuned")]
        if "fm" in losses:
            r["pmf_over_fm_default"] = t[("main", "default")] / t[("fm", "default")]
            r["pmf_over_fm_tuned"] = t[("main", "tuned")] / t[("fm", "tuned")]
        r["load_bare"] = load()
        if not a.skip_engine:
            interval, intervals = (2, 2) if big else (10, 3)
            loss_fn = losses["main"]
            r["engine_before_img_s"] = engine_img_s(
                loss_fn, params, batch, interval, intervals, False
            )
            r["engine_after_img_s"] = engine_img_s(
                loss_fn, params, batch, interval, intervals, True
            )
            r["load_engine"] = load()
        if a.torch_python and preset.startswith("ddpm"):
            tp = torch_peer(a.torch_python, preset, size, a.channels, a.batch, repeats)
            if tp["params"] != r["params"]:
                raise AssertionError(f"torch peer has {tp['params']} params, ours {r['params']}")
            r["torch_img_s"] = tp["img_s"]
            r["torch"] = tp["torch"]
            r["torch_threads"] = tp["threads"]
            r["load_torch"] = load()
        results.append(r)
        print(json.dumps(r), flush=True)
    print()
    print("| preset | params | image | batch | bare default | bare tuned | engine before | "
          "engine after | torch | after ÷ torch | pMF ÷ FM (before → after) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda v: "—" if v is None else f"{v:.2f}" if v < 10 else f"{v:.1f}"  # noqa: E731
    for r in results:
        ratio = (r.get("engine_after_img_s") or r["bare_tuned_img_s"]) / r["torch_img_s"] if (
            "torch_img_s" in r) else None  # fmt: skip
        pmf = (f"{r['pmf_over_fm_default']:.2f} → {r['pmf_over_fm_tuned']:.2f}"
               if "pmf_over_fm_tuned" in r else "—")  # fmt: skip
        print(
            f"| {r['preset']} | {r['params']:,} | {r['image']} | {r['batch']} | "
            f"{f(r['bare_default_img_s'])} | {f(r['bare_tuned_img_s'])} | "
            f"{f(r.get('engine_before_img_s'))} | {f(r.get('engine_after_img_s'))} | "
            f"{f(r.get('torch_img_s'))} | {f(ratio)} | {pmf} |"
        )
    print("(images/s, medians; loads per row in the JSON lines above)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Run every benchmark in sequence and write docs/results.md, each table under its command.

    uv run python bench/results.py                  # all sections (~20-30 min on 2 cores)
    uv run python bench/results.py --only samplers  # one section (others kept from the last page)

Each section's stdout is stored under bench/out/<name>.txt and spliced into the page, so a
section can be re-measured alone. The page is stamped with the machine, versions, commit and date.
Nothing here is a test: speed goals are reported (met or missed by how much), never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = sys.executable

#: (name, title, command). Commands run from the repo root with JAX on the CPU unless a GPU is set.
SECTIONS = [
    (
        "samplers",
        "Solver accuracy: error vs NFE on exact-score problems (ode-samplers)",
        f"{PY} bench/ode_samplers_convergence.py",
    ),
    (
        "overhead",
        "Sampler overhead: wall(sample) / (NFE × one model call), goal ≤ 1.05",
        f"{PY} bench/ode_samplers_overhead.py",
    ),
    (
        "backbones",
        "Backbones: parameters, GFLOPs and forward time per image (gen-backbones)",
        f"{PY} bench/gen_backbones_forward.py --batch 4 --repeats 3",
    ),
    (
        "training",
        "Training throughput of the engine (diffusion-core)",
        f"{PY} bench/diffusion_core_train.py --presets ddpm-tiny pmf-1m --size 32 --batch 32 --steps 10",
    ),
    (
        "pmf-cost",
        "pMF step ÷ flow-matching step (goal ≤ 3.0) and one-step sampling (meanflow)",
        f"{PY} bench/meanflow_step_cost.py --preset pmf-tiny --image-size 32 --batch 32 --repeats 5",
    ),
    (
        "data",
        "Synthesis rate and loader throughput (galaxiesml-data)",
        f"{PY} bench/galaxiesml_data_bench.py --n-synth 400 --n-loader 20000 --batches 150",
    ),
    (
        "morph-speed",
        "Morphology stamps/s per core, 1 → 2 processes (morph-metrics)",
        f"{PY} bench/morph_metrics_bench.py throughput",
    ),
]


def stamp() -> str:
    import importlib.metadata as md

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    vers = ", ".join(
        f"{d} {md.version(d)}" for d in ("jax", "flax", "optax", "statmorph", "photutils")
    )
    return (
        f"Machine: {cpu}, {os.cpu_count()} cores, no GPU unless a section says so; "
        f"Python {platform.python_version()}; {vers}; commit {commit}; "
        f"{time.strftime('%Y-%m-%d')}."
    )


def run(name: str, cmd: str) -> str:
    env = dict(
        os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"), PYTHONUNBUFFERED="1"
    )
    t0 = time.perf_counter()
    res = subprocess.run(shlex.split(cmd), cwd=ROOT, env=env, capture_output=True, text=True)
    text = res.stdout.strip()
    if res.returncode:
        text += f"\n\n(exit code {res.returncode})\n{res.stderr.strip()[-2000:]}"
    text += f"\n\n_{time.perf_counter() - t0:.0f} s wall._"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.txt").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="section names to (re)measure")
    ap.add_argument("--page", default=str(ROOT / "docs" / "results-bench.md"))
    args = ap.parse_args()
    parts = [f"# Benchmarks\n\n{stamp()}\n\nProduced by `python bench/results.py`.\n"]
    for name, title, cmd in SECTIONS:
        cached = OUT / f"{name}.txt"
        if args.only is None or name in args.only:
            print(f"[{name}] {cmd}", file=sys.stderr, flush=True)
            text = run(name, cmd)
        elif cached.exists():
            text = cached.read_text()
        else:
            continue
        rel = cmd.replace(PY, "python")
        parts.append(f"## {title}\n\n`{rel}`\n\n{text}\n")
    Path(args.page).write_text("\n".join(parts))
    print(f"wrote {args.page}", file=sys.stderr)


if __name__ == "__main__":
    main()

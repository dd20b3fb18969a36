"""Training throughput (images/s) of `galgen train` on 1 vs N processes (JAX distributed runtime).

Each configuration launches N real `galgen train` processes on this machine (localhost
coordinator, CPU collectives: gloo; one CPU device per process), on the same synthetic data,
global batch and seed, and reads the engine's images/s from the run's metrics.jsonl (mean over
the records after the first, which holds the compile). On one machine the N processes share its
cores, so this measures the overhead of the collectives, not a speed-up; on N hosts or GPUs each
process has its own.

    .venv/bin/python bench/train_processes.py --processes 1 2 --size 32 --batch 16 --steps 40
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(n: int, data: Path, out: Path, args: argparse.Namespace) -> dict:
    cli = str(Path(sys.executable).parent / "galgen")
    cmd = [cli, "train", "ddpm", "--preset", args.preset, "--data", str(data), "--out", str(out)]
    for s in (
        f"train.steps={args.steps}",
        f"train.batch_size={args.batch}",
        f"train.log_every={args.log_every}",
        f"train.checkpoint_every={args.steps}",
        "train.progress=false",
        *args.set,
    ):
        cmd += ["--set", s]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    port = _free_port()
    dist = lambda i: (  # noqa: E731
        ["--coordinator", f"localhost:{port}", "--num-processes", str(n), "--process-id", str(i)]
        if n > 1
        else []
    )
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen([*cmd, *dist(i)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"{n} processes: exit {p.returncode}\n{err[-3000:]}")
    wall = time.perf_counter() - t0
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ips = [r["images_per_s"] for r in recs[1:] if r["images_per_s"]]
    return {
        "processes": n,
        "images_per_s": sum(ips) / len(ips),
        "wall_s": wall,
        "final_loss": recs[-1]["loss"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--preset", default="ddpm-tiny")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--set", action="append", default=[], help="extra galgen --set overrides")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    import galgen

    rows = []
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        galgen.synth(data, n_train=256, n_val=0, n_test=0, size=args.size, seed=0, workers=1)
        for n in args.processes:
            rows.append(run(n, data, Path(d) / f"run-{n}", args))
            print(rows[-1], flush=True)
    env = galgen.environment()
    print(f"\n{args.preset}, {args.size}x{args.size}x5, global batch {args.batch}, "
          f"{args.steps} steps; {env['cpu']} ({env['cores']} cores)")  # fmt: skip
    print("| processes | devices | images/s | wall s (incl. start + compile) | final loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['processes']} | cpu x{r['processes']} | {r['images_per_s']:.1f} | "
            f"{r['wall_s']:.0f} | {r['final_loss']:.4f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

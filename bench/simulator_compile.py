"""galgen.Simulator: the first call of a shape compiles, later calls of that shape only run.

Builds a Simulator from a training preset with freshly initialised weights (speed does not depend
on training) and times three `sample` calls of N galaxies per method: the first (trace + compile
+ run), the second (run only) and a third with a different N but the same batch size (padded last
batch: run only). `traces` counts compilations.

    .venv/bin/python bench/simulator_compile.py --size 32 --n 64 --batch 32
"""

from __future__ import annotations

import argparse
import json
import time

import galgen
import jax
import numpy as np
from galaxiesml_data import ArcsinhStretch


def simulator(preset: str, size: int) -> galgen.Simulator:
    cfg = galgen.resolve(preset)
    cfg |= {"image_size": size, "channels": 5, "data_range": [-1.0, 4.0]}
    x = np.random.default_rng(0).normal(0, 0.05, (64, size, size, 5)).astype(np.float32)
    cfg["transform"] = ArcsinhStretch.fit(x).to_dict()
    net = galgen._simulator._build(cfg)
    return galgen.Simulator(cfg, net.init(jax.random.key(0)), source=preset)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    rows = []
    for preset, method, steps in (("pmf-tiny", "pmf", 1), ("ddpm-tiny", "dpmpp_2m", 30)):
        sim = simulator(preset, args.size)
        z = np.linspace(0.1, 3.0, args.n)
        times = []
        for zz in (z, z[::-1], z[: args.n - args.batch // 2]):
            t0 = time.perf_counter()
            sim.sample(zz, method=method, steps=steps, batch_size=args.batch, progress=False)
            times.append(time.perf_counter() - t0)
        rows.append(
            {"preset": preset, "method": method, "steps": steps, "n": args.n,
             "batch": args.batch, "first_s": times[0], "second_s": times[1],
             "shorter_padded_s": times[2], "traces": sim.traces}
        )  # fmt: skip
    print(
        "| preset | method | N | batch | 1st call (s) | 2nd call (s) | N−batch/2, padded (s) | compilations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['method']}-{r['steps']} | {r['n']} | {r['batch']} | "
            f"{r['first_s']:.2f} | {r['second_s']:.2f} | {r['shorter_padded_s']:.2f} | {r['traces']} |"
        )
    print(json.dumps({"rows": rows, "devices": str(jax.devices())}))


if __name__ == "__main__":
    main()

"""Benchmark galaxiesml-data: synthesis rate (galaxies/s) and loader throughput (images/s).

    .venv/bin/python bench/galaxiesml_data_bench.py --n-synth 400 --workers 2 --n-loader 20000

The loader file is written once with random pixels (64×64×5 float32, the published contiguous
layout, ~1.6 GB for 20,000 images) and read once to warm the page cache before timing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from itertools import islice
from pathlib import Path

import h5py
import numpy as np
from galaxiesml_data import ArcsinhStretch, batches, open_split, synthesize


def bench_synthesis(out: Path, n: int, size: int, workers: int) -> tuple[float, float]:
    """(wall-clock galaxies/s with ``workers`` processes incl. start-up, in-process CPU ms per galaxy)."""
    synthesize(
        out / "warm", 8, 0, 0, size=size, seed=1, workers=1, progress=False
    )  # imports, caches
    c0 = time.process_time()
    synthesize(out / "cpu", 100, 0, 0, size=size, seed=2, workers=1, progress=False)
    cpu_ms = (time.process_time() - c0) / 100 * 1e3
    t0 = time.perf_counter()
    synthesize(out / "synth", n, 0, 0, size=size, seed=0, workers=workers, progress=False)
    return n / (time.perf_counter() - t0), cpu_ms


def bench_loader(
    path: Path,
    n: int,
    batch: int,
    n_batches: int,
    prefetch: int,
    threads: int,
    transform: object | None,
) -> float:
    if not path.exists():
        rng = np.random.default_rng(0)
        with h5py.File(path, "w") as f:
            d = f.create_dataset("image", shape=(n, 5, 64, 64), dtype=np.float32)
            for s in range(0, n, 2000):
                d[s : s + 2000] = rng.standard_normal(
                    (min(2000, n - s), 5, 64, 64), dtype=np.float32
                )
            f["specz_redshift"] = rng.uniform(0.01, 4, n).astype(np.float32)
        with open(path, "rb") as fh:  # warm the page cache
            while fh.read(1 << 24):
                pass
    ds = open_split(path)
    it = batches(ds, batch, seed=0, prefetch=prefetch, threads=threads, transform=transform)
    next(it)
    t0 = time.perf_counter()
    for b in islice(it, n_batches):
        b["image"].sum(axis=0)  # touch the batch like a consumer would (cheap)
    return n_batches * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-synth", type=int, default=400)
    ap.add_argument("--skip-synth", action="store_true")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n-loader", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument(
        "--dir", type=Path, default=None, help="scratch directory (default: a temp dir)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        out = Path(tmp)
        if not args.skip_synth:
            rate, cpu_ms = bench_synthesis(out, args.n_synth, args.size, args.workers)
            print(
                f"synthesis {args.size}x{args.size}x5, {args.workers} workers: {rate:.0f} galaxies/s wall"
            )
            print(
                f"synthesis CPU time: {cpu_ms:.1f} ms/galaxy -> {1e3 / cpu_ms:.0f} galaxies/s per free core"
            )
        path = out / "loader.hdf5"
        for prefetch, threads in ((0, 1), (4, 1), (4, 2)):
            r = bench_loader(path, args.n_loader, args.batch, args.batches, prefetch, threads, None)
            print(
                f"loader batch {args.batch}, prefetch {prefetch}, threads {threads}: {r:.0f} images/s"
            )
        t = ArcsinhStretch([0.05, 0.07, 0.1, 0.19, 0.36], 7.0)
        r = bench_loader(path, args.n_loader, args.batch, args.batches // 2, 4, 2, t)
        print(
            f"loader batch {args.batch}, prefetch 4, threads 2, + ArcsinhStretch: {r:.0f} images/s"
        )


if __name__ == "__main__":
    main()

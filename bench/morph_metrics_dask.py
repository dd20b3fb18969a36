"""morph-metrics on Dask: stamps/s with 1 vs 2 worker processes, and the peak memory of measuring a
file 10x larger than the chunk (workers read their own chunks; nothing holds the whole file).

    uv run --package morph-metrics --group test python bench/morph_metrics_dask.py

The stamps (64x64 Sérsic galaxies, 5 bands, float32) are written once to a ``.npy`` file; the
reader memory-maps it in the worker for each chunk (a picklable top-level class holding the path,
as galgen's HDF5 reader does). Throughput: a ``LocalCluster`` of 1 and of 2 single-threaded worker
processes, warmed up first (imports and the cluster start are not timed), and the in-process
serial path for reference; "cores busy" = CPU seconds of the measuring processes / wall seconds
(2.0: two cores fully used; less: other jobs on the machine took the rest). Memory: each worker's
peak RSS (VmHWM, reset after the warm-up) above its RSS after the warm-up, and the same for this
process, against the file and chunk sizes. Nothing is asserted except that the Dask columns equal
the serial ones.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import galsim
import numpy as np
from morph_metrics import dask_client, measure_chunks

SCALE, FWHM, SIZE, BANDS = 0.168, 0.7, 64, 5
MB = 1 << 20


class NpyReader:
    """``reader(i, j)``: stamps ``i:j`` of a ``(N, H, W, C)`` ``.npy`` file, memory-mapped here."""

    def __init__(self, path: str | Path):
        self.path = str(path)

    def __call__(self, i: int, j: int) -> np.ndarray:
        return np.array(np.load(self.path, mmap_mode="r")[i:j])


def write_stamps(path: Path, n: int, seed: int = 0) -> None:
    """``n`` stamps ``(SIZE, SIZE, BANDS)``: 64 distinct rendered galaxies, repeated, with fresh
    noise per stamp (so no two rows are equal), written to ``path`` in blocks."""
    rng = np.random.default_rng(seed)
    base = []
    for _ in range(64):
        gal = galsim.Sersic(rng.uniform(0.5, 4.0), half_light_radius=rng.uniform(2, 5) * SCALE)
        gal = gal.shear(q=rng.uniform(0.4, 1.0), beta=rng.uniform(0, np.pi) * galsim.radians)
        im = galsim.Convolve(gal.withFlux(1000.0), galsim.Gaussian(fwhm=FWHM))
        base.append(im.drawImage(nx=SIZE, ny=SIZE, scale=SCALE).array)
    base = np.stack(base)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, SIZE, SIZE, BANDS))
    for s in range(0, n, 256):
        e = min(s + 256, n)
        clean = base[np.arange(s, e) % len(base)][..., None] * np.ones(BANDS)
        sigma = clean.max(axis=(1, 2, 3), keepdims=True) / rng.uniform(20, 60, (e - s, 1, 1, 1))
        out[s:e] = clean + rng.normal(size=clean.shape) * sigma
    out.flush()
    del out


def _rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def _reset_peak() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0). Needed because a
    spawned worker starts with its parent's peak, e.g. from writing the stamp file."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_mb() -> float:
    """Peak RSS (VmHWM) of this process since the last :func:`_reset_peak` (MB)."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmHWM")) / 1024


def throughput(path: Path, n: int, chunk: int, protocol: str) -> list[str]:
    kw = {"protocol": protocol, "pixel_scale": SCALE, "psf_fwhm": FWHM}
    reader = NpyReader(path)
    measure_chunks(reader, 2, chunk=1, n_workers=1, **kw)  # warm: imports
    t0, cpu0 = time.perf_counter(), time.process_time()
    ref = measure_chunks(reader, n, chunk=chunk, n_workers=1, **kw)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rows = [
        f"| {protocol} | serial (this process) | {n} | {chunk} | {dt:.1f} | {n / dt:.1f} "
        f"| {cpu:.1f} | {cpu / dt:.2f} |"
    ]
    for workers in (1, 2):
        with dask_client(f"local:{workers}", silence_logs=40) as client:
            measure_chunks(reader, 2 * workers, chunk=1, client=client, **kw)  # warm
            cpu0 = client.run(time.process_time)
            t0 = time.perf_counter()
            cols = measure_chunks(reader, n, chunk=chunk, client=client, **kw)
            dt = time.perf_counter() - t0
            cpu = [t - cpu0[w] for w, t in sorted(client.run(time.process_time).items())]
        for k in ref:  # identical to the serial columns (NaN == NaN)
            assert np.array_equal(ref[k], cols[k], equal_nan=ref[k].dtype.kind == "f"), k
        rows.append(
            f"| {protocol} | Dask, {workers} worker process{'es' if workers > 1 else ''} | {n} "
            f"| {chunk} | {dt:.1f} | {n / dt:.1f} | {' + '.join(f'{c:.1f}' for c in cpu)} "
            f"| {sum(cpu) / dt:.2f} |"
        )
    return rows


def memory(path: Path, n: int, chunk: int, protocol: str) -> list[str]:
    kw = {"protocol": protocol, "pixel_scale": SCALE, "psf_fwhm": FWHM}
    reader = NpyReader(path)
    stamp = SIZE * SIZE * BANDS * 4
    with dask_client("local:2", silence_logs=40) as client:
        measure_chunks(reader, 4, chunk=1, client=client, **kw)  # warm: imports, first task
        client.run(_reset_peak)
        _reset_peak()
        base, me0 = client.run(_rss_mb), _rss_mb()
        t0 = time.perf_counter()
        cols = measure_chunks(reader, n, chunk=chunk, client=client, **kw)
        dt = time.perf_counter() - t0
        peak, me_peak = client.run(_peak_mb), _peak_mb()
    assert cols["flag"].size == n
    over = [peak[w] - base[w] for w in sorted(base)]
    return [
        f"| file | {n} stamps of {SIZE}x{SIZE}x{BANDS} float32 = {n * stamp / MB:.0f} MB |",
        f"| chunk (one task) | {chunk} stamps = {chunk * stamp / MB:.1f} MB |",
        f"| measured in | {dt:.1f} s, 2 worker processes, protocol {protocol} |",
        f"| worker RSS after warm-up | {', '.join(f'{base[w]:.0f}' for w in sorted(base))} MB |",
        f"| worker peak RSS above that | {', '.join(f'{o:.0f}' for o in over)} MB |",
        f"| this process: peak RSS above its level before the run | "
        f"{me_peak - me0:.0f} MB (columns: {sum(v.nbytes for v in cols.values()) / MB:.1f} MB) |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stamps", type=int, default=400, help="throughput run (statmorph)")
    ap.add_argument("--chunk", type=int, default=25, help="stamps per task, throughput run")
    ap.add_argument("--mem-chunk", type=int, default=256, help="stamps per task, memory run")
    ap.add_argument("--mem-protocol", default="paper")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n_mem = 10 * args.mem_chunk
        path = Path(tmp) / "stamps.npy"
        write_stamps(path, max(n_mem, args.stamps))
        print(
            "| protocol | where | stamps | chunk | seconds | stamps/s | CPU s (per worker) | cores busy |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for row in throughput(path, args.stamps, args.chunk, "statmorph"):
            print(row, flush=True)
        print("\n| memory (file = 10 x chunk) | |\n|---|---|")
        for row in memory(path, n_mem, args.mem_chunk, args.mem_protocol):
            print(row, flush=True)


if __name__ == "__main__":
    main()

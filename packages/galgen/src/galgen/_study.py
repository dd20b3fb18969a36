"""The run lifecycle: data, training, sampling to files, evaluation, bench, the reproduction.

They compose the six libraries and own no science; the CLI calls them one to one. Every stage
reads and writes only the paths it is given. Run directories are self-describing: ``config.json``
holds the resolved training preset, the data transform, the seed, versions and device.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from galgen._errors import GalgenError
from galgen._io import read_cache, write_cache, write_text
from galgen._presets import REPRODUCE_PRESETS, apply_overrides, resolve, study_runs
from galgen._simulator import Simulator, _build, data_stats

#: The rows of the study's tables: (label, method, steps). DDPM rows need a DDPM run, pMF rows a pMF run.
DDPM_ROWS = (
    ("DDPM", "ddpm", None),
    ("DDIM (η=0)", "ddim", 60),
    ("DEIS-AB2", "deis", 30),
    ("DPM++2M", "dpmpp_2m", 30),
    ("DPM++2S", "dpmpp_2s", 15),
)
PMF_ROWS = (("p-MF 1-step", "pmf", 1), ("p-MF 2-step", "pmf", 2))
STATS = ("semi_major_axis", "sersic_index", "isophotal_area", "ellipticity")
STAT_LABELS = {
    "semi_major_axis": "SMA",
    "sersic_index": "SI",
    "isophotal_area": "IA",
    "ellipticity": "Ell.",
}


# ----------------------------------------------------------------------------- helpers


def environment() -> dict[str, Any]:
    """Versions, device and host: stamped into every run directory and report."""
    import importlib.metadata as md

    import jax

    dists = (
        "galgen",
        "galaxiesml-data",
        "gen-backbones",
        "ode-samplers",
        "diffusion-core",
        "meanflow",
        "morph-metrics",
        "jax",
        "flax",
        "optax",
        "statmorph",
        "photutils",
    )
    versions = {}
    for d in dists:
        try:
            versions[d] = md.version(d)
        except md.PackageNotFoundError:
            versions[d] = None
    dev = jax.devices()[0]
    return {
        "versions": versions,
        "device": f"{dev.platform}:{dev.device_kind}",
        "n_devices": jax.device_count(),
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_jsonable))


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def _transform(kind: str):
    import galaxiesml_data as gd

    kinds = {"arcsinh": gd.ArcsinhStretch, "minmax": gd.MinMaxScale}
    if kind not in kinds:
        raise GalgenError(f"data.transform {kind!r} unknown; choose arcsinh or minmax")
    return kinds[kind]


# ----------------------------------------------------------------------------- data


def synth(
    out: Path,
    *,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int,
    seed: int,
    workers: int | None = None,
) -> list[Path]:
    """Synthesize the three GalaxiesML-schema splits into ``out``."""
    from galaxiesml_data import synthesize

    Path(out).mkdir(parents=True, exist_ok=True)
    paths = synthesize(
        out, n_train, n_val, n_test, size=size, seed=seed, workers=workers, progress=True
    )
    return [Path(p) for p in (paths.values() if isinstance(paths, dict) else paths)]


def info(file: Path) -> str:
    """A short human-readable summary of one GalaxiesML-schema file."""
    from galaxiesml_data import open_split

    ds = open_split(file)
    z = np.asarray(ds.redshift[:])
    shape = ds.images.shape
    lines = [
        f"file       {file}",
        f"galaxies   {len(ds)}",
        f"images     {shape} (channels-last view; float32)",
        f"redshift   min {z.min():.3f}  median {np.median(z):.3f}  max {z.max():.3f}"
        if z.size
        else "redshift   none (empty split)",
        f"columns    {len(ds.columns)}: {', '.join(sorted(ds.columns)[:12])}"
        + (" ..." if len(ds.columns) > 12 else ""),
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- models


def check_config(cfg: dict[str, Any]) -> None:
    """Build every typed section of a resolved run config (objective, train, backbone); the
    first unknown key, wrongly typed value or invalid setting raises ``GalgenError`` naming it."""
    import dataclasses
    import typing

    import diffusion_core as dc
    import meanflow as mf
    from galaxiesml_data import check_balance_power

    obj = dc.DDPMConfig if cfg["model"] == "ddpm" else mf.PMFConfig
    sections = (("objective", obj, cfg["objective"]), ("train", dc.TrainConfig, cfg["train"]))
    for name, cls, values in sections:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            want = hints.get(f.name)
            if (
                f.name not in values
                or values[f.name] is None
                or want not in (int, float, str, bool)
            ):
                continue  # None, unions and containers: the dataclass itself decides
            v = values[f.name]
            numeric = want is float and isinstance(v, int) and not isinstance(v, bool)
            if not (isinstance(v, want) or numeric) or (want is int and isinstance(v, bool)):
                raise GalgenError(f"{name}.{f.name}={v!r}: expected {want.__name__}")
    checks = (
        ("objective", lambda: obj.from_dict(dict(cfg["objective"]))),
        ("train", lambda: dc.TrainConfig.from_dict({**cfg["train"], "seed": cfg.get("seed", 0)})),
        ("backbone", lambda: _build(cfg)),
        ("data.z_balance", lambda: check_balance_power(cfg["data"].get("z_balance", 0.0))),
        # a run's fitted stats and stretch suit its baseline (a bare preset has none yet)
        ("objective", lambda: "data_stats" in cfg and data_stats(cfg)),
    )
    for section, build in checks:
        try:
            build()
        except (TypeError, ValueError, KeyError) as exc:
            raise GalgenError(f"{section}: {str(exc).strip().splitlines()[0]}") from None


def transform_options(data: dict[str, Any]) -> dict[str, Any]:
    """The fit options of a run config's ``data`` section: every key but ``transform`` (its kind)
    and ``z_balance`` (the loader's: the training batches' redshift weights)."""
    return {k: v for k, v in data.items() if k not in ("transform", "z_balance")}


def sky_stats(y: np.ndarray) -> dict[str, list[float]]:
    """Per-band sky level and noise of stretched stamps ``y`` (N, H, W, C), as ``train`` stores
    them in ``config.json["data_stats"]``: the medians over stamps of the border level and of its
    robust σ, from the evaluation's 4-px border (fewer px on stamps under 16 px). They are the
    Gaussian of ``objective.baseline="gaussian"`` / ``"gaussian_asinh"``; fitted over all pixels
    instead, the galaxies raise both and a zero network drew 1.3-1.7x the real sky noise."""
    from morph_metrics import border_pixels, sky_noise

    width = max(1, min(4, int(y.shape[1]) // 4))
    return {
        "mean": np.median(border_pixels(y, width), axis=(0, 1)).tolist(),
        "std": np.median(sky_noise(y, width), axis=0).tolist(),
    }


def _objective(cfg: dict[str, Any], net):
    if cfg["model"] == "ddpm":
        import diffusion_core as dc

        dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
        return dc.ddpm_loss(net.apply, dc.ddpm_schedule(), dcfg, stats=data_stats(cfg))
    import meanflow as mf

    return mf.pmf_loss(net.apply, mf.PMFConfig.from_dict(cfg["objective"]), stats=data_stats(cfg))


def train(
    model: str,
    data: Path,
    out: Path,
    *,
    preset: str | None,
    overrides: Sequence[str],
    resume: bool,
    seed: int,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    heartbeat_timeout: int = 100,
    cpu_devices: int | None = None,
) -> dict[str, Any]:
    """Train ``model`` ('ddpm' or 'pmf') on the training split in ``data``; return a summary.

    ``cpu_devices``: when alone on a CPU, split it into this many JAX devices first
    (`galgen._distributed.split_cpu`; only before JAX's first computation in the process). On
    CPU devices the step runs data-parallel over the largest number of them that divides
    ``train.batch_size``.

    Several processes (hosts, GPUs): launch this in each with the same arguments and
    ``coordinator``/``num_processes``/``process_id`` (or their environment variables, or under
    SLURM/Open MPI nothing: see `galgen._distributed.init_distributed`). Each process reads only
    its block of every global batch (``train.batch_size`` is global and must be divisible by the
    device count), the step runs data-parallel over all devices, process 0 alone writes
    ``config.json`` and the metrics, checkpoints are written collectively to ``out`` (a shared
    filesystem), and ``resume`` works with any process count. The result does not depend on the
    process count (up to float summation order).
    """
    from galgen._distributed import assert_same, barrier, init_distributed, split_cpu

    # before any JAX computation in this process
    rank, nproc = init_distributed(
        coordinator, num_processes, process_id, heartbeat_timeout=heartbeat_timeout
    )
    if cpu_devices is not None and nproc == 1:
        split_cpu(cpu_devices)
    import diffusion_core as dc
    import jax
    from galaxiesml_data import batches, open_split, redshift_weights, sample_images
    from jax.sharding import Mesh

    out = Path(out)
    cfg_path = out / "config.json"
    if resume:
        if not cfg_path.exists():
            raise GalgenError(f"--resume: {out} has no config.json (not a galgen run directory)")
        cfg = json.loads(cfg_path.read_text())
        if cfg["model"] != model:
            raise GalgenError(f"--resume: {out} holds a {cfg['model']} run, not {model}")
        seed = cfg["seed"]
        if any(not o.startswith("train.") for o in overrides):
            raise GalgenError("--resume accepts only train.* overrides (e.g. train.steps=...)")
        apply_overrides(cfg, list(overrides))
        if data is not None:  # the data may have moved since the run started
            cfg["data_dir"] = str(Path(data).resolve())
        check_config(cfg)  # config.json is rewritten only once the data passed too (below)
    else:
        if cfg_path.exists():
            raise GalgenError(f"{out} already holds a run; pass --resume or choose another --out")
        if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
            # the engine would silently resume from them under a new config (seen when a killed
            # run wrote its last checkpoint after its directory had been deleted)
            raise GalgenError(
                f"{out}/checkpoints holds checkpoints but {out} has no config.json; "
                "remove them or choose another --out"
            )
        try:
            cfg = resolve(preset or f"{model}-cpu", list(overrides))
        except ValueError as exc:
            raise GalgenError(str(exc)) from None
        if cfg["model"] != model:
            raise GalgenError(f"preset {cfg['preset']!r} trains {cfg['model']}, not {model}")
        cfg["seed"] = seed
        cfg["data_dir"] = str(Path(data).resolve())

    from galaxiesml_data import check_values, find_split

    ds = open_split(find_split(Path(cfg["data_dir"]), "training", size=cfg.get("image_size")))
    # NaN/inf pixels or a -99 redshift would poison the fitted transform or the loss: refuse the
    # file, naming its first bad rows, before the run directory is touched
    check_values(ds)
    n, size, _, channels = ds.images.shape
    bs, devices = int(cfg["train"]["batch_size"]), jax.devices()
    n_dev = len(devices)
    if nproc == 1 and all(d.platform == "cpu" for d in devices):
        # devices split from one CPU: use as many as divide the batch (1 always does)
        n_dev = max(k for k in range(1, n_dev + 1) if bs % k == 0)
        devices = devices[:n_dev]
    if bs % n_dev:
        raise GalgenError(
            f"train.batch_size={bs} is not divisible by the {n_dev} devices of the "
            f"{nproc} process{'es' if nproc > 1 else ''} (it is the global batch)"
        )

    def agree_then_write() -> None:  # every process has passed its checks; process 0 writes
        assert_same("training config", json.dumps({**cfg, "environment": None}, default=str))
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            _write_json(cfg_path, cfg)
        barrier("galgen.train.config_written")

    if resume:
        agree_then_write()
    else:
        x = sample_images(ds, 2048, seed)  # one read serves the fit and the range
        import inspect

        kind = _transform(cfg["data"]["transform"])
        opts = transform_options(cfg["data"])
        known = set(inspect.signature(kind.fit).parameters) - {"data", "max_images", "seed"}
        bad = sorted(set(opts) - known)
        if bad:
            raise GalgenError(
                f"data.{bad[0]}: not an option of the {cfg['data']['transform']!r} transform "
                f"(options: {', '.join(sorted(known)) or 'none'})"
            )
        tf = kind.fit(x, **opts)
        cfg["transform"] = tf.to_dict()
        # the stretched training range: samplers clip their denoised estimates to it
        y = tf.forward(x)
        cfg["data_range"] = [float(y.min()), float(y.max())]
        cfg["data_stats"] = sky_stats(y)
        # the DDPM's alone (PMFConfig refuses the value below, with no fit spent on it first)
        if cfg["model"] == "ddpm" and cfg["objective"].get("baseline") == "gaussian_mixture":
            sky = cfg["data_stats"]
            sky["mixture"] = dc.fit_pixel_mixture(y, sky["mean"], sky["std"])
        cfg["image_size"], cfg["channels"] = int(size), int(channels)
        cfg["environment"] = {**environment(), "n_processes": nproc, "n_devices": n_dev}
        check_config(cfg)  # every section, before anything is written
        agree_then_write()
    tf = load_transform(cfg)  # the stored transform, so a resumed run stretches identically
    net = _build(cfg)
    params = net.init(jax.random.key(seed))
    loss_fn = _objective(cfg, net)
    tcfg = dc.TrainConfig.from_dict({**cfg["train"], "seed": seed})

    power = float(cfg["data"].get("z_balance", 0.0))
    weights = redshift_weights(np.asarray(ds.redshift[:]), power) if power > 0 else None

    def batches_fn(start: int):  # this process's block of every global batch
        return batches(
            ds, tcfg.batch_size, seed=seed, start=start, transform=tf.forward,
            shard=(rank, nproc), weights=weights,
        )  # fmt: skip

    try:
        mesh = Mesh(np.asarray(devices), ("data",))  # all devices of all processes, or the split
        state = dc.train(loss_fn, params, batches_fn, tcfg, out, mesh=mesh)
    except RuntimeError as exc:
        if nproc == 1:
            raise
        # the engine's one sentence (e.g. another process died), naming the last checkpoint
        msg = str(exc).replace(
            "relaunch every process to resume", "relaunch every process with --resume"
        )
        raise GalgenError(msg) from exc
    return {
        "step": int(state.step),
        "run": str(out),
        "process": rank,
        "processes": nproc,
        "devices": n_dev,
    }


def load_transform(cfg: dict[str, Any]):
    """The fitted image transform stored in a run's config."""
    from galaxiesml_data import transform_from_dict

    return transform_from_dict(cfg["transform"])


# ----------------------------------------------------------------------------- sampling


def redshifts_from(
    spec: str, sim: Simulator, n: int | None = None, data: Path | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(redshift (N,), object_id (N,) or None) from 'test' (the test split of ``data``, else of
    the run's training-data directory), a text file of redshifts, or 'z1,z2,...'; at most ``n``."""
    from galaxiesml_data import find_split, open_split

    if n is not None and n < 1:
        raise GalgenError(f"--n {n}: need at least one galaxy")
    if spec == "test":
        where = data if data is not None else sim.config.get("data_dir")
        if where is None:
            raise GalgenError(
                "--redshifts test: this model records no data directory (a model file never "
                "does); pass --data DIR holding the test split, or give redshifts"
            )
        test = find_split(Path(where), "testing", size=sim.image_shape[0])
        ds = open_split(test, min_galaxies=1)
        m = len(ds) if n is None else min(n, len(ds))
        return np.asarray(ds.redshift[:m], np.float32), np.asarray(ds.object_id[:m])
    path = Path(spec)
    if path.is_file():
        try:
            z = np.loadtxt(path, dtype=np.float32, ndmin=1)
        except ValueError as exc:
            raise GalgenError(f"--redshifts {path}: not a column of numbers ({exc})") from None
    else:
        try:
            z = np.array([float(v) for v in spec.split(",") if v.strip()], np.float32)
        except ValueError:
            raise GalgenError(
                f"--redshifts {spec!r}: not 'test', an existing file, or z1,z2,..."
            ) from None
    if z.size == 0:
        raise GalgenError(f"--redshifts {spec!r}: no redshifts in it")
    return (z if n is None else z[:n]), None


def sample(
    run: Path,
    out: Path,
    *,
    method: str | None,
    steps: int | None,
    guidance: float | None,
    redshifts: str,
    n: int | None,
    seed: int,
    fits: bool = False,
    data: Path | None = None,
) -> dict[str, Any]:
    """Sample a run directory or model file into a GalaxiesML-schema file (+ FITS if asked)."""
    sim = Simulator.load(run)
    z, object_id = redshifts_from(redshifts, sim, n, data)
    gals = sim.sample(
        z, method=method, steps=steps, guidance=guidance, seed=seed, object_id=object_id
    )
    gals.to_hdf5(out)
    if fits:
        gals.to_fits(Path(out).with_suffix(".fits"))
    return {"n": len(gals), "nfe": gals.nfe, "seconds": gals.seconds, "path": str(out)}


def export(run: Path, file: Path) -> Path:
    """Write run ``run``'s EMA weights and config as one portable model file."""
    return Simulator.load(run).export(file)


# ----------------------------------------------------------------------------- evaluation


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes (the morphology cache key)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class StampReader:
    """Picklable ``reader(i, j)`` for :func:`morph_metrics.measure_chunks`: stamps ``i:j`` of a
    GalaxiesML file, or its rows ``idx[i:j]`` when ``idx`` is given, as ``(j - i, H, W, 5)``
    float32 linear flux. It holds only the absolute path and the index list and opens the file
    (``galaxiesml_data.open_split``) in whichever process calls it, so Dask workers read their
    own chunks (on a remote cluster the path must be valid on the workers)."""

    def __init__(self, path: str | Path, idx: np.ndarray | None = None):
        self.path = str(Path(path).resolve())
        self.idx = None if idx is None else np.asarray(idx, np.int64)

    def __call__(self, i: int, j: int) -> np.ndarray:
        from galaxiesml_data import open_split

        with open_split(self.path) as ds:
            if self.idx is None:
                return np.asarray(ds.images[i:j])
            sel = self.idx[i:j]
            order = np.argsort(sel)
            x = np.empty((sel.size, *ds.images.shape[1:]), np.float32)
            x[order] = ds.images[sel[order]]
            return x


#: stamps per Dask task of ``measure_file`` (several tasks per worker even for 1,024 galaxies;
#: worker memory is about one task's stamps)
DASK_CHUNK = 256


class _LazyClient:
    """A Dask client for ``scheduler`` started on first use (a fully cached ``evaluate`` never
    starts a cluster); ``close`` stops it."""

    def __init__(self, scheduler: str):
        self.scheduler, self.client = scheduler, None

    def get_executor(self, **kwargs: Any) -> Any:
        if self.client is None:
            import morph_metrics as mm

            self.client = mm.dask_client(self.scheduler)
        return self.client.get_executor(**kwargs)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def measure_file(
    path: Path,
    cache: Path,
    protocol: str,
    n: int | None = None,
    chunk: int = 2048,
    idx: np.ndarray | None = None,
    scheduler: Any = None,
) -> dict[str, np.ndarray]:
    """Morphology columns of the first ``n`` galaxies in ``path``, or of the galaxies ``idx`` (in
    that order) when given (cached by file hash).

    ``scheduler``: None = this machine (chunks of ``chunk`` stamps read here, a process pool of
    all cores measures them); ``"local"`` / ``"local:N"`` = a Dask ``LocalCluster`` of one / N
    worker processes per core; any other string = a Dask scheduler address; or an open Dask
    client. On Dask each worker reads its own chunks of ``min(chunk, DASK_CHUNK)`` stamps from
    ``path`` (:class:`StampReader`). The columns, and so the cache key, do not depend on it.
    """
    import morph_metrics as mm
    from galaxiesml_data import BANDS, PIXEL_SCALE, PSF_FWHM, open_split

    ds = open_split(path)
    m = len(ds) if n is None else min(n, len(ds))
    cache.mkdir(parents=True, exist_ok=True)
    # "seg2": morph-metrics' structured-galaxy segmentation (#16); older caches are not reused
    key = f"{file_digest(path)[:16]}-{protocol}-seg2-{m}.npz"
    if idx is not None:
        idx = np.asarray(idx, np.int64)
        m = idx.size
        key = f"{file_digest(path)[:16]}-{protocol}-seg2-idx{hashlib.sha256(idx.tobytes()).hexdigest()[:16]}.npz"
    hit = cache / key
    if (cols := read_cache(hit)) is not None:
        return cols

    reader = StampReader(path, idx)
    kw: dict[str, Any] = {
        "band": 0,  # g, as in the study
        "protocol": protocol,
        "pixel_scale": PIXEL_SCALE,
        "psf_fwhm": PSF_FWHM[BANDS[0]],
        "progress": True,
    }
    if scheduler is None:
        cols = mm.measure_chunks(reader, m, chunk=chunk, **kw)
    elif isinstance(scheduler, str):
        with mm.dask_client(scheduler) as client:
            cols = mm.measure_chunks(reader, m, chunk=min(chunk, DASK_CHUNK), client=client, **kw)
    else:
        cols = mm.measure_chunks(reader, m, chunk=min(chunk, DASK_CHUNK), client=scheduler, **kw)
    z = np.asarray(ds.redshift[:], np.float64)
    cols["redshift"] = z[:m] if idx is None else z[idx]
    write_cache(hit, cols)
    return cols


def compare(
    ref: dict[str, np.ndarray], gen: dict[str, np.ndarray], name: str, n_boot: int, seed: int
) -> dict[str, Any]:
    """BCD and JSD (each: observed, bootstrap mean, std) per statistic for one matched set.

    Generated galaxy i must be conditioned on real galaxy i's redshift (``--redshifts test``).
    """
    import morph_metrics as mm

    n = len(gen["redshift"])
    if n > len(ref["redshift"]) or not np.allclose(ref["redshift"][:n], gen["redshift"], atol=1e-5):
        raise GalgenError(
            f"{name}: galaxies are not matched to the real file's redshifts; "
            "generate them with --redshifts test"
        )
    ref_n = {k: v[:n] for k, v in ref.items()}
    res = mm.compare(ref_n, gen, gen["redshift"], statistics=STATS, n_boot=n_boot, seed=seed)
    res["n"] = n
    res["n_good"] = int(np.sum((gen["flag"] == 0) & (ref_n["flag"] == 0)))
    return res


def table1(rows: dict[str, dict[str, Any]], nfe: dict[str, int]) -> str:
    """Markdown table in the study's Table 1 layout: BCD(boot std) then JSD(boot std) in bits."""
    import morph_metrics as mm

    head = (
        "| Method | NFE | "
        + " | ".join(f"BCD {STAT_LABELS[s]}" for s in STATS)
        + " | "
        + " | ".join(f"JSD {STAT_LABELS[s]}" for s in STATS)
        + " |"
    )
    lines = [head, "|" + "---|" * (2 + 2 * len(STATS))]
    for name, row in rows.items():
        bcd = [mm.format_value(row["bcd"][s][0], row["bcd"][s][2]) for s in STATS]
        jsd = [mm.format_value(row["jsd"][s][0], row["jsd"][s][2], decimals=4) for s in STATS]
        lines.append(f"| {name} | {nfe.get(name, '')} | " + " | ".join(bcd + jsd) + " |")
    return "\n".join(lines)


def _file_tag(path: str | Path, paths: Sequence[str | Path]) -> str:
    """``path``'s stem, or ``parent/stem`` where another of ``paths`` has the same stem (the
    same sampler's file name in two run folders), for telling table rows apart."""
    p = Path(path)
    if sum(Path(q).stem == p.stem for q in paths) > 1:
        return f"{p.parent.name}/{p.stem}"
    return p.stem


def evaluate(
    real: Path,
    generated: Sequence[Path],
    out: Path,
    *,
    protocol: str,
    n_boot: int,
    seed: int,
    names: Sequence[str] | None = None,
    cache: Path | None = None,
    scheduler: str | None = None,
) -> str:
    """``galgen evaluate``: morphology (Table 1), photometry, image statistics and photo-z tables
    (markdown + JSON) and figures under ``out``.

    ``scheduler`` runs the morphology on Dask (:func:`measure_file`: ``"local"``, ``"local:N"``
    or a scheduler address; one client for the whole call, started only if something is not
    cached); None measures on this machine. The tables are the same either way.

    Every table has a "real vs real" row: the first n real galaxies against a redshift-matched
    draw from the validation split next to ``real`` (the training split if validation is too
    small). The photo-z is trained on that directory's training split. Morphology and photometry
    are cached by file hash in ``cache`` (default ``out/cache``).
    """
    import h5py
    import morph_metrics as mm
    from galaxiesml_data import open_split

    from galgen import _figures
    from galgen import _photeval as pe

    for p in [real, *generated]:
        open_split(p, min_galaxies=1)  # missing, empty, corrupt or wrong-schema: named here
    if scheduler is not None:
        try:
            mm.check_scheduler(scheduler)
        except ImportError as exc:
            raise GalgenError(f"--scheduler {scheduler}: {exc}") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache" if cache is None else Path(cache)
    gen_cols, nfe, labels = {}, {}, []
    n_max = 0
    for i, g in enumerate(generated):
        with h5py.File(g, "r") as f:
            label = str(names[i] if names else f.attrs.get("method", Path(g).stem))
            n_fe = int(f.attrs.get("nfe", 0))
            if label in labels:  # e.g. pMF one- and two-step are both "pmf": keep both rows,
                # told apart by NFE where it differs, else by the file's stem (two runs' files)
                by_nfe = f"{label} (NFE {n_fe})"
                same = n_fe == nfe[label] or by_nfe in labels
                label = f"{label} [{_file_tag(g, generated)}]" if same else by_nfe
            if label in labels:
                label = f"{label} [{Path(g).name} #{i}]"
            nfe[label] = n_fe
            n_max = max(n_max, f["specz_redshift"].shape[0])
        labels.append(label)
    dask = None if scheduler is None else _LazyClient(scheduler)
    try:
        for label, g in zip(labels, generated):
            gen_cols[label] = measure_file(Path(g), cache, protocol, scheduler=dask)
        ref = measure_file(Path(real), cache, protocol, n=n_max or None, scheduler=dask)
        rows = {lab: compare(ref, gen_cols[lab], lab, n_boot, seed) for lab in labels}
        n_ref = len(ref["redshift"])
        floor_path, floor_idx = pe.floor_indices(Path(real), n_ref)
        ref2 = measure_file(floor_path, cache, protocol, idx=floor_idx, scheduler=dask)
    finally:
        if dask is not None:
            dask.close()
    floor = mm.real_floor(ref, ref2, ref["redshift"], STATS, n_boot=n_boot, seed=seed)
    floor |= {"n": n_ref, "n_good": int(np.sum((ref["flag"] == 0) & (ref2["flag"] == 0)))}
    rows = {pe.FLOOR: floor, **rows}
    ratios = {lab: mm.floor_ratio(r, floor) for lab, r in rows.items() if lab != pe.FLOOR}
    md = table1(rows, nfe)
    ratio_lines = [
        "| Method | "
        + " | ".join(f"{m.upper()} {STAT_LABELS[s]}" for m in ("bcd", "jsd") for s in STATS)
        + " |",
        "|" + "---|" * (1 + 2 * len(STATS)),
    ] + [
        f"| {lab} | " + " | ".join(f"{r[m][s]:.2f}" for m in ("bcd", "jsd") for s in STATS) + " |"
        for lab, r in ratios.items()
    ]
    write_text(
        out / "table1.md",
        md + "\n\n**Ratio to the real-vs-real floor**\n\n" + "\n".join(ratio_lines) + "\n",
    )
    _write_json(
        out / "table1.json",
        {
            "protocol": protocol,
            "n_boot": n_boot,
            "seed": seed,
            "n_real": len(ref["redshift"]),
            "rows": rows,
            "ratio_to_floor": ratios,
            "floor_sample": {"path": str(floor_path), "n": int(floor_idx.size)},
            "nfe": nfe,
        },
    )
    _photometry_tables(Path(real), dict(zip(labels, generated)), out, cache, n_ref, n_boot, seed)
    _figures.histograms(ref, gen_cols, STATS, out / "figures" / "histograms.png")
    _figures.binned_means(ref, gen_cols, STATS, out / "figures" / "binned_means.png")
    _figures.sample_grid(
        Path(real),
        {lab: Path(g) for lab, g in zip(labels, generated)},
        out / "figures" / "samples.png",
    )
    return md


def _photometry_tables(
    real: Path, generated: dict[str, Path], out: Path, cache: Path, n: int, n_boot: int, seed: int
) -> None:
    """photometry.{md,json}, imagestats.{md,json}, photoz.{md,json} and their figures."""
    from galgen import _figures
    from galgen import _photeval as pe

    st = pe.settings(real, n)
    ref = pe.summarize(real, st, cache, idx=np.arange(n))
    floor_path, floor_idx = pe.floor_indices(real, n)
    floor = pe.summarize(floor_path, st, cache, idx=floor_idx)
    gens = {lab: pe.summarize(Path(g), st, cache) for lab, g in generated.items()}
    meta = {"settings": st, "floor_sample": {"path": str(floor_path), "n": int(floor_idx.size)}}
    phot = pe.photometry_table(ref, gens, floor, n_boot, seed, st["bands"])
    write_text(out / "photometry.md", pe.photometry_markdown(phot))
    _write_json(out / "photometry.json", {**meta, "n_boot": n_boot, "seed": seed, **phot})
    ims = pe.imagestats_table(ref, gens, floor, st)
    write_text(out / "imagestats.md", pe.imagestats_markdown(ims))
    _write_json(out / "imagestats.json", {**meta, **ims})
    from galaxiesml_data import find_split

    train = find_split(real.parent, "training", size=st["size"])
    pz = pe.photoz_estimator(train, st, cache, seed)
    pzt = pe.photoz_table(pz, ref, gens, st["bands"])
    write_text(out / "photoz.md", pe.photoz_markdown(pzt))
    _write_json(out / "photoz.json", {**meta, "training_file": str(train), **pzt})
    import morph_metrics as mm

    figs = out / "figures"
    _figures.colour_redshift(ref, gens, mm.colour_names(st["bands"]), figs / "colour_redshift.png")
    _figures.radial_profiles(
        ref, gens, st["profile_edges"], st["sky"], st["bands"], figs / "radial_profiles.png"
    )
    _figures.pixel_histograms(ref, gens, pe.HIST_EDGES, st["bands"], figs / "pixel_histograms.png")


# ----------------------------------------------------------------------------- bench


#: A bench warm-up call at least this long (s) is also a timed call (see `bench`).
WARM_ENOUGH_S = 10.0


def _timed_call(fn: Any, args: tuple) -> float:
    """Seconds one call of ``fn(*args)`` takes until its result is ready."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def bench(
    runs: Sequence[Path], out: Path | None, *, batch: int, repeats: int, ddpm_steps: int
) -> str:
    """``galgen bench``: Table 2 rows for every method of every run, on the current device."""
    import jax
    from gen_backbones import forward_flops, param_count

    rows = []
    for run in runs:
        sim = Simulator.load(run)
        params = sim._params
        methods = PMF_ROWS if sim.model == "pmf" else DDPM_ROWS
        n_params = param_count(params)
        flops = forward_flops(sim._net, params, batch_size=1)
        z = np.linspace(0.1, 3.0, batch, dtype=np.float32)
        index = np.arange(batch, dtype=np.int32)
        for label, method, steps in methods:
            steps = ddpm_steps if method == "ddpm" else steps
            fn, box = sim._sampler(method, steps, None)
            nfe = lambda box=box: box["nfe"]  # noqa: E731
            key = jax.random.key(1)
            # Compiled ahead of time, then one untimed warm-up call (a first call of a cheap
            # sampler is several times slower). A warm-up longer than WARM_ENOUGH_S counts as a
            # timed call: its first-call overhead is negligible, and for DDPM-1000 a second
            # call would cost another whole run (28 s of the smoke preset's bench stage).
            args = (params, index, z, key)
            compiled = fn.lower(*args).compile()
            first = _timed_call(compiled, args)
            times = [first] if first > WARM_ENOUGH_S else []
            while len(times) < repeats:
                times.append(_timed_call(compiled, args))
            times = np.array(times)
            med = float(np.median(times))
            rows.append(
                {
                    "method": label,
                    "nfe": nfe(),
                    "params": n_params,
                    "batch": batch,
                    "seconds": med,
                    "seconds_mad": float(np.median(np.abs(times - med))),
                    "images_per_s": batch / med,
                    "gflops_per_image": nfe() * flops / 1e9,
                }
            )
    env = environment()
    lines = [
        f"Device: {env['device']} ({env['cpu']}, {env['cores']} cores), batch {batch}, "
        f"median of {repeats} after compile and an untimed warm-up call (a warm-up over "
        f"{WARM_ENOUGH_S:g} s is the first timed call).",
        "",
        "| Method | NFE | Params | Time / batch (s) | Images/s | GFLOPs / image |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['nfe']} | {r['params'] / 1e6:.3f}M | {r['seconds']:.3f} "
            f"| {r['images_per_s']:.1f} | {r['gflops_per_image']:.3g} |"
        )
    md = "\n".join(lines)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_text(Path(out) / "bench.md", md + "\n")
        _write_json(Path(out) / "bench.json", {"rows": rows, "environment": env})
    return md


# ----------------------------------------------------------------------------- reproduce


def _log(msg: str) -> None:
    """One progress line on stderr (between progress bars)."""
    from tqdm.auto import tqdm

    tqdm.write(msg, file=sys.stderr)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")


def reproduce(
    out: Path,
    *,
    preset: str,
    data: Path | None,
    force: bool,
    seed: int,
    cpu_devices: int | None = None,
) -> Path:
    """``galgen reproduce``: every stage in order, each skipped when its record exists.

    ``cpu_devices``: split a CPU into this many JAX devices for training (see `train`)."""
    import shutil

    from galaxiesml_data import find_split

    if preset not in REPRODUCE_PRESETS:
        raise GalgenError(
            f"unknown --preset {preset!r}; choose one of {', '.join(REPRODUCE_PRESETS)}"
        )
    p = REPRODUCE_PRESETS[preset]
    out = Path(out)
    stages = out / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def stage(name: str, fn, *outputs: Path):
        rec = stages / f"{name}.json"
        if rec.exists() and not force:
            _log(f"skip {name} (done; --force to redo)")
            return json.loads(rec.read_text())["result"]
        if force:
            for o in outputs:
                shutil.rmtree(o, ignore_errors=True) if o.is_dir() else o.unlink(missing_ok=True)
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        _write_json(rec, {"result": result, "seconds": dt})
        _log(f"done {name} in {dt:.1f} s")
        return result

    if data is None:
        data_dir = out / "data"
        d = p["data"]
        stage(
            "data",
            lambda: [
                str(x)
                for x in synth(
                    data_dir,
                    n_train=d["n_train"],
                    n_val=d["n_val"],
                    n_test=d["n_test"],
                    size=d["size"],
                    seed=seed,
                )
            ],
            data_dir,
        )
    else:
        data_dir = Path(data)
        find_split(data_dir, "training")  # one image size only, or a message naming them
    size = p["data"]["size"] if data is None else None
    test_file = find_split(data_dir, "testing", size=size)

    def train_stage(name: str, model: str, tp: str, over: dict[str, Any], run_dir: Path) -> Path:
        overrides = [f"{k}={json.dumps(v)}" for k, v in over.items()]

        def do_train():
            resume = (run_dir / "config.json").exists()
            # a resumed run keeps its stored config; only its length may change
            ov = [o for o in overrides if o.startswith("train.")] if resume else overrides
            return train(
                model,
                data_dir,
                run_dir,
                preset=tp,
                overrides=ov,
                resume=resume,
                seed=seed,
                cpu_devices=cpu_devices,
            )

        stage(name, do_train, run_dir)
        return run_dir

    def sample_stage(label: str, run: Path, method: str, steps: int | None) -> Path:
        path = out / "samples" / f"{_slug(label)}.hdf5"

        def do_sample():
            return sample(
                run,
                path,
                method=method,
                steps=steps,
                guidance=None,
                redshifts="test",
                n=p["n_eval"],
                seed=seed,
            )

        stage(f"sample-{_slug(label)}", do_sample, path)
        return path

    def evaluate_stage(name: str, samples: dict[str, Path], eval_dir: Path) -> None:
        stage(
            name,
            lambda: evaluate(
                test_file,
                list(samples.values()),
                eval_dir,
                protocol=p["protocol"],
                n_boot=200 if preset != "paper" else 1000,
                seed=seed,
                names=list(samples),
                cache=out / "eval" / "cache",
            ),
            eval_dir,
        )

    planned = study_runs(p)
    runs = {
        model: train_stage(f"train-{model}", model, *planned[model][1:], out / "runs" / model)
        for model in ("ddpm", "pmf")
    }
    samples: dict[str, Path] = {}
    for label, method, steps in DDPM_ROWS:
        steps = p["ddpm_steps"] if method == "ddpm" else steps
        name = f"{label}-{steps}" if method == "ddpm" else label
        samples[name] = sample_stage(label, runs["ddpm"], method, steps)
    for label, method, steps in PMF_ROWS:
        samples[label] = sample_stage(label, runs["pmf"], method, steps)
    eval_dir = out / "eval"
    evaluate_stage("evaluate", samples, eval_dir)

    bench_dir = out / "bench"
    stage(
        "bench",
        lambda: bench(
            [runs["ddpm"], runs["pmf"]],
            bench_dir,
            batch=p["bench_batch"],
            repeats=p.get("bench_repeats", 3),
            ddpm_steps=p["ddpm_steps"],
        ),
        bench_dir,
    )

    # Table 3: variants of the main pMF run, each sampled in one step like its "p-MF 1-step" row.
    ablations = p.get("ablations") or {}
    abl_dir = out / "eval" / "ablations" if ablations else None
    if ablations:
        abl = {p["ablation_base"]: samples[PMF_ROWS[0][0]]}
        for label in ablations:
            run_dir = out / "runs" / f"pmf-{_slug(label)}"
            run = train_stage(f"train-{_slug(label)}", *planned[label], run_dir)
            abl[label] = sample_stage(label, run, "pmf", 1)
        evaluate_stage("evaluate-ablations", abl, abl_dir)

    report = out / "report.md"
    _write_report(report, preset, p, data is None, out, abl_dir, time.perf_counter() - t_start)
    return report


def _write_report(
    path: Path,
    preset: str,
    p: dict[str, Any],
    synthetic: bool,
    out: Path,
    abl_dir: Path | None,
    seconds: float,
) -> None:
    env = environment()
    eval_dir, bench_dir = out / "eval", out / "bench"
    t1 = (eval_dir / "table1.md").read_text()
    t2 = (bench_dir / "bench.md").read_text()
    info = json.loads((eval_dir / "table1.json").read_text())
    notes = []
    if p["ddpm_steps"] != 1000:
        notes.append(
            f"- The DDPM row uses {p['ddpm_steps']} ancestral steps (not 1000) to fit "
            f"the `{preset}` preset's time budget."
        )
    if synthetic:
        notes.append(
            "- Data: the synthetic GalSim stand-in in the GalaxiesML schema "
            f"({p['data']['size']}×{p['data']['size']} px), not real HSC galaxies."
        )
    for run in sorted((out / "runs").iterdir()):
        cfg = json.loads((run / "config.json").read_text())
        o, t, b = cfg["objective"], cfg["train"], cfg["backbone"]
        rest = [f"{k} {v}" for k, v in {**b, **o}.items() if k not in ("preset", "loss")]
        more = "".join(f", {k} {v}" for k, v in t.items() if k not in ("steps", "batch_size", "lr"))
        notes.append(  # every backbone, objective and train option: no recipe is mistaken
            f"- Run `{run.name}` (preset `{cfg.get('preset', 'custom')}`): {b['preset']}, "
            f"{o['loss']} loss, {', '.join(rest)}; {t['steps']} steps at batch "
            f"{t['batch_size']}, lr {t['lr']}{more}."
        )
    notes.append(
        f"- Morphology protocol `{info['protocol']}` on band g; "
        f"{info['n_real']} matched real/generated pairs; BCD errors from "
        f"{info['n_boot']} bootstrap replicates."
    )
    t3 = ""
    if abl_dir is not None:
        t3 = (
            "## Table 3 — pMF ablations, one step (loss × label smoothing; NLS = none)\n\n"
            + (abl_dir / "table1.md").read_text()
            + "\nFigures: [histograms](eval/ablations/figures/histograms.png), "
            "[binned means](eval/ablations/figures/binned_means.png), "
            "[samples](eval/ablations/figures/samples.png).\n\n"
        )
    timing = ["| Stage | Seconds |", "|---|---|"]
    for rec in sorted((out / "stages").glob("*.json"), key=lambda f: f.stat().st_mtime):
        timing.append(f"| {rec.stem} | {json.loads(rec.read_text())['seconds']:.0f} |")
    text = f"""# galgen reproduce — preset `{preset}`

Machine: {env["cpu"]} ({env["cores"]} cores); JAX device {env["device"]} × {env["n_devices"]}; Python {env["python"]};
jax {env["versions"].get("jax")}, flax {env["versions"].get("flax")}; {env["date"]}.
Wall time of this run (stages not skipped): {seconds:.0f} s.

{chr(10).join(notes)}

## Table 1 — conditional BCD (bootstrap error) and unconditional JSD (bits)

{t1}
## Table 2 — inference cost

{t2}
{t3}## Photometry — aperture flux, asinh magnitude and colour JSD and BCD, with the real-vs-real floor

{(eval_dir / "photometry.md").read_text()}
## Image statistics — sky noise, border, colour offsets per redshift bin

{(eval_dir / "imagestats.md").read_text()}
## Photometric redshift — does the redshift conditioning work?

A gradient-boosted photo-z trained on the real training split predicts z of every set; Δz is
against the true redshift (real test) or the conditioning redshift (methods).

{(eval_dir / "photoz.md").read_text()}
## Stage wall times (as recorded when each stage ran)

{chr(10).join(timing)}

## Figures

![histograms](eval/figures/histograms.png)

![redshift-binned means](eval/figures/binned_means.png)

![samples](eval/figures/samples.png)

![colour vs redshift](eval/figures/colour_redshift.png)

![radial profiles](eval/figures/radial_profiles.png)

![pixel histograms](eval/figures/pixel_histograms.png)
"""
    write_text(path, text)

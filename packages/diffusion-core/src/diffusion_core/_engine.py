"""The objective-agnostic training engine: one jit step, EMA, checkpoints, resume, NaN guard,
progress, metrics, data parallelism over a `jax.sharding.Mesh`."""

from __future__ import annotations

import collections
import functools
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from . import _checkpoint
from ._config import TrainConfig
from ._custom_types import BatchesFn, LossFn

CONFIG_FILE = "train_config.json"
METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainState:
    """What a run produces (and a checkpoint holds).

    Attributes:
        params: live parameters (pytree).
        ema_params: exponential moving average of `params` (same structure).
        opt_state: optax optimizer state.
        step: optimizer steps taken = global batch index to continue from.
        key: base JAX key of the run; step ``s`` uses ``fold_in(key, s)``.
        skipped: steps skipped because of a non-finite loss/gradient (nan_policy="skip").
    """

    params: Any
    ema_params: Any
    opt_state: Any
    step: int
    key: jax.Array
    skipped: int = 0


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optax transformation a `TrainConfig` describes (clip -> Adam(W)).

    Learning rate: linear warm-up from 0 over `warmup_steps`, then constant (`lr_decay="none"`)
    or cosine-decayed to 0 at `steps` (`lr_decay="cosine"`).
    """
    lr: float | optax.Schedule = config.lr
    if config.lr_decay == "cosine":
        lr = optax.warmup_cosine_decay_schedule(
            0.0, config.lr, config.warmup_steps, max(config.steps, config.warmup_steps + 1), 0.0
        )
    elif config.warmup_steps:
        lr = optax.linear_schedule(0.0, config.lr, config.warmup_steps)
    if config.optimizer == "adamw":
        opt = optax.adamw(lr, config.b1, config.b2, config.eps, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(lr, config.b1, config.b2, config.eps)
    if config.grad_clip is None:
        return opt
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)


def ema_update(ema: Any, params: Any, decay: float) -> Any:
    """``decay * ema + (1 - decay) * params`` leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


#: XLA:CPU compiler options of the train step (issue 21, measured on 2 cores). jaxlib 0.10 hands
#: every convolution to YNNPACK, whose weight-gradient convolution (a conv whose window is the
#: whole feature map) runs up to 4.5x slower than Eigen's (32 vs 144 GFLOP/s for a 3x3 128->128
#: conv at 64x64; half of a ddpm-paper step). These options keep YNNPACK for dots and reductions
#: only, so convolutions go to Eigen: ddpm-paper 64x64 b32 +39-57 %, ddpm-tiny 32x32 +18-26 %.
#: Not applied when XLA_FLAGS already sets ``xla_cpu_experimental_ynn_fusion_type`` (the user's
#: choice wins), off the CPU, or where this jaxlib rejects the option.
CPU_STEP_COMPILER_OPTIONS: dict[str, str] = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    ),
}


@functools.cache
def _cpu_options_supported(items: tuple[tuple[str, str], ...]) -> bool:
    """Whether this jaxlib's CPU compiler accepts ``items`` (one tiny compile, cached)."""
    x = jax.device_put(np.float32(0), jax.devices("cpu")[0])
    try:
        jax.jit(lambda v: v + 1, compiler_options=dict(items)).lower(x).compile()
    except Exception:  # unknown option or enum value in another jaxlib
        return False
    return True


def step_compiler_options(devices: Any) -> dict[str, str] | None:
    """The compiler options `train` compiles its step with on ``devices`` (None: XLA defaults).

    Forward passes gain too (galgen's samplers compile with them: ddpm-tiny 32x32 batch 128
    1.7x faster on 2 cores).

    `CPU_STEP_COMPILER_OPTIONS` when every device is a CPU, XLA_FLAGS does not set the same
    options and this jaxlib accepts them; None otherwise. For benchmarks that compare a bare
    ``jax.jit`` loop with the engine: ``jax.jit(f, compiler_options=step_compiler_options(...))``.
    """
    devices = list(np.asarray(devices).flat)
    if not devices or any(d.platform != "cpu" for d in devices):
        return None
    flags = os.environ.get("XLA_FLAGS", "")
    opts = {k: v for k, v in CPU_STEP_COMPILER_OPTIONS.items() if f"--{k}" not in flags}
    if not opts or not _cpu_options_supported(tuple(sorted(opts.items()))):
        return None
    return opts


def _make_step(loss_fn: LossFn, tx: optax.GradientTransformation, config: TrainConfig):
    """The pure train step ``(carry, batch) -> (carry, metrics)``; never writes non-finite params.

    ``carry["bad"]`` is -1 until a non-finite step happens under nan_policy="stop"; from then on
    it holds that step's number and every later step is a no-op until the host notices.
    """
    stop = config.nan_policy == "stop"

    def step(carry, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(carry["key"]), carry["step"])
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, aux), grads = grad_fn(carry["params"], batch, key)
        finite = jnp.isfinite(loss) & _all_finite(grads)
        updates, opt_state = tx.update(grads, carry["opt_state"], carry["params"])
        params = optax.apply_updates(carry["params"], updates)
        ema = ema_update(carry["ema_params"], params, config.ema_decay)
        ok = finite & (carry["bad"] < 0)

        def pick(new, old):
            return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

        n = carry["step"] + 1
        out = {
            "params": pick(params, carry["params"]),
            "ema_params": pick(ema, carry["ema_params"]),
            "opt_state": pick(opt_state, carry["opt_state"]),
            "step": n,
            "key": carry["key"],
            "skipped": carry["skipped"] + (~finite).astype(jnp.int32),
            "bad": jnp.where(stop & ~finite & (carry["bad"] < 0), n, carry["bad"]),
        }
        metrics = {"loss": loss, **aux, "grad_norm": optax.tree.norm(grads)}
        return out, metrics

    return step


def _put_batch(batch: Mapping[str, Any], sharding: NamedSharding, local_bs: int, index: int):
    out = {}
    for name, value in batch.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != local_bs:
            raise ValueError(
                f"batch {index}: {name!r} has shape {arr.shape}; expected leading dimension "
                f"{local_bs} (TrainConfig.batch_size / jax.process_count())"
            )
        out[name] = jax.make_array_from_process_local_data(sharding, arr)
    return out


def _prefetch(batches: Iterator[Any], put: Callable[[Any, int], Any], size: int, start: int):
    """Yield device batches, keeping ``size`` transfers in flight ahead of the consumer."""
    queue: collections.deque = collections.deque()
    for i, batch in enumerate(batches, start):
        queue.append(put(batch, i))
        if len(queue) > size:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def _truncate_jsonl(path: Path, last_step: int) -> None:
    """Drop metric lines logged after ``last_step`` by a run that died before checkpointing."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                keep.append(line)
        except json.JSONDecodeError:  # a line torn by a kill
            continue
    path.write_text("".join(k + "\n" for k in keep))


def _jsonable(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


class _Terminated(SystemExit):
    pass


def _sigterm(signum, frame):  # noqa: ARG001
    raise _Terminated(128 + signal.SIGTERM)


def _check_process_rows(sharding: NamedSharding, batch_size: int, local_bs: int) -> None:
    """This process's devices must hold block ``process_index`` of the global batch, the rows
    ``batches(..., shard=(process_index, process_count))`` reads; otherwise the global batch would
    be a permutation of the one-process batch (other noise per row, other results)."""
    spans = sorted(
        (ix[0].start or 0, batch_size if ix[0].stop is None else ix[0].stop)
        for ix in sharding.addressable_devices_indices_map((batch_size,)).values()
    )
    covered = spans[0][0]
    for lo, hi in spans:
        if lo > covered:  # a gap: the rows are not one block
            covered = -1
            break
        covered = max(covered, hi)
    want = (jax.process_index() * local_bs, (jax.process_index() + 1) * local_bs)
    if (spans[0][0], covered) != want:
        raise ValueError(
            f"process {jax.process_index()} of {jax.process_count()}: its devices hold rows "
            f"{[list(sp) for sp in spans]} of the global batch of {batch_size}, not the block "
            f"{list(want)} its batches_fn reads; order the mesh's devices by process, as "
            "jax.devices() does"
        )


def default_mesh() -> Mesh:
    """A 1-D ``("data",)`` mesh over every device of every process."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def train(
    loss_fn: LossFn,
    params: Any,
    batches_fn: BatchesFn,
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = True,
    run_info: Mapping[str, Any] | None = None,
    mesh: Mesh | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainState:
    """Train ``params`` on ``loss_fn`` for ``config.steps`` optimizer steps.

    Args:
        loss_fn: ``loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics)`` over the
            global batch; jit-compiled, differentiated w.r.t. ``params``.
        params: initial parameter pytree (ignored when resuming from a checkpoint).
        batches_fn: ``batches_fn(start)`` returns an iterator of batches (dicts of NumPy arrays,
            leading dim ``batch_size / process_count``) beginning at global batch index ``start``.
        config: the `TrainConfig`.
        run_dir: directory for ``checkpoints/``, ``train_config.json`` and ``metrics.jsonl``.
        resume: continue from the newest checkpoint in ``run_dir`` if there is one; with
            ``resume=False`` a ``run_dir`` holding checkpoints is an error (never overwritten).
        run_info: extra JSON-able settings (e.g. the objective's config) stored in train_config.json.
        mesh: device mesh with a ``"data"`` axis; default: all devices.
        on_log: called (on process 0) with every metrics record written to metrics.jsonl, e.g.
            to forward scalars to TensorBoard or another tracker.

    Several processes (after ``jax.distributed.initialize()``): process ``p`` of ``n`` must
    yield block ``p`` of every global batch (``galaxiesml_data.batches(..., shard=(p, n))``), the
    rows its devices hold in the default mesh (checked); process 0 alone writes the JSON files,
    checkpoints are written collectively (orbax); an interrupt does not checkpoint; a failure of
    the run (e.g. another process died) raises ``RuntimeError`` naming the last checkpoint.

    Returns:
        The final `TrainState` (arrays replicated over the mesh).

    Raises:
        FloatingPointError: nan_policy="stop" and a step had a non-finite loss or gradient.
        RuntimeError: (several processes) the run failed on this process, e.g. another died.
        KeyboardInterrupt / SystemExit: after writing a checkpoint (Ctrl-C, SIGTERM; one process).
    """
    run_dir = Path(run_dir)
    mesh = mesh or default_mesh()
    if "data" not in mesh.axis_names:
        raise ValueError(f"mesh axes {mesh.axis_names} have no 'data' axis")
    n_data = mesh.shape["data"]
    if config.batch_size % n_data:
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is not divisible by the {n_data} "
            "devices of the mesh's 'data' axis"
        )
    n_proc = jax.process_count()
    if config.batch_size % n_proc:
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is not divisible by the {n_proc} processes"
        )
    local_bs = config.batch_size // n_proc
    main = jax.process_index() == 0
    repl = NamedSharding(mesh, PartitionSpec())
    data_sharding = NamedSharding(mesh, PartitionSpec("data"))
    if n_proc > 1:
        _check_process_rows(data_sharding, config.batch_size, local_bs)
    tx = make_optimizer(config)

    # Fresh buffers: the step donates its carry, the caller keeps `params`. Copied before the
    # put: on a mesh of several devices device_put(..., may_alias=False) still hands the caller's
    # device-0 buffer to the replicated array, and the first step deleted it.
    params = jax.device_put(jax.tree.map(jnp.copy, params), repl)
    carry = {
        "params": params,
        "ema_params": jax.tree.map(jnp.copy, params),
        "opt_state": jax.device_put(tx.init(params), repl, may_alias=False),
        "step": jax.device_put(jnp.int32(0), repl),
        "key": jax.device_put(jax.random.key_data(jax.random.key(config.seed)), repl),
        "skipped": jax.device_put(jnp.int32(0), repl),
        "bad": jax.device_put(jnp.int32(-1), repl),
    }
    start = 0
    saved = _checkpoint.saved_steps(run_dir)
    if saved and not resume:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints (steps {saved}); pass resume=True to continue "
            "that run, or use a new run_dir"
        )
    last = saved[-1:]
    if last:
        like = {k: carry[k] for k in ("params", "ema_params", "opt_state")}
        trees, meta = _checkpoint.restore(run_dir, last[0], like)
        start = int(meta["step"])
        carry.update(trees)
        carry["step"] = jax.device_put(jnp.int32(start), repl)
        carry["key"] = jax.device_put(jnp.asarray(meta["key"], dtype=jnp.uint32), repl)
        carry["skipped"] = jax.device_put(jnp.int32(meta["skipped"]), repl)

    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = run_dir / METRICS_FILE
    if main:
        resolved = {
            "train": config.to_dict(),
            "run": _jsonable(dict(run_info or {})),
            "resumed_from_step": start,
            "devices": {"data": n_data, "processes": jax.process_count()},
            "backend": jax.default_backend(),
            "jax": jax.__version__,
        }
        (run_dir / CONFIG_FILE).write_text(json.dumps(resolved, indent=2) + "\n")
        _truncate_jsonl(metrics_path, start)

    def save(step: int) -> None:
        meta = {
            "step": step,
            "data_position": step,
            "key": np.asarray(jax.device_get(carry["key"])).tolist(),
            "skipped": int(jax.device_get(carry["skipped"])),
        }
        trees = {k: carry[k] for k in ("params", "ema_params", "opt_state")}
        _checkpoint.save(run_dir, step, trees, meta, config.keep_checkpoints)

    last_saved = start

    def check_finite() -> None:
        bad = int(jax.device_get(carry["bad"]))
        if bad >= 0:
            raise FloatingPointError(
                f"non-finite loss or gradient at step {bad} (batch index {bad - 1}); the "
                f"parameters were not updated by it, and the last good checkpoint (step "
                f"{last_saved}) in {run_dir / 'checkpoints'} is intact. Set "
                "TrainConfig.nan_policy='skip' to skip such steps instead."
            )

    def state() -> TrainState:
        return TrainState(
            params=carry["params"],
            ema_params=carry["ema_params"],
            opt_state=carry["opt_state"],
            step=int(jax.device_get(carry["step"])),
            key=jax.random.wrap_key_data(carry["key"]),
            skipped=int(jax.device_get(carry["skipped"])),
        )

    if start >= config.steps:
        return state()

    step_fn = jax.jit(
        _make_step(loss_fn, tx, config),
        in_shardings=(repl, data_sharding),
        out_shardings=repl,
        donate_argnums=0,
        compiler_options=step_compiler_options(mesh.devices),
    )
    host_batches = itertools.islice(iter(batches_fn(start)), config.steps - start)
    device_batches = _prefetch(
        host_batches,
        lambda b, i: _put_batch(b, data_sharding, local_bs, i),
        config.prefetch,
        start,
    )

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.steps,
        initial=start,
        disable=not (config.progress and main),
        unit="step",
        dynamic_ncols=True,
    )
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, _sigterm)
    step = start
    pending: list[dict[str, jax.Array]] = []
    t0 = t_log = time.perf_counter()
    step_log = start
    try:
        for batch in device_batches:
            carry, metrics = step_fn(carry, batch)
            step += 1
            pending.append(metrics)
            bar.update(1)
            if step == start + 1:  # one sync so images/s excludes compilation
                jax.block_until_ready(metrics)
                t_log, step_log = time.perf_counter(), step
            end = step == config.steps
            if step % config.log_every == 0 or end:
                check_finite()
                fetched = jax.device_get(pending)
                pending = []
                now = time.perf_counter()
                record: dict[str, Any] = {"step": step}
                for name in fetched[0]:
                    vals = np.asarray([float(m[name]) for m in fetched])
                    good = vals[np.isfinite(vals)]
                    record[name] = float(good.mean()) if good.size else float("nan")
                n_timed = step - step_log
                # None on the first record when it holds only the compiling step
                ips = n_timed * config.batch_size / (now - t_log) if n_timed else None
                record["images_per_s"] = ips
                record["skipped"] = int(jax.device_get(carry["skipped"]))
                record["time_s"] = now - t0
                t_log, step_log = now, step
                bar.set_postfix(loss=f"{record['loss']:.4g}", img_s=f"{ips or 0:.1f}")
                if main:
                    with metrics_path.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    if on_log is not None:
                        on_log(dict(record))
            if step % config.checkpoint_every == 0 or end:
                check_finite()
                save(step)
                last_saved = step
        if step < config.steps:  # the data ran out early
            check_finite()
            if step > last_saved:
                save(step)
                last_saved = step
            bar.write(f"batches_fn({start}) ran out after step {step} of {config.steps}")
    except (KeyboardInterrupt, SystemExit):
        # Several processes: no checkpoint on interrupt. Saving is collective, and the processes
        # may be at different host-side steps (or one is gone): keep the last periodic one.
        if n_proc == 1 and step > last_saved and int(jax.device_get(carry["bad"])) < 0:
            try:
                save(step)
            except Exception as exc:  # e.g. interrupted mid-save: keep the last good checkpoint
                bar.write(f"could not checkpoint step {step} on interrupt: {exc!r}")
        raise
    except FloatingPointError:
        raise
    except Exception as exc:
        if n_proc == 1:
            raise
        # e.g. "Gloo all-reduce failed: ... Connection closed by peer" when another process died
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # what is on disk (the failure may come after a checkpoint was complete), read without
        # orbax, whose CheckpointManager would wait for the other processes
        have = _checkpoint.steps_on_disk(run_dir)
        ck = run_dir / "checkpoints"
        last = (
            f"the last complete checkpoint is step {have[-1]} in {ck}"
            if have
            else f"no checkpoint is in {ck} yet"
        )
        raise RuntimeError(
            f"process {jax.process_index()} of {n_proc} stopped at step {step}: {cause}. If "
            f"another process died, see its log; {last}: relaunch every process to resume"
        ) from exc
    finally:
        bar.close()
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    return state()


def latest_step(run_dir: str | Path) -> int | None:
    """Step of the newest complete checkpoint in ``run_dir``, or None."""
    steps = _checkpoint.saved_steps(run_dir)
    return steps[-1] if steps else None


def load_ema_params(
    run_dir: str | Path, step: int | None = None, *, params_like: Any = None
) -> tuple[Any, int]:
    """Only the EMA parameters of a checkpoint (default: the newest) and its step.

    Reads neither the raw parameters nor the optimizer state (together about 3x the EMA's
    memory): what sampling from a trained run needs.
    """
    if step is None:
        step = latest_step(run_dir)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {Path(run_dir) / 'checkpoints'}")
    trees, meta = _checkpoint.restore(run_dir, step, {"ema_params": params_like})
    return trees["ema_params"], int(meta["step"])


def load_checkpoint(
    run_dir: str | Path,
    step: int | None = None,
    *,
    params_like: Any = None,
    opt_state_like: Any = None,
) -> TrainState:
    """Read a checkpoint (default: the newest) of a run directory into host memory.

    ``params_like`` / ``opt_state_like`` are templates (e.g. ``net.init(key)``) whose pytree
    structure the restored trees take; without them the trees come back as nested dicts/lists.
    """
    if step is None:
        step = latest_step(run_dir)
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {Path(run_dir) / 'checkpoints'}")
    like = {"params": params_like, "ema_params": params_like, "opt_state": opt_state_like}
    trees, meta = _checkpoint.restore(run_dir, step, like)
    return TrainState(
        params=trees["params"],
        ema_params=trees["ema_params"],
        opt_state=trees["opt_state"],
        step=int(meta["step"]),
        key=jax.random.wrap_key_data(jnp.asarray(meta["key"], dtype=jnp.uint32)),
        skipped=int(meta["skipped"]),
    )

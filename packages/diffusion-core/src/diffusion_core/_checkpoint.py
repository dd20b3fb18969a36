"""The one place that knows the checkpoint library (orbax-checkpoint, "V0" CheckpointManager API).

A checkpoint of step ``s`` is the directory ``<run_dir>/checkpoints/<s>/`` with four items:
``params``, ``ema_params``, ``opt_state`` (pytrees of arrays) and ``meta`` (JSON: step, RNG key
data, skipped-step count, data-iterator position). Orbax writes into a temporary directory and
renames it only after every file is written, so a crash mid-write never touches the last good
checkpoint; unfinished temporaries are ignored on restore. Old checkpoints are pruned here, not by
orbax (which deletes a step's items one by one, so a kill mid-delete left a step directory that
listed but could not be read): a step is first renamed out of the step namespace, atomically,
then deleted; leftovers of an interrupted delete are removed at the next save.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

_ITEMS = ("params", "ema_params", "opt_state")


def _dir(run_dir: str | Path) -> Path:
    return Path(run_dir).absolute() / "checkpoints"


def _manager(run_dir: str | Path, keep: int | None = None, create: bool = True):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, create=create
    )
    return ocp.CheckpointManager(_dir(run_dir), options=options)


def saved_steps(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints under ``run_dir``, ascending."""
    if not _dir(run_dir).is_dir():
        return []
    with _manager(run_dir, create=False) as m:
        return sorted(m.all_steps())


def steps_on_disk(run_dir: str | Path) -> list[int]:
    """Like `saved_steps`, from the directory listing alone (no orbax, no barrier between
    processes): a step directory has its final name only once complete (atomic rename)."""
    try:
        return sorted(
            int(p.name) for p in _dir(run_dir).iterdir() if p.name.isdigit() and p.is_dir()
        )
    except OSError:
        return []


def save(
    run_dir: str | Path,
    step: int,
    trees: dict[str, Any],
    meta: dict[str, Any],
    keep: int | None,
) -> None:
    """Write checkpoint ``step`` (blocking, atomic) and delete all but the newest ``keep``.

    Raises:
        OSError: the write failed (disk full, read-only, ...); the message names the checkpoint
            directory and the reason, the half-written temporary is removed, and the checkpoints
            already on disk are untouched.
    """
    items = {k: ocp.args.StandardSave(trees[k]) for k in _ITEMS}
    try:
        with _quiet_unless_ok():
            try:
                with _manager(run_dir) as m:
                    args = ocp.args.Composite(meta=ocp.args.JsonSave(meta), **items)
                    m.save(step, args=args, force=True)
                    m.wait_until_finished()
            except Exception:
                _wait_for_orbax_writers()  # they outlive the failed save
                raise
    except Exception as exc:
        for tmp in _dir(run_dir).glob(f"{step}.*tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        code = _os_error_code(exc)
        reason = os.strerror(code) if code else _first_line(exc)
        have = saved_steps(run_dir)
        last = f"the last good checkpoint is step {have[-1]}" if have else "no checkpoint was kept"
        err = OSError(f"{_dir(run_dir)}: could not write checkpoint {step} ({reason}); {last}")
        err.errno = code or errno.EIO
        raise err from exc
    if jax.process_count() == 1:
        _prune(run_dir, keep)
    else:  # one process deletes; the others wait, so nobody lists a step being deleted
        from jax.experimental import multihost_utils

        if jax.process_index() == 0:
            _prune(run_dir, keep)
        multihost_utils.sync_global_devices(f"diffusion_core.checkpoint.prune.{step}")


def _wait_for_orbax_writers(timeout: float = 60.0) -> None:
    """Join orbax's writer threads, which outlive a failed save, before its temporary is removed."""
    for th in threading.enumerate():
        if th is not threading.current_thread() and type(th).__module__.startswith("orbax"):
            try:
                th.join(timeout=timeout)
            except Exception:  # orbax's join re-raises the thread's own failure
                pass


@contextlib.contextmanager
def _quiet_unless_ok() -> Iterator[None]:
    """Hold back what is written to stderr (fd 2) inside the block; replay it if the block
    succeeds, drop it if it fails. When one write of a save fails, tensorstore calls back into
    orbax's closed event loop from C and each callback prints a traceback — hundreds of lines
    for one full disk, none of them about the cause, which the raised error states."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            raise
        else:
            sys.stderr.flush()
            os.dup2(saved, 2)
            held.seek(0)
            text = held.read()
            if text:
                os.write(2, text)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _os_error_code(exc: BaseException) -> int | None:
    """The errno behind ``exc``: an ``OSError``'s own, or the one tensorstore writes in its text."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno:
            return exc.errno
        m = re.search(r"os_error_code='?(\d+)", str(exc))
        if m:
            return int(m.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TRASH = ".deleting-"


def _prune(run_dir: str | Path, keep: int | None) -> None:
    """Delete all but the newest ``keep`` steps, each vanishing whole (rename, then delete)."""
    d = _dir(run_dir)
    for old in d.glob(f"{_TRASH}*"):  # an earlier delete that was killed
        shutil.rmtree(old, ignore_errors=True)
    if keep is None:
        return
    steps = sorted(int(p.name) for p in d.iterdir() if p.name.isdigit() and p.is_dir())
    for s in steps[: max(0, len(steps) - keep)]:
        trash = d / f"{_TRASH}{s}"
        (d / str(s)).rename(trash)
        shutil.rmtree(trash)


def _abstract(like: Any) -> Any:
    """Shape/dtype/sharding targets; a leaf without a sharding is read onto this process's first
    device. Orbax would otherwise use the sharding recorded at save time, whose devices (e.g. the
    two processes of a multi-process run) need not exist here ("Topology mismatch detected")."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def target(x: Any) -> Any:
        s = ocp.utils.to_shape_dtype_struct(x)
        if isinstance(s, jax.ShapeDtypeStruct) and s.sharding is None:
            s = jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=local)
        return s

    return jax.tree.map(target, like)


def _recorded(run_dir: str | Path, step: int, name: str) -> Any:
    """The tree of item ``name`` of checkpoint ``step`` as shape/dtype structs (no sharding)."""
    with ocp.StandardCheckpointer() as ck:
        tree = ck.metadata(_dir(run_dir) / str(step) / name).item_metadata.tree
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), tree)


def restore(
    run_dir: str | Path, step: int, like: dict[str, Any | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the items named in ``like`` from checkpoint ``step``.

    ``like[name]`` is a template pytree (its structure, shapes, dtypes and shardings are used) or
    None (restore with the structure orbax recorded: nested dicts/lists). Returns (trees, meta).
    """
    for name in like:
        if name not in _ITEMS:
            raise ValueError(f"unknown checkpoint item {name!r}; items are {_ITEMS}")
    with _manager(run_dir, create=False) as m:
        if step not in m.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {_dir(run_dir)} (have {sorted(m.all_steps())})"
            )
        args = {
            name: ocp.args.StandardRestore(
                _abstract(_recorded(run_dir, step, name) if tmpl is None else tmpl)
            )
            for name, tmpl in like.items()
        }
        try:
            out = m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **args))
        except ValueError as exc:  # orbax lists every key of the tree: say what differs instead
            missing = re.search(r"Target path (\(.*?\)) not found", str(exc))
            if missing:
                what = f"the network's {missing.group(1)} is not in it"
            elif "structures do not match" in str(exc):
                what = "its parameter tree has other keys than the network's"
            else:
                what = _first_line(exc).split(". ")[0]
            raise ValueError(
                f"checkpoint {step} in {_dir(run_dir)} was written by another network ({what}); "
                "does the run's config.json belong to these checkpoints?"
            ) from None
    trees = {}
    for name, tmpl in like.items():
        tree = out[name]
        if tmpl is not None:  # re-impose the template's container types (e.g. optax namedtuples)
            tree = jax.tree.unflatten(jax.tree.structure(tmpl), jax.tree.leaves(tree))
        trees[name] = tree
    return trees, dict(out["meta"])

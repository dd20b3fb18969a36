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

import shutil
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


def save(
    run_dir: str | Path,
    step: int,
    trees: dict[str, Any],
    meta: dict[str, Any],
    keep: int | None,
) -> None:
    """Write checkpoint ``step`` (blocking, atomic) and delete all but the newest ``keep``."""
    items = {k: ocp.args.StandardSave(trees[k]) for k in _ITEMS}
    with _manager(run_dir) as m:
        m.save(step, args=ocp.args.Composite(meta=ocp.args.JsonSave(meta), **items), force=True)
        m.wait_until_finished()
    _prune(run_dir, keep)


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
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, like)


def restore(
    run_dir: str | Path, step: int, like: dict[str, Any | None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the items named in ``like`` from checkpoint ``step``.

    ``like[name]`` is a template pytree (its structure, shapes, dtypes and shardings are used) or
    None (restore with the structure orbax recorded: nested dicts/lists). Returns (trees, meta).
    """
    args = {}
    for name, tmpl in like.items():
        if name not in _ITEMS:
            raise ValueError(f"unknown checkpoint item {name!r}; items are {_ITEMS}")
        args[name] = ocp.args.StandardRestore(None if tmpl is None else _abstract(tmpl))
    with _manager(run_dir, create=False) as m:
        if step not in m.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {_dir(run_dir)} (have {sorted(m.all_steps())})"
            )
        out = m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore(), **args))
    trees = {}
    for name, tmpl in like.items():
        tree = out[name]
        if tmpl is not None:  # re-impose the template's container types (e.g. optax namedtuples)
            tree = jax.tree.unflatten(jax.tree.structure(tmpl), jax.tree.leaves(tree))
        trees[name] = tree
    return trees, dict(out["meta"])

"""Joining JAX's distributed runtime for multi-process training (`galgen train` on several
processes, hosts or GPUs).

``init_distributed`` is the one place galgen calls ``jax.distributed.initialize``: with explicit
settings (``--coordinator HOST:PORT --num-processes N --process-id I``), with the same settings
from the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), or
from a cluster JAX detects itself (SLURM ``srun`` with more than one task, Open MPI ``mpirun``).
One process alone never initialises anything. On CPU the processes exchange gradients through
JAX's gloo collectives; on GPU through NCCL.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

from galgen._errors import GalgenError

_STATE: dict[str, Any] = {"initialized": False}


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise GalgenError(f"{name}={value!r}: expected an integer") from None


def _cluster_size() -> int:
    """Tasks of a SLURM step / Open MPI job this process belongs to (1 outside one)."""
    for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        n = _env_int(name)
        if n is not None and (name != "SLURM_NTASKS" or "SLURM_PROCID" in os.environ):
            return n
    return 1


def init_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout: int = 100,
) -> tuple[int, int]:
    """Join the JAX distributed runtime if this is one of several processes.

    Must run before any JAX computation in the process. Each argument falls back to its
    environment variable (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``)
    and then to JAX's cluster auto-detection (SLURM, Open MPI). Calling it again is a no-op.

    Args:
        coordinator: ``HOST:PORT`` of process 0's coordination service (every process passes the
            same address; process 0 listens on PORT).
        num_processes: total number of processes N.
        process_id: this process's index, 0 <= I < N.
        heartbeat_timeout: seconds without a heartbeat after which the runtime declares a process
            dead and stops the others.

    Returns:
        ``(process_index, process_count)``; ``(0, 1)`` when running alone.

    Raises:
        GalgenError: naming the setting that is missing or invalid, or when JAX was already used
            in this process.
    """
    import jax

    if _STATE["initialized"]:
        return jax.process_index(), jax.process_count()
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None:
        num_processes = _env_int("JAX_NUM_PROCESSES")
    if process_id is None:
        process_id = _env_int("JAX_PROCESS_ID")
    explicit = (coordinator, num_processes, process_id)
    if all(v is None for v in explicit):
        if _cluster_size() <= 1:
            return 0, 1  # alone: nothing to join
        kwargs: dict[str, Any] = {}  # srun / mpirun: JAX reads the cluster's variables
    else:
        if num_processes is not None and num_processes < 1:
            raise GalgenError(f"--num-processes {num_processes}: expected at least 1")
        if num_processes == 1 and process_id in (None, 0):
            return 0, 1
        missing = [
            flag
            for flag, v in zip(("--coordinator", "--num-processes", "--process-id"), explicit)
            if v is None
        ]
        if missing:
            raise GalgenError(
                f"multi-process training needs {', '.join(missing)} too (or the environment "
                "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)"
            )
        if not re.fullmatch(r"\[?[\w.:-]+\]?:\d{1,5}", coordinator):
            raise GalgenError(f"--coordinator {coordinator!r}: expected HOST:PORT")
        if not 0 <= process_id < num_processes:
            raise GalgenError(
                f"--process-id {process_id}: expected 0 <= id < --num-processes {num_processes}"
            )
        kwargs = {
            "coordinator_address": coordinator,
            "num_processes": num_processes,
            "process_id": process_id,
        }
    try:
        jax.distributed.initialize(**kwargs, heartbeat_timeout_seconds=int(heartbeat_timeout))
    except RuntimeError as exc:
        raise GalgenError(
            f"could not join the JAX distributed runtime: {str(exc).strip().splitlines()[0]}"
        ) from exc
    _STATE["initialized"] = True
    return jax.process_index(), jax.process_count()


def split_cpu(n: int) -> int:
    """Present this process's CPU to JAX as ``n`` devices, so `galgen.train` runs data-parallel
    on one host; returns the number of CPU devices in effect. Measured on 2 cores (docs/results.md,
    issue #21): 2 devices train pmf-tiny ~15 % faster than one device with two threads, and
    ddpm-tiny ~12 % slower.

    Only before JAX's first computation in the process: later (or when ``XLA_FLAGS`` sets
    ``--xla_force_host_platform_device_count``, which wins) the count stays what it is. The
    result does not depend on the count, up to float summation order (the engine's test).
    """
    import jax

    if n < 1:
        raise GalgenError(f"--cpu-devices {n}: expected at least 1")
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        try:
            jax.config.update("jax_num_cpu_devices", int(n))
        except RuntimeError:  # JAX already computed something in this process
            pass
    return len(jax.devices("cpu"))


def is_distributed() -> bool:
    """Whether `init_distributed` joined a runtime of several processes in this process."""
    return bool(_STATE["initialized"])


def barrier(name: str) -> None:
    """Wait until every process reaches ``name`` (no-op for one process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def assert_same(name: str, text: str) -> None:
    """Every process must hold the same ``text`` (e.g. the resolved config); a barrier too."""
    import jax
    import numpy as np

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = np.uint32(zlib.crc32(text.encode()))
    try:
        multihost_utils.assert_equal(digest, name)
    except AssertionError:
        raise GalgenError(
            f"the {jax.process_count()} processes disagree on the {name} (process "
            f"{jax.process_index()}: crc32 {int(digest):08x}); do they all read the same data "
            "directory and run the same galgen version?"
        ) from None

"""Dask clients for :func:`morph_metrics.measure_chunks` (optional extra ``morph-metrics[dask]``).

dask is imported only here, and only when a client is asked for.
"""

from __future__ import annotations

import os
from typing import Any

_HELP = "expected 'local', 'local:N' (N >= 1 worker processes) or a scheduler address such as tcp://host:8786"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "a Dask scheduler needs dask.distributed, which is not installed: "
            "pip install 'morph-metrics[dask]'"
        ) from None
    return distributed


def check_scheduler(scheduler: str) -> int | None:
    """Check a scheduler spec before anything runs: ``"local"`` or ``"local:N"`` → the number of
    local worker processes (``os.cpu_count()`` for ``"local"``); any other non-empty string is a
    scheduler address → None. Also checks that dask.distributed is installed.

    Raises:
        ValueError: an empty spec or ``local:N`` with N not an integer >= 1.
        ImportError: dask.distributed is missing (one sentence naming the extra to install).
    """
    spec = str(scheduler).strip()
    if not spec:
        raise ValueError(f"scheduler {scheduler!r}: {_HELP}")
    n: int | None = None
    if spec == "local":
        n = os.cpu_count() or 1
    elif spec.startswith("local:"):
        try:
            n = int(spec.removeprefix("local:"))
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"scheduler {scheduler!r}: {_HELP}")
    _distributed()
    return n


def dask_client(scheduler: str, **cluster_kwargs: Any) -> Any:
    """A ``dask.distributed.Client`` for ``scheduler`` (see :func:`check_scheduler`).

    ``"local"`` / ``"local:N"`` start a ``LocalCluster`` of N single-threaded worker processes
    (each under a nanny that restarts it if it dies; ``cluster_kwargs`` go to ``LocalCluster``);
    closing the client (it is a context manager) stops that cluster. Any other string connects to
    a running scheduler, e.g. ``tcp://host:8786`` started with ``dask scheduler`` and
    ``dask worker``; its workers must be able to run the reader (see the same files and have
    morph-metrics installed). Scripts that start a local cluster need an
    ``if __name__ == "__main__":`` guard (worker processes are spawned).
    """
    n = check_scheduler(scheduler)
    distributed = _distributed()
    if n is None:
        return distributed.Client(str(scheduler).strip())
    kw = {"processes": True, "threads_per_worker": 1, "dashboard_address": None}
    return distributed.Client(n_workers=n, **(kw | cluster_kwargs))

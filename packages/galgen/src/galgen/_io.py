"""How galgen writes files: whole or not at all, and one sentence naming the file when it cannot.

Every output (sample files, model files, FITS, tables, figures, caches) is written to a temporary
beside its target and renamed over it only when complete, so a crash, a full disk or a read-only
directory never leaves a torn file under the target's name or changes an existing one.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._errors import GalgenError


def _reason(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno)
    text = re.sub(r"^\[Errno \d+\] ", "", str(exc).strip())  # a library's re-raised OSError
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); rename it to ``path`` on success.

    On any error the temporary is removed and ``path`` is left as it was; an ``OSError``
    (read-only or full disk, a file where a directory should be) becomes a ``GalgenError``
    naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GalgenError(f"{path.parent}: cannot create the directory ({_reason(exc)})") from None
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only directory refuses even that
            pass
        if isinstance(exc, OSError):
            raise GalgenError(f"{path}: cannot write ({_reason(exc)})") from None
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of an ``.npz`` cache file, or None when it is missing or unreadable.

    An unreadable file (torn by a crash or a full disk before writes were atomic, or edited) is
    reported on stderr, removed and recomputed by the caller — a cache never makes a run fail.
    """
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, OSError, ...
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"galgen: ignoring unreadable cache file {path} ({why}); computing it again",
              file=sys.stderr)  # fmt: skip
        path.unlink(missing_ok=True)
        return None


def write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` cache file atomically."""
    with atomic_write(path) as tmp:
        np.savez(tmp, **arrays)

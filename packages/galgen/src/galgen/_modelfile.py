"""Portable model files: one file holding a trained model's EMA weights and its configuration.

Layout (``.galgen``), all written by this module only::

    b"GALGEN-MODEL\\n"                 magic, 13 bytes
    <8-byte little-endian n>          length of the header
    <n bytes UTF-8 JSON header>       format, format_version, config, versions, payload_bytes, sha256
    <payload>                         the EMA parameters: msgpack (flax.serialization), no pickle

Reading never executes code from the file: the header is JSON and the payload msgpack of plain
arrays. ``sha256`` covers the header (without itself, as canonical JSON) and the payload, so a
truncated, corrupted or edited file is refused by name; so is a file of another format version or
one whose weights do not fit the network its configuration builds. The configuration keeps no
absolute paths (no training-data directory, no host name).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from galgen._errors import GalgenError
from galgen._io import atomic_write

MAGIC = b"GALGEN-MODEL\n"
FORMAT = "galgen-model"
FORMAT_VERSION = 1
#: Run-config keys that describe the training machine or data location, not the model.
_DROPPED_KEYS = ("data_dir",)
_DROPPED_ENV_KEYS = ("host",)


def _digest(header: Mapping[str, Any], payload: bytes) -> str:
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    h.update(payload)
    return h.hexdigest()


def _versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out = {}
    for d in ("galgen", "gen-backbones", "diffusion-core", "meanflow", "ode-samplers", "jax"):
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = None
    return out


def portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config without the data path and host (what a model file stores)."""
    cfg = {k: v for k, v in config.items() if k not in _DROPPED_KEYS}
    if isinstance(cfg.get("environment"), Mapping):
        cfg["environment"] = {
            k: v for k, v in cfg["environment"].items() if k not in _DROPPED_ENV_KEYS
        }
    return json.loads(json.dumps(cfg))  # plain JSON types only


def write_model(path: str | Path, config: Mapping[str, Any], params: Any) -> Path:
    """Write ``params`` (a pytree of arrays) and ``config`` as one model file (atomic)."""
    import jax
    from flax import serialization

    path = Path(path)
    payload = serialization.msgpack_serialize(jax.tree.map(np.asarray, params))
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": portable_config(config),
        "versions": _versions(),
        "payload_bytes": len(payload),
    }
    header["sha256"] = _digest(header, payload)
    head = json.dumps(header).encode()
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        f.write(payload)
    return path


def read_model(path: str | Path) -> tuple[dict[str, Any], Any]:
    """(config, EMA params) of a model file, verified; a bad file raises ``GalgenError`` naming it."""
    import jax
    from flax import serialization

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GalgenError(f"{path}: cannot read model file ({exc.strerror})") from None
    if not raw.startswith(MAGIC):
        raise GalgenError(f"{path}: not a galgen model file (no {MAGIC[:-1].decode()} header)")
    off = len(MAGIC)
    if len(raw) < off + 8:
        raise GalgenError(f"{path}: truncated model file (header length missing)")
    (n,) = struct.unpack("<Q", raw[off : off + 8])
    off += 8
    try:
        header = json.loads(raw[off : off + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise GalgenError(
            f"{path}: corrupted or truncated model file (unreadable header)"
        ) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise GalgenError(f"{path}: not a galgen model file (header format is not {FORMAT!r})")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise GalgenError(
            f"{path}: model file format version {version}, this galgen reads version "
            f"{FORMAT_VERSION} (written by galgen {header.get('versions', {}).get('galgen')}); "
            "re-export it with a matching galgen"
        )
    payload = raw[off + n :]
    if len(payload) != header.get("payload_bytes"):
        raise GalgenError(
            f"{path}: truncated or padded model file ({len(payload)} weight bytes, header says "
            f"{header.get('payload_bytes')})"
        )
    want = header.pop("sha256", None)
    if want != _digest(header, payload):
        raise GalgenError(f"{path}: checksum mismatch: the model file is corrupted or was edited")
    try:
        params = serialization.msgpack_restore(payload)
    except Exception:
        raise GalgenError(f"{path}: the weights cannot be decoded") from None
    cfg = header["config"]
    _check_fits(path, cfg, params)
    return cfg, jax.tree.map(np.asarray, params)


def _check_fits(path: Path, cfg: Mapping[str, Any], params: Any) -> None:
    """The weights must have the tree and shapes of the network the config builds."""
    import jax

    from galgen._simulator import _build

    try:
        like = jax.eval_shape(_build(cfg).init, jax.random.key(0))
    except (KeyError, TypeError, ValueError) as exc:
        raise GalgenError(f"{path}: its configuration does not build a network ({exc})") from None
    want = jax.tree_util.tree_flatten_with_path(like)[0]
    have = jax.tree_util.tree_flatten_with_path(params)[0]
    shapes = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in have}
    for k, v in want:
        name = jax.tree_util.keystr(k)
        if shapes.get(name) != tuple(v.shape):
            raise GalgenError(
                f"{path}: weight {name} has shape {shapes.get(name)}, the configured network "
                f"needs {tuple(v.shape)}"
            )
    if len(have) != len(want):
        raise GalgenError(f"{path}: {len(have)} weight arrays, the network has {len(want)}")

"""Seeded, resumable, prefetching batch iterator over a :class:`Dataset`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._dataset import Dataset, _image_error, _nonfinite_rows, _redshift_error, open_split
from ._schema import GalaxiesMLFormatError

__all__ = [
    "batches",
    "batches_per_epoch",
    "check_balance_power",
    "epoch_permutation",
    "redshift_weights",
]

Batch = dict[str, np.ndarray]


def batches_per_epoch(n: int, batch_size: int, drop_last: bool = True) -> int:
    """Number of batches in one epoch of ``n`` galaxies."""
    return n // batch_size if drop_last else -(-n // batch_size)


def epoch_permutation(
    n: int, seed: int, epoch: int, shuffle: bool = True, weights: np.ndarray | None = None
) -> np.ndarray:
    """Order of the galaxies in ``epoch``: a permutation drawn from ``(seed, epoch)`` only.

    With ``weights`` ``(n,)`` (non-negative, not all zero): ``n`` draws *with replacement*, galaxy
    ``i`` with probability ``weights[i] / sum(weights)``, again from ``(seed, epoch)`` only
    (``shuffle`` is then ignored)."""
    if weights is not None:
        p = np.asarray(weights, dtype=np.float64)
        rng = np.random.default_rng([int(seed), 1, int(epoch)])
        return rng.choice(n, size=n, replace=True, p=p / p.sum()).astype(np.int64)
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([int(seed), 0, int(epoch)]).permutation(n)


def check_balance_power(power: Any) -> float:
    """``power`` of :func:`redshift_weights` as a float, or an error naming the allowed range:
    ``TypeError`` for a non-number (a bool or a string too), ``ValueError`` outside [0, 1]."""
    if isinstance(power, bool) or not isinstance(power, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"redshift_weights power must be a number in [0, 1] (0: no rebalancing), got {power!r}"
        )
    if not 0.0 <= float(power) <= 1.0:
        raise ValueError(
            f"redshift_weights power must be in [0, 1] (0: no rebalancing), got {power!r}"
        )
    return float(power)


def redshift_weights(z: np.ndarray, power: float, bin_width: float = 0.25) -> np.ndarray:
    """Sampling weights ``(N,)`` that flatten the redshift distribution by ``power``.

    Galaxy ``i`` in a redshift bin of ``bin_width`` (bins from 0) holding ``n_i`` galaxies gets
    weight ``n_i ** -power``, scaled to mean 1: ``power = 0`` draws every galaxy alike (the data's
    own redshift distribution), ``power = 1`` every occupied bin alike (rare redshifts, e.g.
    z >= 3, are seen as often as common ones), values between temper the rebalancing. Pass the
    result as ``batches(..., weights=...)``.
    """
    z = np.asarray(z, dtype=np.float64)
    power = check_balance_power(power)
    if not bin_width > 0:
        raise ValueError(f"redshift_weights: bin_width must be > 0, got {bin_width}")
    if z.ndim != 1 or len(z) == 0 or not np.all(np.isfinite(z)):
        raise ValueError("redshift_weights: z must be a non-empty 1-D array of finite redshifts")
    b = np.floor(z / bin_width).astype(np.int64)
    _, inv, counts = np.unique(b, return_inverse=True, return_counts=True)
    w = counts[inv].astype(np.float64) ** -float(power)
    return w / w.mean()


def _make_batch(
    ds: Dataset,
    g: int,
    nb: int,
    batch_size: int,
    seed: int,
    shuffle: bool,
    transform: Callable[[np.ndarray], np.ndarray] | None,
    perm_cache: dict[int, np.ndarray],
    shard: tuple[int, int] = (0, 1),
    weights: np.ndarray | None = None,
) -> Batch:
    epoch, pos = divmod(g, nb)
    if epoch not in perm_cache:
        perm_cache.clear()
        perm_cache[epoch] = epoch_permutation(len(ds), seed, epoch, shuffle, weights)
    idx = perm_cache[epoch][pos * batch_size : (pos + 1) * batch_size]
    if shard[1] > 1:  # this process's contiguous block of the global batch
        rows = len(idx) // shard[1]
        idx = idx[shard[0] * rows : (shard[0] + 1) * rows]
    image = ds._read(idx)  # sorted reads for h5py; a single gather + transpose for memmaps
    z = ds.redshift[idx]
    # a bad value must stop the run here, named, not surface later as a non-finite loss
    msg = _redshift_error(ds.path, z, idx) or _image_error(ds.path, idx[_nonfinite_rows(image)])
    if msg is not None:
        raise GalaxiesMLFormatError(f"{msg} (batch {g})")
    if transform is not None:
        image = np.asarray(transform(image), dtype=np.float32)
    return {"image": image, "redshift": np.asarray(z, dtype=np.float32)}


def batches(
    dataset: Dataset | str | Path,
    batch_size: int,
    *,
    seed: int,
    shuffle: bool = True,
    drop_last: bool = True,
    start: int = 0,
    transform: object | None = None,
    prefetch: int = 2,
    epochs: int | None = None,
    threads: int = 1,
    shard: tuple[int, int] | None = None,
    weights: np.ndarray | None = None,
) -> Iterator[Batch]:
    """Iterate ``{"image": (B, H, W, 5) float32, "redshift": (B,) float32}`` batches, forever by default.

    Global batch ``g`` belongs to epoch ``e = g // batches_per_epoch`` at position
    ``p = g % batches_per_epoch``; epoch ``e`` visits the galaxies in ``epoch_permutation(N, seed, e)``.
    So ``batches(..., start=g)`` yields exactly what ``batches(..., start=0)`` yields from its
    ``g``-th batch on — pass the optimizer step to resume mid-epoch.

    Args:
        dataset: a :class:`Dataset` or a path to open.
        batch_size: B.
        seed: shuffling seed.
        shuffle: if False, every epoch is in file order.
        drop_last: drop the final short batch of an epoch (else it is yielded with fewer rows).
        start: global batch index (across epochs) to begin at.
        transform: applied to each image batch: an object with ``.forward`` (e.g.
            :class:`ArcsinhStretch`) or a callable ``(B,H,W,5) -> (B,H,W,5)``.
        prefetch: batches prepared ahead by background threads (0 = synchronous, in the caller).
        epochs: stop after this many epochs in total (counting from global batch 0); None = forever.
        threads: background threads preparing batches (results are identical for any count).
        shard: ``(i, n)``: yield only block ``i`` of ``n`` equal, contiguous blocks of every global
            batch (rows ``i * B/n`` to ``(i + 1) * B/n``), e.g. ``(jax.process_index(),
            jax.process_count())`` in multi-process training. Concatenating the blocks over ``i``
            gives exactly the unsharded batch ``g`` for every ``g``, so the global batch sequence
            does not depend on ``n``. ``B`` must be divisible by ``n``.
        weights: ``(N,)`` per-galaxy sampling weights (e.g. :func:`redshift_weights`): each
            epoch is then ``N`` draws with replacement in proportion to them (see
            :func:`epoch_permutation`), still a function of ``(seed, epoch)`` only, so resuming
            and sharding work as without. None: every galaxy once per epoch.

    Raises:
        GalaxiesMLFormatError: (when the batch is made) a galaxy in it has a NaN or inf pixel or
            a redshift outside ``REDSHIFT_RANGE``; the message names the file, rows and batch.
    """
    ds = dataset if isinstance(dataset, Dataset) else open_split(dataset)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shard = _check_shard(shard, batch_size, drop_last, len(ds))
    nb = batches_per_epoch(len(ds), batch_size, drop_last)
    if nb == 0:
        raise ValueError(
            f"{ds.path}: {len(ds)} galaxies give no full batch of batch_size={batch_size} with drop_last=True"
        )
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    fn = getattr(transform, "forward", transform)
    if fn is not None and not callable(fn):
        raise TypeError(
            f"transform must have .forward or be callable, got {type(transform).__name__}"
        )
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(ds),):
            raise ValueError(
                f"{ds.path}: weights must have one value per galaxy, shape ({len(ds)},), "
                f"got {weights.shape}"
            )
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise ValueError("weights must be finite, non-negative and not all zero")
    stop = None if epochs is None else int(epochs) * nb
    args = (ds, nb, batch_size, seed, shuffle, fn, shard, weights)
    if prefetch <= 0:
        return _sync_iter(start, stop, args)
    return _prefetch_iter(start, stop, args, prefetch, max(1, int(threads)))


def _check_shard(shard: object, batch_size: int, drop_last: bool, n: int) -> tuple[int, int]:
    """``shard`` as ``(i, n)`` ints, or a ValueError naming ``shard`` and what was expected."""
    if shard is None:
        return (0, 1)
    try:
        i, count = shard  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (index, count), got {shard!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (i, count)):
        raise ValueError(f"shard must be a pair of ints (index, count), got {shard!r}")
    i, count = int(i), int(count)
    if count < 1 or not 0 <= i < count:
        raise ValueError(f"shard=({i}, {count}): expected count >= 1 and 0 <= index < count")
    if batch_size % count:
        raise ValueError(
            f"shard=({i}, {count}): batch_size={batch_size} is not divisible by the shard count "
            f"{count} (every shard must hold batch_size / count rows)"
        )
    if count > 1 and not drop_last and n % batch_size:
        raise ValueError(
            f"shard=({i}, {count}) with drop_last=False: the last batch of each epoch has "
            f"{n % batch_size} rows, which do not split into {count} equal shards; use "
            "drop_last=True"
        )
    return (i, count)


def _sync_iter(start: int, stop: int | None, args: tuple, step: int = 1) -> Iterator[Batch]:
    ds, nb, bs, seed, shuffle, fn, shard, weights = args
    cache: dict[int, np.ndarray] = {}
    g = start
    while stop is None or g < stop:
        yield _make_batch(ds, g, nb, bs, seed, shuffle, fn, cache, shard, weights)
        g += step


_DONE = object()


def _prefetch_iter(
    start: int, stop: int | None, args: tuple, depth: int, threads: int
) -> Iterator[Batch]:
    """Batches made by ``threads`` background threads; thread k makes global batches start + k + j·threads.

    NumPy releases the GIL while gathering and transposing, so threads use several cores; the
    consumer takes the per-thread queues in turn, so the order is exactly that of ``_sync_iter``.
    """
    queues = [queue.Queue(maxsize=max(1, -(-depth // threads))) for _ in range(threads)]
    halt = threading.Event()

    def put(q: queue.Queue, item: object) -> bool:
        while not halt.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work(k: int) -> None:
        q = queues[k]
        try:
            for b in _sync_iter(start + k, stop, args, step=threads):
                if not put(q, b):
                    return
            put(q, _DONE)
        except BaseException as e:  # handed to the consumer
            put(q, e)

    pool = [
        threading.Thread(target=work, args=(k,), name=f"galaxiesml-prefetch-{k}", daemon=True)
        for k in range(threads)
    ]
    for t in pool:
        t.start()
    try:
        k = 0
        while True:
            item = queues[k].get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            k = (k + 1) % threads
    finally:
        halt.set()
        for t in pool:
            t.join(timeout=5)

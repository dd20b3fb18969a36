"""batches(): reproducible by seed, exact mid-epoch resume, epochs, transforms and smoothing."""

from __future__ import annotations

from itertools import islice

import h5py
import numpy as np
import pytest
from galaxiesml_data import (
    ArcsinhStretch,
    GalaxiesMLFormatError,
    batches,
    batches_per_epoch,
    check_balance_power,
    epoch_permutation,
    open_split,
    redshift_weights,
    write_split,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """37 galaxies whose pixels encode their index, so a batch reveals which rows it holds."""
    n = 37
    img = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None], (n, 4, 4, 5)).copy()
    img += np.arange(5, dtype=np.float32) * 1000  # band b adds 1000 b
    z = np.linspace(0.1, 3.0, n).astype(np.float32)
    path = tmp_path_factory.mktemp("loader") / "small.hdf5"
    write_split(path, img, z, {"object_id": np.arange(n, dtype=np.int64)})
    return open_split(path)


def _rows(batch):
    return batch["image"][:, 0, 0, 0].astype(int)


def _equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["redshift"], y["redshift"])


def test_batches_cover_each_epoch_once_in_seeded_order(small):
    nb = batches_per_epoch(37, 8)
    assert nb == 4
    got = list(islice(batches(small, 8, seed=5), 3 * nb))
    for e in range(3):
        rows = np.concatenate([_rows(b) for b in got[e * nb : (e + 1) * nb]])
        np.testing.assert_array_equal(rows, epoch_permutation(37, 5, e)[: nb * 8])
        assert len(set(rows)) == nb * 8
    b = got[0]
    assert b["image"].shape == (8, 4, 4, 5) and b["image"].dtype == np.float32
    assert b["redshift"].shape == (8,) and b["redshift"].dtype == np.float32
    np.testing.assert_array_equal(
        b["redshift"], small.redshift[_rows(b)]
    )  # labels follow their images
    np.testing.assert_array_equal(
        b["image"][0, 0, 0], _rows(b)[0] + 1000 * np.arange(5)
    )  # channels-last
    # epochs differ, seeds differ
    assert not np.array_equal(_rows(got[0]), _rows(got[nb]))
    assert not np.array_equal(_rows(got[0]), _rows(next(batches(small, 8, seed=6))))


def test_same_seed_same_batches_and_exact_resume(small):
    full = list(islice(batches(small, 8, seed=1), 11))
    _equal(full, list(islice(batches(small, 8, seed=1, prefetch=0), 11)))
    _equal(
        full,
        list(islice(batches(small, 8, seed=1, prefetch=5, threads=3), 11)),
    )
    for start in (3, 4, 9):  # mid-epoch, epoch boundary, a later epoch
        _equal(
            full[start:],
            list(islice(batches(small, 8, seed=1, start=start), 11 - start)),
        )


def test_epochs_limit_drop_last_and_no_shuffle(small):
    got = list(batches(small, 8, seed=0, shuffle=False, drop_last=False, epochs=2, threads=3))
    assert [len(b["redshift"]) for b in got] == [8, 8, 8, 8, 5] * 2
    np.testing.assert_array_equal(np.concatenate([_rows(b) for b in got[:5]]), np.arange(37))
    assert len(list(batches(small, 8, seed=0, epochs=1, start=2))) == 2
    with pytest.raises(ValueError, match="batch_size=64"):
        batches(small, 64, seed=0)


def test_transform_in_batches_and_redshifts_passed_unchanged(small):
    t = ArcsinhStretch([1, 2, 3, 4, 5], 2.0)
    raw = next(batches(small, 8, seed=2))
    out = next(batches(small, 8, seed=2, transform=t))
    np.testing.assert_allclose(out["image"], t.forward(raw["image"]), rtol=1e-6)
    np.testing.assert_allclose(t.inverse(out["image"]), raw["image"], rtol=1e-5, atol=1e-5)
    # label smoothing belongs to the objectives (diffusion_core.smooth_redshift), never the loader
    np.testing.assert_array_equal(out["redshift"], raw["redshift"])
    with pytest.raises(TypeError, match="label_smoothing"):
        batches(small, 8, seed=2, label_smoothing=0.05)
    lam = next(batches(small, 8, seed=2, transform=lambda x: x * 2))
    np.testing.assert_array_equal(lam["image"], raw["image"] * 2)


def test_chunked_file_reads_match_memmap(small, tmp_path):
    chunked = tmp_path / "chunked.hdf5"
    with h5py.File(small.path) as src, h5py.File(chunked, "w") as dst:
        dst.create_dataset("image", data=src["image"][()], chunks=(4, 5, 4, 4), compression="gzip")
        dst["specz_redshift"] = src["specz_redshift"][()]
    other = open_split(chunked)
    assert other._mmap is None and small._mmap is not None
    _equal(list(islice(batches(small, 8, seed=9), 6)), list(islice(batches(other, 8, seed=9), 6)))


def test_path_input_and_errors(small):
    b = next(batches(str(small.path), 4, seed=0, shuffle=False))
    np.testing.assert_array_equal(_rows(b), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="transform"):
        batches(small, 4, seed=0, transform=3)
    with pytest.raises(ValueError, match="start"):
        batches(small, 4, seed=0, start=-1)


def test_worker_errors_reach_the_consumer(small):
    def boom(x):
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        next(batches(small, 4, seed=0, transform=boom))


@pytest.mark.parametrize("bad", ["pixel", "redshift"])
def test_a_bad_value_in_a_batch_names_file_row_and_batch(small, tmp_path, bad):
    img, z = small.images[:], small.redshift.copy()
    if bad == "pixel":
        img[11, 2, 3, 4] = np.nan
    else:
        z[11] = -99.0
    path = write_split(tmp_path / "bad.hdf5", img, z)
    with pytest.raises(GalaxiesMLFormatError, match=r"bad.hdf5: .* row 11\b.*\(batch 2\)"):
        list(batches(path, 4, seed=0, shuffle=False, epochs=1))


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_shards_concatenate_to_the_global_batches(small, n):
    """Multi-process training: shard i of n holds block i of every global batch g, so the
    blocks over i concatenate to exactly the unsharded batches (any start, epoch, prefetch)."""
    g_total = 11  # crosses two epoch boundaries (4 batches per epoch)
    full = list(islice(batches(small, 8, seed=2), g_total))
    for start in (0, 3, 5):
        shards = [
            list(
                islice(
                    batches(
                        small, 8, seed=2, start=start, shard=(i, n), prefetch=i, threads=1 + i % 2
                    ),
                    g_total - start,
                )
            )
            for i in range(n)
        ]
        for g in range(start, g_total):
            parts = [s[g - start] for s in shards]
            assert all(p["image"].shape[0] == 8 // n for p in parts)
            for key in ("image", "redshift"):
                np.testing.assert_array_equal(
                    np.concatenate([p[key] for p in parts]), full[g][key], err_msg=f"{g} {key}"
                )


@pytest.mark.parametrize(
    ("shard", "match"),
    [
        ((0, 3), "batch_size=8 is not divisible by the shard count 3"),
        ((2, 2), r"shard=\(2, 2\): expected count >= 1 and 0 <= index < count"),
        ((-1, 2), r"shard=\(-1, 2\)"),
        ((0, 0), r"shard=\(0, 0\)"),
        ((0.0, 2), "shard must be a pair of ints"),
        (3, r"shard must be a pair \(index, count\)"),
    ],
)
def test_bad_shard_is_named(small, shard, match):
    with pytest.raises(ValueError, match=match):
        batches(small, 8, seed=0, shard=shard)


def test_shard_without_drop_last_needs_even_last_batch(small):
    with pytest.raises(ValueError, match=r"shard=\(0, 2\) with drop_last=False"):
        batches(small, 8, seed=0, shard=(0, 2), drop_last=False)  # 37 % 8 = 5 rows left


def test_redshift_weights_flatten_the_bins_by_their_power():
    # bins of 0.25: three galaxies in [0, 0.25), one in [1, 1.25), two in [3.5, 3.75)
    z = np.array([0.1, 0.2, 0.05, 1.1, 3.6, 3.7])
    np.testing.assert_allclose(redshift_weights(z, 0.0), np.ones(6))
    w1 = redshift_weights(z, 1.0)
    # power 1: every occupied bin carries the same total weight (2 of the mean-1 total of 6)
    for lo in (0.0, 1.0, 3.5):
        np.testing.assert_allclose(w1[(z >= lo) & (z < lo + 0.25)].sum(), 2.0)
    # power 1/2: weight ∝ n ** -0.5, mean 1
    want = np.array([3, 3, 3, 1, 2, 2], float) ** -0.5
    np.testing.assert_allclose(redshift_weights(z, 0.5), want / want.mean())
    # a coarser bin puts 3.6 and 1.1 together with nothing else: [0, 1), [1, 2), [3, 4)
    np.testing.assert_allclose(redshift_weights(z, 1.0, bin_width=1.0), w1)
    for bad, match in ((1.5, "power must be in"), (-0.1, "power must be in")):
        with pytest.raises(ValueError, match=match):
            redshift_weights(z, bad)
    for bad in (True, "0.5", None):  # float() would take the first two; only numbers are powers
        with pytest.raises(TypeError, match=r"power must be a number in \[0, 1\]"):
            redshift_weights(z, bad)
    assert check_balance_power(np.float32(0.5)) == 0.5 and check_balance_power(1) == 1.0
    with pytest.raises(ValueError, match="finite"):
        redshift_weights(np.array([0.1, np.nan]), 0.5)


def test_weighted_batches_draw_in_proportion_resume_and_shard_exactly(small):
    """With weights, each epoch is 37 draws with replacement ∝ the weights (a zero-weight galaxy is
    never drawn), from (seed, epoch) alone: resuming and sharding give the same batches."""
    w = np.zeros(37)
    w[:5] = [1, 1, 1, 1, 4]  # galaxy 4 four times as likely as each of 0-3
    nb = batches_per_epoch(37, 8)
    full = list(islice(batches(small, 8, seed=3, weights=w), 50 * nb))
    rows = np.concatenate([_rows(b) for b in full])
    assert set(rows) <= set(range(5))
    freq = np.bincount(rows, minlength=5) / rows.size
    np.testing.assert_allclose(freq, np.array([1, 1, 1, 1, 4]) / 8, atol=0.03)  # 1,600 draws
    for b in full[:6]:
        np.testing.assert_array_equal(b["redshift"], small.redshift[_rows(b)])
    for e in (0, 7):
        got = np.concatenate([_rows(b) for b in full[e * nb : (e + 1) * nb]])
        np.testing.assert_array_equal(got, epoch_permutation(37, 3, e, weights=w)[: nb * 8])
    _equal(full[5:11], list(islice(batches(small, 8, seed=3, weights=w, start=5), 6)))
    halves = [list(islice(batches(small, 8, seed=3, weights=w, shard=(i, 2)), 6)) for i in (0, 1)]
    for g in range(6):
        np.testing.assert_array_equal(
            np.concatenate([halves[0][g]["image"], halves[1][g]["image"]]), full[g]["image"]
        )
    # without weights an epoch is a permutation again (8 distinct rows in a batch)
    assert len(set(_rows(next(batches(small, 8, seed=3))))) == 8


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.ones(36), r"small.hdf5: weights must have one value per galaxy, shape \(37,\)"),
        (np.r_[-1.0, np.ones(36)], "non-negative"),
        (np.zeros(37), "not all zero"),
        (np.r_[np.nan, np.ones(36)], "finite"),
    ],
)
def test_bad_weights_are_named(small, weights, match):
    with pytest.raises(ValueError, match=match):
        batches(small, 8, seed=0, weights=weights)

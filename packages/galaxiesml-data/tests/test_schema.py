"""Reading files in the published GalaxiesML layout, the writer, errors and the validator."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from galaxiesml_data import (
    BANDS,
    CATALOG_COLUMNS,
    GalaxiesMLFormatError,
    check_values,
    file_name,
    find_split,
    open_split,
    validate,
    write_split,
)


def test_file_names_match_published_ones():
    assert file_name("training") == "5x64x64_training_with_morphology.hdf5"
    assert file_name("testing", 127) == "5x127x127_testing_with_morphology.hdf5"
    assert file_name("validation", 32) == "5x32x32_validation_with_morphology.hdf5"
    with pytest.raises(ValueError, match="split"):
        file_name("train")


def test_find_split_picks_the_size_asked_for_and_names_ambiguity(tmp_path):
    for size in (64, 127):
        (tmp_path / file_name("testing", size)).write_bytes(b"")
    (tmp_path / file_name("training", 64)).write_bytes(b"")
    assert find_split(tmp_path, "training") == tmp_path / file_name("training", 64)
    assert find_split(tmp_path, "testing", 64) == tmp_path / file_name("testing", 64)
    assert find_split(tmp_path, "testing", size=127).name.startswith("5x127x127")
    with pytest.raises(ValueError, match="5x127x127_testing.*size="):
        find_split(tmp_path, "testing")
    with pytest.raises(FileNotFoundError, match="5x32x32_testing"):
        find_split(tmp_path, "testing", 32)
    with pytest.raises(FileNotFoundError, match="validation"):
        find_split(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_split(tmp_path / "nowhere", "testing")


def test_synthetic_schema_round_trip(synth32):
    assert {k: p.name for k, p in synth32.items()} == {
        s: file_name(s, 32) for s in ("training", "validation", "testing")
    }
    for split, n in (("training", 240), ("validation", 40), ("testing", 24)):
        ds = open_split(synth32[split])
        assert len(ds) == n and ds.images.shape == (n, 32, 32, 5)
        with h5py.File(synth32[split]) as f:
            missing = [k for k in CATALOG_COLUMNS if k not in f]
            assert not missing, missing
            raw = f["image"][()]
            assert raw.shape == (n, 5, 32, 32) and raw.dtype == np.float32
            for k in CATALOG_COLUMNS:
                assert f[k].shape == (n,), k
        # channels-last view equals the on-disk channels-first array transposed
        idx = np.array([7, 0, 3, 3])
        np.testing.assert_array_equal(ds.images[idx], raw[idx].transpose(0, 2, 3, 1))
        np.testing.assert_array_equal(ds.images[5], raw[5].transpose(1, 2, 0))
        np.testing.assert_array_equal(ds.images[-1], raw[-1].transpose(1, 2, 0))
        np.testing.assert_array_equal(ds.images[2:9:3], raw[2:9:3].transpose(0, 2, 3, 1))
        assert ds.images[idx].dtype == np.float32
        assert ds.redshift.dtype == np.float32 and np.all((ds.redshift > 0) & (ds.redshift <= 4))
        assert ds.object_id.dtype == np.int64 and len(np.unique(ds.object_id)) == n
        np.testing.assert_array_equal(ds.columns["object_id"], ds.object_id)
        assert validate(synth32[split]).ok
    # object ids are unique across splits too
    ids = np.concatenate([open_split(p).object_id for p in synth32.values()])
    assert len(np.unique(ids)) == len(ids)


def _write_real_layout(path: Path, n: int = 6, size: int = 8, chunked: bool = False) -> np.ndarray:
    """A file laid out like the published ones, written by hand with h5py (not by the package)."""
    rng = np.random.default_rng(0)
    img = rng.standard_normal((n, 5, size, size)).astype(np.float32)
    img[:, 2] *= 10.0  # band i differs from the others
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=img, chunks=(1, 5, size, size) if chunked else None)
        f.create_dataset("specz_redshift", data=np.linspace(0.05, 3.5, n).astype(np.float64))
        f.create_dataset("object_id", data=np.arange(100, 100 + n, dtype=np.int64))
        f.create_dataset("specz_name", data=np.array([f"SDSS-{i}".encode() for i in range(n)]))
        f.create_dataset(
            "coord", data=[f"{i} {i}".encode() for i in range(n)], dtype=h5py.string_dtype("ascii")
        )
        f.create_dataset("x_coord_x", data=np.zeros(2))  # leftover two-value array, not per galaxy
        f.create_dataset("i_sersic_index", data=np.full(n, 4.0, dtype=np.float32))
        f.create_group("unexpected_group")
        f.attrs["note"] = "extra attribute"
    return img


@pytest.mark.parametrize("chunked", [False, True])
def test_hand_written_real_layout_opens(tmp_path, chunked):
    path = tmp_path / "real.hdf5"
    img = _write_real_layout(path, chunked=chunked)
    ds = open_split(path)
    assert (ds._mmap is None) == chunked  # contiguous files are memory-mapped, chunked ones are not
    assert ds.images.shape == (6, 8, 8, 5)
    got = ds.images[np.array([4, 1, 4])]
    np.testing.assert_array_equal(got, img[[4, 1, 4]].transpose(0, 2, 3, 1))
    assert np.argmax(got.std(axis=(0, 1, 2))) == BANDS.index("i")  # channel order preserved
    np.testing.assert_allclose(ds.redshift, np.linspace(0.05, 3.5, 6).astype(np.float32))
    np.testing.assert_array_equal(ds.object_id, np.arange(100, 106))
    assert ds.columns["specz_name"][2] == "SDSS-2"  # bytes decoded
    assert ds.columns["coord"][3] == "3 3"
    assert "x_coord_x" not in ds.columns and "i_sersic_index" in ds.columns
    with pytest.raises(KeyError, match="no per-galaxy column .nope."):
        ds.columns["nope"]
    with pytest.raises(IndexError):
        ds.images[6]
    assert validate(path).ok


def test_missing_object_id_falls_back_to_arange(tmp_path):
    path = write_split(tmp_path / "gen.hdf5", np.zeros((3, 4, 4, 5)), np.array([0.1, 0.2, 0.3]))
    ds = open_split(path)
    np.testing.assert_array_equal(ds.object_id, [0, 1, 2])
    with h5py.File(path) as f:
        assert f["image"].shape == (3, 5, 4, 4)


def test_errors_name_file_and_key(tmp_path):
    missing = tmp_path / "absent.hdf5"
    with pytest.raises(FileNotFoundError, match="absent.hdf5"):
        open_split(missing)
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(GalaxiesMLFormatError, match="notes.hdf5.*not an HDF5"):
        open_split(text)
    nokey = tmp_path / "nokey.hdf5"
    with h5py.File(nokey, "w") as f:
        f["image"] = np.zeros((2, 5, 4, 4), np.float32)
    with pytest.raises(GalaxiesMLFormatError, match="nokey.hdf5.*'specz_redshift'"):
        open_split(nokey)
    lastc = tmp_path / "channels_last.hdf5"
    with h5py.File(lastc, "w") as f:
        f["image"] = np.zeros((2, 4, 4, 5), np.float32)
        f["specz_redshift"] = np.zeros(2)
    with pytest.raises(GalaxiesMLFormatError, match=r"channels_last.hdf5.*'image'.*\(2, 4, 4, 5\)"):
        open_split(lastc)
    badz = tmp_path / "badz.hdf5"
    with h5py.File(badz, "w") as f:
        f["image"] = np.zeros((2, 5, 4, 4), np.float32)
        f["specz_redshift"] = np.zeros(3)
    with pytest.raises(GalaxiesMLFormatError, match="badz.hdf5.*'specz_redshift'"):
        open_split(badz)
    # validate reports instead of raising
    for p, needle in ((text, "not an HDF5"), (nokey, "specz_redshift"), (lastc, "(N, 5, H, W)")):
        rep = validate(p)
        assert not rep.ok and needle in str(rep)


def test_validate_counts_bad_values_chunk_by_chunk(tmp_path):
    path = tmp_path / "bad.hdf5"
    img = np.ones((10, 5, 4, 4), np.float32)
    img[0, 1, 2, 3] = np.nan
    img[9, 4, 0, 0] = np.nan
    img[5, 0, 1, 1] = np.inf
    img[3, 2, 0, 0] = -7.0
    z = np.array([0.5, np.nan, 5.0, -0.1, np.inf, 1, 1, 1, 1, 1])
    with h5py.File(path, "w") as f:
        f["image"] = img
        f["specz_redshift"] = z
        f["object_id"] = np.arange(9)  # wrong length
    rep = validate(path, chunk=3)
    assert (rep.nan_pixels, rep.inf_pixels) == (2, 1)
    assert (rep.nan_redshift, rep.inf_redshift, rep.out_of_range_redshift) == (1, 1, 2)
    assert rep.band_min == [1.0, 1.0, -7.0, 1.0, 1.0] and rep.band_max == [1.0] * 5
    assert not rep.ok and "object_id" in str(rep)


def _file(path: Path, n: int = 6, chunks: bool = False) -> Path:
    img = np.ones((n, 5, 4, 4), np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=img, chunks=(1, 5, 4, 4) if chunks else None)
        f["specz_redshift"] = np.linspace(0.1, 2.0, n)
    return path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "case, culprit",
    [
        ("nan_pixel", r"'image' has NaN or inf pixels in row 4\b"),
        ("inf_pixels", r"'image' has NaN or inf pixels in row 0, 1, 2, 3, 4 and 1 more"),
        ("sentinel", r"'specz_redshift' is NaN, inf or outside \[0, 4\] in row 2 \(-99\)"),
        ("nan_redshift", r".* row 0 \(nan\), 5 \(nan\)"),
        ("high_redshift", r".* row 3 \(7\.5\) \(1 of 6 galaxies\)"),
    ],
)
def test_check_values_names_file_key_and_rows(tmp_path, case, culprit):
    path = _file(tmp_path / f"{case}.hdf5")
    with h5py.File(path, "r+") as f:
        if case == "nan_pixel":
            f["image"][4, 3, 1, 2] = np.nan
        elif case == "inf_pixels":
            f["image"][...] = np.inf
        elif case == "sentinel":
            f["specz_redshift"][2] = -99.0
        elif case == "nan_redshift":
            f["specz_redshift"][[0, 5]] = np.nan
        else:
            f["specz_redshift"][3] = 7.5
    before = _snapshot(tmp_path)
    with pytest.raises(GalaxiesMLFormatError, match=f"{case}.hdf5: " + culprit):
        check_values(path, chunk=2)  # the bad rows are found across chunk boundaries
    assert _snapshot(tmp_path) == before
    check_values(_file(tmp_path / "good.hdf5"))  # a clean file passes
    with pytest.raises(GalaxiesMLFormatError, match="empty.hdf5: key 'image' holds 0 galaxies"):
        check_values(_file(tmp_path / "empty.hdf5", n=0))


@pytest.mark.parametrize("case", ["empty", "truncated", "garbage_tail", "corrupt_chunk"])
def test_empty_and_damaged_files_are_one_sentence_naming_the_path(tmp_path, case):
    path = tmp_path / f"{case}.hdf5"
    if case == "empty":
        with h5py.File(path, "w") as f:
            f["image"] = np.zeros((0, 5, 4, 4), np.float32)
            f["specz_redshift"] = np.zeros(0)
        needle = "holds 0 galaxies; need at least 1"
        assert len(open_split(path)) == 0  # a valid (empty) split until galaxies are needed
    elif case == "corrupt_chunk":
        _file(path, n=64, chunks=True)
        with h5py.File(path, "r+") as f:  # compress so a damaged chunk fails to decode
            img = f["image"][()]
            del f["image"]
            f.create_dataset("image", data=img, chunks=(1, 5, 4, 4), compression="gzip")
        raw = bytearray(path.read_bytes())
        with h5py.File(path) as f:
            off, size = f["image"].id.get_chunk_info(10).byte_offset, 8
        raw[off : off + size] = b"\xff" * size
        path.write_bytes(bytes(raw))
        needle = "corrupt file"
    else:
        _file(path, n=64)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2] if case == "truncated" else raw[:2048] + b"\0" * 9)
        needle = "truncated or corrupt"
    with pytest.raises(GalaxiesMLFormatError) as exc:
        ds = open_split(path, min_galaxies=1)
        ds.images[:]  # a damaged chunk is found when read
    msg = str(exc.value)
    assert msg.startswith(str(path)) and needle in msg and "\n" not in msg

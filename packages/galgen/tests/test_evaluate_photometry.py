"""`galgen.evaluate` writes the photometry, image-statistics and photo-z tables with the
real-vs-real floor, and their figures; planted defects show up in the right cells.

No training: the "generated" sets are copies of the real test stamps with planted defects
(a colour cast, halved sky noise), written in the GalaxiesML schema like `galgen sample` output.
"""

import json
import re

import galgen
import h5py
import numpy as np
import pytest


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    from galaxiesml_data import open_split, sky_sigma, write_split

    root = tmp_path_factory.mktemp("ev")
    data = root / "data"
    galgen.synth(data, n_train=160, n_val=48, n_test=48, size=16, seed=0)
    test = next(data.glob("*_testing_with_morphology.hdf5"))
    ds = open_split(test)
    x, z = np.asarray(ds.images[:]), np.asarray(ds.redshift[:])
    cast = x.copy()
    cast[..., 1] *= 1.5  # r band brighter: g-r and r-i shift by 2.5 log10(1.5) = 0.44 mag
    quiet = x.copy()
    quiet[:, :4, :, 0] *= 0.5  # halve the g-band sky in the top rows (all sky at 16 px)
    quiet[:, -4:, :, 0] *= 0.5
    quiet[:, 4:-4, :4, 0] *= 0.5
    quiet[:, 4:-4, -4:, 0] *= 0.5
    gens = []
    # "cast2" has the same method as "cast" (like pMF one- and two-step): both rows must stay;
    # "cast3" has its NFE too (like one sampler on two runs): its row is named by its file;
    # "run2/cast3" also has its file's stem: both rows are named by folder/stem
    for name, imgs, method, nfe in (
        ("cast", cast, "cast", 1), ("quiet", quiet, "quiet", 1), ("cast2", x, "cast", 2),
        ("cast3", cast, "cast", 1), ("run2/cast3", quiet, "cast", 1),
    ):  # fmt: skip
        p = root / f"{name}.hdf5"
        p.parent.mkdir(exist_ok=True)
        write_split(p, imgs, z)
        with h5py.File(p, "a") as f:
            f.attrs.update(method=method, nfe=nfe)
        gens.append(p)
    out = root / "eval"
    galgen.evaluate(test, gens, out, protocol="paper", n_boot=20, seed=0)
    return {"out": out, "sky_g": sky_sigma("g"), "test": test, "gens": gens}


def test_evaluate_writes_every_table_and_figure(evaluated):
    out = evaluated["out"]
    for name in ("table1", "photometry", "imagestats", "photoz"):
        assert (out / f"{name}.md").stat().st_size > 100
        json.loads((out / f"{name}.json").read_text())
    for fig in ("colour_redshift", "radial_profiles", "pixel_histograms"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 5000
    t1 = (out / "table1.md").read_text()
    assert "| real vs real |" in t1 and "Ratio to the real-vs-real floor" in t1
    assert "| cast | 1 |" in t1 and "| cast (NFE 2) | 2 |" in t1  # same method, two rows
    c3 = f"cast [{evaluated['gens'][3].parent.name}/cast3]"  # the tmp folder's name
    assert f"| {c3} | 1 |" in t1 and "| cast [run2/cast3] | 1 |" in t1
    phot = (out / "photometry.md").read_text()
    assert phot.count("| real vs real |") == 2  # JSD and BCD tables
    assert "| real test |" in (out / "photoz.md").read_text()
    # every row of every markdown table has as many cells as its header (no bare | in a cell)
    for name in ("table1", "photometry", "imagestats", "photoz"):
        for block in (out / f"{name}.md").read_text().split("\n\n"):
            rows = [ln for ln in block.splitlines() if ln.startswith("|")]
            cells = {len(re.split(r"(?<!\\)\|", ln)) for ln in rows}
            assert len(cells) <= 1, (name, block[:200])


def test_planted_defects_land_in_the_right_cells(evaluated):
    out = evaluated["out"]
    phot = json.loads((out / "photometry.json").read_text())
    ratio = phot["ratio_to_floor"]["cast"]
    assert ratio["jsd"]["g-r"] > 3 and ratio["jsd"]["r-i"] > 3
    assert ratio["bcd"]["g-r"] > 1.5 and ratio["bcd"]["r-i"] > 1.5  # 48 galaxies: a noisy floor
    assert ratio["bcd"]["i-z"] == 0.0  # the copy's i and z bands are the real test stamps
    ims = json.loads((out / "imagestats.json").read_text())["rows"]
    off = ims["cast"]["colour_offset"]
    shift = 2.5 * np.log10(1.5)
    for v in off["g-r"]:
        assert np.isnan(v) or v == pytest.approx(shift, abs=0.15)
    assert all(abs(v) < 1e-9 for v in off["i-z"] if not np.isnan(v))
    assert ims["quiet"]["sky_ratio"][0] == pytest.approx(0.5, abs=0.08)
    assert ims["quiet"]["sky_ratio"][2] == pytest.approx(1.0, abs=1e-9)
    pz = json.loads((out / "photoz.json").read_text())["rows"]
    c3 = f"cast [{evaluated['gens'][3].parent.name}/cast3]"
    assert set(pz) == {"real test", "cast", "quiet", "cast (NFE 2)", c3, "cast [run2/cast3]"}
    # the run2 file is the quiet stamps: its row is theirs, not cast3's (rows follow files)
    ims = json.loads((out / "imagestats.json").read_text())["rows"]
    assert ims["cast [run2/cast3]"]["sky_ratio"] == ims["quiet"]["sky_ratio"]
    assert ims[c3]["sky_ratio"] == ims["cast"]["sky_ratio"]
    assert pz["real test"]["n"] == 48
    # "cast (NFE 2)" is an unchanged copy of the real stamps: the same photo-z numbers exactly
    assert pz["cast (NFE 2)"]["nmad"] == pz["real test"]["nmad"]


def test_torn_cache_files_are_measured_again(evaluated, tmp_path, capfd):
    """#18: an interrupted or damaged evaluate cache. Every torn file is named on stderr,
    measured again and replaced; the tables equal those of the first run."""
    out, cache = evaluated["out"], evaluated["out"] / "cache"
    files = sorted(cache.glob("*.npz"))
    assert len(files) >= 4
    for f in files:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    again = tmp_path / "again"
    galgen.evaluate(
        evaluated["test"], evaluated["gens"], again, protocol="paper", n_boot=20, seed=0,
        cache=cache,
    )  # fmt: skip
    err = capfd.readouterr().err
    for f in files:
        assert f"ignoring unreadable cache file {f}" in err
        np.load(f).close()  # rewritten whole
    for name in ("table1", "photometry", "imagestats", "photoz"):
        assert (again / f"{name}.md").read_text() == (out / f"{name}.md").read_text(), name

"""`measure_file(..., scheduler="local:2")`: Dask workers read the HDF5 file themselves and give
the serial columns, in the same order (also for an index list), under the same cache key."""

import numpy as np
import pytest

pytest.importorskip("distributed")


def test_measure_file_on_local_cluster_equals_serial(tmp_path):
    from galaxiesml_data import synthesize
    from galgen._study import StampReader, measure_file

    kw = {"n_train": 2, "n_val": 0, "n_test": 24, "size": 32, "workers": 1, "progress": False}
    files = synthesize(tmp_path / "data", seed=3, **kw)
    test = files["testing"]
    idx = np.array([20, 3, 3, 11, 0, 17, 9])  # any order, repeats allowed
    c1, c2 = tmp_path / "c1", tmp_path / "c2"
    serial = [
        measure_file(test, c1, "statmorph", chunk=10),
        measure_file(test, c1, "statmorph", idx=idx, chunk=10),
    ]
    dask = [
        measure_file(test, c2, "statmorph", chunk=5, scheduler="local:2"),
        measure_file(test, c2, "statmorph", idx=idx, chunk=5, scheduler="local:2"),
    ]
    for a, b in zip(serial, dask):
        assert list(a) == list(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (serial[0]["flag"] == 0).mean() > 0.5
    np.testing.assert_array_equal(serial[1]["x_centroid"], serial[0]["x_centroid"][idx])
    # same cache key whatever the scheduler
    assert sorted(p.name for p in c1.iterdir()) == sorted(p.name for p in c2.iterdir())
    import pickle

    r = pickle.loads(pickle.dumps(StampReader(test, idx)))  # small: a path and the index list
    assert r(2, 5).shape == (3, 32, 32, 5) and len(pickle.dumps(r)) < 2000

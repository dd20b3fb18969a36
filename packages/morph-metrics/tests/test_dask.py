"""measure_chunks on a Dask LocalCluster of worker processes: equal to serial measure, in order,
and every row exactly once when a worker process is SIGKILLed mid-run."""

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import galsim
import numpy as np
import pytest
from morph_metrics import check_scheduler, dask_client, measure, measure_chunks

SCALE, FWHM = 0.168, 0.7  # arcsec/px, Gaussian PSF FWHM in arcsec
N, CHUNK = 48, 4
KW = {"protocol": "statmorph", "pixel_scale": SCALE, "psf_fwhm": FWHM}


class NpyReader:
    """Stamps ``i:j`` of a ``.npy`` file, memory-mapped by whichever process calls it; each call
    sleeps ``delay`` s and leaves a file ``<i>-<pid>-<uuid>`` in ``calls`` (if given)."""

    def __init__(self, path, delay=0.0, calls=None):
        self.path, self.delay, self.calls = str(path), delay, calls

    def __call__(self, i, j):
        if self.calls is not None:
            Path(self.calls, f"{i}-{os.getpid()}-{uuid.uuid4().hex}").touch()
        time.sleep(self.delay)
        return np.array(np.load(self.path, mmap_mode="r")[i:j])


def _stamps(n, size=32):
    rng = np.random.default_rng(5)
    out = []
    for k in range(n):
        gal = galsim.Sersic(rng.uniform(0.8, 3), half_light_radius=rng.uniform(2, 4) * SCALE)
        gal = gal.shear(q=rng.uniform(0.4, 1), beta=rng.uniform(0, np.pi) * galsim.radians)
        im = galsim.Convolve(gal.withFlux(1000.0), galsim.Gaussian(fwhm=FWHM))
        im = im.drawImage(nx=size, ny=size, scale=SCALE)
        im.addNoiseSNR(galsim.GaussianNoise(galsim.BaseDeviate(k + 1)), 80, preserve_flux=True)
        out.append(im.array)
    return np.stack(out)[..., None].astype(np.float32)


@pytest.fixture(scope="module")
def stamps_file(tmp_path_factory):
    """``(path of a (48, 32, 32, 1) .npy file, serial measure columns)``."""
    x = _stamps(N)
    path = tmp_path_factory.mktemp("stamps") / "stamps.npy"
    np.save(path, x)
    return path, measure(x, n_workers=1, **KW)


@pytest.fixture(scope="module")
def client():
    """LocalCluster of 2 single-threaded worker processes (closed, workers and all, at the end)."""
    with dask_client("local:2", silence_logs=40) as c:
        yield c


def _equal(a, b):
    assert list(a) == list(b)
    for k in a:
        if a[k].dtype.kind == "f":
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # NaN == NaN, bitwise values
        else:
            assert (a[k] == b[k]).all(), k


def test_dask_local_cluster_equals_serial(stamps_file, client):
    path, serial = stamps_file
    assert len(client.scheduler_info()["workers"]) == 2
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids  # two separate worker processes
    cols = measure_chunks(NpyReader(path), N, chunk=CHUNK, client=client, **KW)
    _equal(cols, serial)
    assert (cols["flag"] == 0).mean() >= 0.8  # real measurements, not a column of failures
    # the local path (this process reads, a pool measures) gives the same columns
    _equal(measure_chunks(NpyReader(path), N, chunk=20, n_workers=1, **KW), serial)


def test_dask_worker_killed_mid_run_loses_and_duplicates_no_row(stamps_file, client, tmp_path):
    path, serial = stamps_file
    calls = tmp_path / "calls"
    calls.mkdir()
    killed = {}

    def kill_a_busy_worker():
        # wait until chunk 2 (the third) is being read, then SIGKILL the worker process reading
        # it while it is inside the task (the reader sleeps 0.4 s before returning)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            hits = [f.name.split("-") for f in calls.iterdir()]
            hit = next((h for h in hits if int(h[0]) == 2 * CHUNK), None)
            if hit is not None:
                time.sleep(0.1)
                killed.update(chunk=int(hit[0]), pid=int(hit[1]))
                os.kill(int(hit[1]), signal.SIGKILL)
                return
            time.sleep(0.02)

    assert int(os.getpid()) not in set(client.run(os.getpid).values())
    t = threading.Thread(target=kill_a_busy_worker)
    t.start()
    try:
        cols = measure_chunks(
            NpyReader(path, delay=0.4, calls=calls), N, chunk=CHUNK, client=client, **KW
        )
    finally:
        t.join()
    assert killed, "no worker was killed"
    # the killed task was really lost and recomputed: its chunk was read twice, by two processes
    reads = [
        f.name.split("-") for f in calls.iterdir() if int(f.name.split("-")[0]) == killed["chunk"]
    ]
    assert len(reads) >= 2 and len({r[1] for r in reads}) >= 2
    # ... yet every row is there exactly once, in order, equal to the serial measurement
    assert all(v.shape == (N,) for v in cols.values())
    _equal(cols, serial)
    # the nanny replaced the dead worker
    client.wait_for_workers(2, timeout=60)
    assert killed["pid"] not in set(client.run(os.getpid).values())


def test_scheduler_without_dask_is_one_sentence(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_dask(name, *args, **kwargs):
        if name == "distributed" or name.startswith(("distributed.", "dask")):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    for spec in ("local:2", "tcp://127.0.0.1:8786"):
        with pytest.raises(ImportError, match=r"morph-metrics\[dask\]") as e:
            dask_client(spec)
        assert str(e.value).count(". ") == 0 and "\n" not in str(e.value)
    with pytest.raises(ImportError, match="not installed"):
        check_scheduler("local")


@pytest.mark.parametrize("spec", ["", "local:0", "local:x", "local:-1"])
def test_bad_scheduler_spec_is_refused(spec):
    with pytest.raises(ValueError, match="expected 'local', 'local:N'"):
        check_scheduler(spec)


def test_measure_chunks_checks_reader_and_settings(stamps_file):
    path, _ = stamps_file
    with pytest.raises(TypeError, match="variance"):
        measure_chunks(NpyReader(path), N, variance=np.ones((N, 32, 32)), **KW)
    with pytest.raises(ValueError, match="needs a PSF"):
        measure_chunks(NpyReader(path), N, protocol="statmorph")
    with pytest.raises(ValueError, match=r"reader\(0, 1\).*channels-first"):
        measure_chunks(lambda i, j: np.zeros((j - i, 5, 32, 32)), 4, **KW)
    with pytest.raises(ValueError, match=r"reader\(0, 2\) returned shape \(1, 32, 32, 1\)"):
        measure_chunks(lambda i, j: np.ones((1, 32, 32, 1)), 4, chunk=2, n_workers=1, **KW)

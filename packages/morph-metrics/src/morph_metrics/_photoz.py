"""Photometric redshifts from aperture photometry: does the redshift conditioning work?

A gradient-boosted regressor (scikit-learn's ``HistGradientBoostingRegressor``, optional extra
``morph-metrics[photoz]``) is trained on real galaxies' asinh magnitudes and adjacent colours and
predicts z for any other set — real test galaxies (its own accuracy) or generated ones (against
the redshift each was conditioned on).

Persistence: no pickle. Fitting is deterministic (fixed ``random_state``) and takes seconds, so a
caller caches the *training features and targets* (``np.savez``, keyed by the training file's
hash) and refits; loading a pickled estimator would execute code from a file on disk and tie the
cache to one scikit-learn version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._photometry import HSC_BANDS, colour_names

#: Catastrophic-outlier threshold on ``|Δz| / (1 + z)``.
OUTLIER_THRESHOLD = 0.15


def _sklearn():
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "morph_metrics photo-z needs scikit-learn: pip install 'morph-metrics[photoz]'"
        ) from e
    return HistGradientBoostingRegressor


def photoz_features(cols: Mapping[str, np.ndarray], bands: Sequence[str] = HSC_BANDS) -> np.ndarray:
    """Feature matrix ``(N, 2C − 1)``: asinh magnitudes ``mag_<band>`` then adjacent colours, from
    a :func:`morph_metrics.photometry` result."""
    names = [f"mag_{b}" for b in bands] + colour_names(bands)
    return np.stack([np.asarray(cols[n], dtype=np.float64) for n in names], axis=1)


class PhotoZ:
    """Gradient-boosted photo-z on photometric features; predicts ``log(1 + z)`` internally.

    Args:
        max_iter, learning_rate, max_leaf_nodes: passed to ``HistGradientBoostingRegressor``.
        seed: its ``random_state`` (early stopping's validation split), so fits are repeatable.
    """

    def __init__(
        self,
        max_iter: int = 300,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        seed: int = 0,
    ):
        self.params = dict(
            max_iter=max_iter,
            learning_rate=learning_rate,
            max_leaf_nodes=max_leaf_nodes,
            random_state=seed,
        )
        self._model = None

    def fit(self, features: np.ndarray, redshift: np.ndarray) -> PhotoZ:
        """Fit on ``features (N, F)`` and spectroscopic ``redshift (N,)``; rows with a non-finite
        value are dropped."""
        x = np.asarray(features, dtype=np.float64)
        z = np.asarray(redshift, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != z.shape[0]:
            raise ValueError(f"features (N, F) and redshift (N,) disagree: {x.shape}, {z.shape}")
        ok = np.all(np.isfinite(x), axis=1) & np.isfinite(z) & (z > -1)
        if ok.sum() < 10:
            raise ValueError(f"PhotoZ.fit: only {int(ok.sum())} usable training galaxies")
        self._model = _sklearn()(**self.params).fit(x[ok], np.log1p(z[ok]))
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted redshift ``(N,)``; NaN for rows with a non-finite feature."""
        if self._model is None:
            raise RuntimeError("PhotoZ.predict before fit")
        x = np.asarray(features, dtype=np.float64)
        ok = np.all(np.isfinite(x), axis=1)
        out = np.full(x.shape[0], np.nan)
        if ok.any():
            out[ok] = np.expm1(self._model.predict(x[ok]))
        return out


def photoz_metrics(
    z_true: np.ndarray, z_pred: np.ndarray, outlier: float = OUTLIER_THRESHOLD
) -> dict[str, float]:
    """Accuracy of predicted redshifts against the true (or conditioning) ones.

    With ``dz = (z_pred − z_true) / (1 + z_true)`` over finite pairs: ``nmad = 1.4826 ·
    median(|dz − median(dz)|)``, ``bias = median(dz)``, ``outlier_rate`` = fraction with
    ``|dz| > outlier`` (default 0.15), ``n`` = pairs used.
    """
    zt = np.asarray(z_true, dtype=np.float64)
    zp = np.asarray(z_pred, dtype=np.float64)
    ok = np.isfinite(zt) & np.isfinite(zp)
    if not ok.any():
        return {"nmad": np.nan, "bias": np.nan, "outlier_rate": np.nan, "n": 0}
    dz = (zp[ok] - zt[ok]) / (1 + zt[ok])
    med = float(np.median(dz))
    return {
        "nmad": float(1.482602218505602 * np.median(np.abs(dz - med))),
        "bias": med,
        "outlier_rate": float(np.mean(np.abs(dz) > outlier)),
        "n": int(ok.sum()),
    }

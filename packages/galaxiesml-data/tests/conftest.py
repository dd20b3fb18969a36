"""Shared fixtures: one small synthetic data set per test session (32×32, rendered in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from galaxiesml_data import synthesize


@pytest.fixture(scope="session")
def synth32(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("synth32")
    return synthesize(out, 240, 40, 24, size=32, seed=3, workers=1, progress=False)

"""Nox sessions for the galgen monorepo.

Every package is tested in its own fresh virtualenv that holds only that package, its declared
dependencies (workspace siblings included) and its ``test`` dependency group, installed from
``uv.lock``. An undeclared sibling import therefore fails here even though it would pass in the
shared development environment.

    nox -s tests                                  # every package, one env each
    nox -s "tests(package='ode-samplers')"        # one package
    nox -s tests-ode_samplers                     # same, short alias
    nox -s lint                                   # ruff check + format check
    nox -s lock                                   # uv lock --check
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "lock", "tests"]

ROOT = Path(__file__).parent
PACKAGES = sorted(p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())


def _sync(session: nox.Session, package: str) -> None:
    """Install exactly ``package`` (+ its locked deps and test group) into the session venv."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--no-default-groups",
        "--package",
        package,
        "--group",
        "test",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


def _test(session: nox.Session, package: str) -> None:
    _sync(session, package)
    import_name = package.replace("-", "_")
    # Importing alone proves the package needs nothing it does not declare.
    session.run("python", "-c", f"import {import_name}; print({import_name}.__name__, 'imports')")
    env = {"JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg"}
    session.run(
        "python", "-m", "pytest", f"packages/{package}/tests", "-q", *session.posargs, env=env
    )


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's test suite in an environment holding only that package."""
    _test(session, package)


for _pkg in PACKAGES:  # short aliases: nox -s tests-ode_samplers

    def _alias(session: nox.Session, _p: str = _pkg) -> None:
        _test(session, _p)

    nox.session(name=f"tests-{_pkg.replace('-', '_')}", default=False)(_alias)


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.run("ruff", "check", ".", external=True)
    session.run("ruff", "format", "--check", ".", external=True)


@nox.session(venv_backend="none")
def lock(session: nox.Session) -> None:
    """The committed uv.lock matches every pyproject.toml."""
    session.run("uv", "lock", "--check", external=True)


if os.environ.get("CI"):
    nox.options.error_on_missing_interpreters = True

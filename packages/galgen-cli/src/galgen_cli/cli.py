"""The ``galgen`` console script: a thin Typer layer over the ``galgen`` library.

Each command parses its options and calls one library function; it owns no science. Heavy imports
(jax, flax, statmorph, ...) happen inside the library calls so ``galgen --help`` is fast.
Every command turns a library error into one sentence on stderr and a non-zero exit code; pass
``--debug`` for the traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Any

import galgen
import typer
from galgen import METHODS, GalgenError

app = typer.Typer(
    help="Redshift-conditioned galaxy image synthesis: data, training, sampling, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Synthesize, inspect and validate GalaxiesML-schema files.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

_STATE: dict[str, Any] = {"debug": False}


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _STATE["debug"] = debug
    if (
        not debug
    ):  # orbax logs every failing writer thread (with traceback) before galgen's one line
        import logging

        for name in ("absl", "asyncio"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _friendly(fn):
    """Run a command; library errors become one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            _err("interrupted; the last checkpoint is kept (resume with --resume)")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            if _STATE["debug"]:
                raise
            text = str(exc).strip()
            msg = text.splitlines()[0] if text else type(exc).__name__
            if not isinstance(exc, (GalgenError, FileNotFoundError, ValueError, KeyError, OSError)):
                msg = f"{type(exc).__name__}: {msg} (run with --debug for the traceback)"
            _err(msg)
            raise typer.Exit(1) from None

    return wrapper


def _err(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {msg}", highlight=False)


def _say(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True).print(msg, highlight=False)


# ----------------------------------------------------------------------------- data


@data_app.command("synth")
@_friendly
def data_synth(
    out: Annotated[Path, typer.Argument(help="Directory for the three split files.")],
    n_train: Annotated[int, typer.Option(help="Training galaxies.")] = 2048,
    n_val: Annotated[int, typer.Option(help="Validation galaxies.")] = 256,
    n_test: Annotated[int, typer.Option(help="Test galaxies.")] = 256,
    size: Annotated[int, typer.Option(help="Stamp size in pixels (64 = GalaxiesML-64).")] = 64,
    seed: Annotated[
        int, typer.Option(help="Random seed (galaxy i is the same for any split).")
    ] = 0,
    workers: Annotated[int | None, typer.Option(help="Processes (default: all cores).")] = None,
) -> None:
    """Write a synthetic GalSim data set in the GalaxiesML schema."""
    paths = galgen.synth(
        out, n_train=n_train, n_val=n_val, n_test=n_test, size=size, seed=seed, workers=workers
    )
    _say(f"[green]wrote[/] {', '.join(str(p) for p in paths)}")


@data_app.command("info")
@_friendly
def data_info(file: Annotated[Path, typer.Argument(help="A GalaxiesML-schema HDF5 file.")]) -> None:
    """Summarize a GalaxiesML-schema file: size, image shape, redshift range, columns."""
    typer.echo(galgen.info(file))


@data_app.command("validate")
@_friendly
def data_validate(
    file: Annotated[Path, typer.Argument(help="A GalaxiesML-schema HDF5 file.")],
) -> None:
    """Check a file for NaN/inf pixels, bad redshifts and shape problems (exit 1 on problems)."""
    from galaxiesml_data import validate

    report = validate(file)
    typer.echo(str(report))
    if not report.ok:
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- train


_CPU_DEVICES_HELP = (
    "On one CPU, train data-parallel over this many JAX devices split from its cores (on 2 "
    "cores, 2 trains pmf-tiny ~15 % faster and ddpm-tiny ~12 % slower than 1). Ignored on "
    "GPUs and with several processes."
)


@app.command()
@_friendly
def train(
    model: Annotated[str, typer.Argument(help="ddpm or pmf.")],
    data: Annotated[Path, typer.Option(help="Directory holding the GalaxiesML split files.")],
    out: Annotated[Path, typer.Option(help="Run directory (config, checkpoints, metrics).")],
    preset: Annotated[
        str | None, typer.Option(help="Training preset (default: <model>-cpu, the CPU recipe).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: section.key=value (repeatable).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="Multi-process: HOST:PORT of process 0 (the same in every process). Not needed "
            "under srun/mpirun, which JAX detects."
        ),
    ] = None,
    num_processes: Annotated[
        int | None, typer.Option(help="Multi-process: the number of processes.")
    ] = None,
    process_id: Annotated[
        int | None, typer.Option(help="Multi-process: this process's index, 0 to N-1.")
    ] = None,
    heartbeat_timeout: Annotated[
        int, typer.Option(help="Multi-process: seconds before a silent process counts as dead.")
    ] = 100,
    cpu_devices: Annotated[int, typer.Option(help=_CPU_DEVICES_HELP)] = 1,
) -> None:
    """Train a DDPM or a pixel MeanFlow on GalaxiesML-schema data (on one or several processes)."""
    if model not in ("ddpm", "pmf"):
        raise GalgenError(f"unknown model {model!r}; choose ddpm or pmf")
    try:
        state = galgen.train(
            model,
            data,
            out,
            preset=preset,
            overrides=set_ or [],
            resume=resume,
            seed=seed,
            coordinator=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            heartbeat_timeout=heartbeat_timeout,
            cpu_devices=cpu_devices,
        )
    except BaseException as exc:
        if galgen.is_distributed() and not isinstance(exc, typer.Exit):
            _exit_distributed(exc)
        raise
    if state.get("process", 0) == 0:
        _say(f"[green]trained[/] {model} to step {state['step']} in {out}")


def _exit_distributed(exc: BaseException) -> None:
    """Report a failed multi-process run and exit now: JAX's exit barrier would wait for a dead
    process until its heartbeat times out, then abort with a page of C++ log."""
    import os
    import traceback

    if _STATE["debug"]:
        traceback.print_exception(exc)
    if isinstance(exc, KeyboardInterrupt):
        code, msg = 130, "interrupted; the last checkpoint is kept (resume with --resume)"
    elif isinstance(exc, SystemExit):  # SIGTERM (e.g. scancel)
        code = exc.code if isinstance(exc.code, int) else 1
        msg = "terminated; the last checkpoint is kept (resume with --resume)"
    else:
        code, text = 1, str(exc).strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
        if not isinstance(exc, (GalgenError, FileNotFoundError, ValueError, KeyError, OSError)):
            msg = f"{type(exc).__name__}: {msg} (run with --debug for the traceback)"
    _err(msg)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ----------------------------------------------------------------------------- sample


@app.command()
@_friendly
def sample(
    run: Annotated[
        Path,
        typer.Argument(help="A run directory (`galgen train`) or model file (`galgen export`)."),
    ],
    out: Annotated[Path, typer.Option(help="Output HDF5 file (GalaxiesML schema).")],
    method: Annotated[
        str | None,
        typer.Option(help=f"One of {', '.join(METHODS)} (default: pmf, or dpmpp_2m for a DDPM)."),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps (default per method).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Guidance scale w (1 = none).")] = None,
    redshifts: Annotated[
        str, typer.Option(help="'test' (one per test galaxy), a text FILE, or z1,z2,...")
    ] = "test",
    n: Annotated[int | None, typer.Option(help="At most this many galaxies.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    data: Annotated[
        Path | None,
        typer.Option(help="Data directory for --redshifts test (default: the run's own)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="hdf5, or fits (also writes OUT with .fits).")
    ] = "hdf5",
) -> None:
    """Generate galaxies from a trained run or model file, written in the GalaxiesML schema."""
    if method is not None:
        galgen.check_method(method)  # named before the run path is read
    if fmt not in ("hdf5", "fits"):
        raise GalgenError(f"unknown --format {fmt!r}; choose hdf5 or fits")
    res = galgen.sample(
        run,
        out,
        method=method,
        steps=steps,
        guidance=guidance,
        redshifts=redshifts,
        n=n,
        seed=seed,
        fits=fmt == "fits",
        data=data,
    )
    _say(f"[green]wrote[/] {res['n']} galaxies to {out} (NFE {res['nfe']}, {res['seconds']:.1f} s)")


@app.command()
@_friendly
def export(
    run: Annotated[Path, typer.Argument(help="A run directory written by `galgen train`.")],
    file: Annotated[Path, typer.Argument(help="The model file to write (e.g. pmf.galgen).")],
) -> None:
    """Write a portable model file: EMA weights + config, no optimizer state, no paths."""
    path = galgen.export(run, file)
    _say(f"[green]exported[/] {run} to {path} ({path.stat().st_size / 1e6:.1f} MB)")


# ----------------------------------------------------------------------------- evaluate


@app.command()
@_friendly
def evaluate(
    real: Annotated[Path, typer.Option(help="Reference (test) HDF5 file.")],
    generated: Annotated[list[Path], typer.Option(help="Generated HDF5 file (repeatable).")],
    out: Annotated[Path, typer.Option(help="Directory for tables, figures and the cache.")],
    protocol: Annotated[str, typer.Option(help="statmorph or paper.")] = "statmorph",
    n_boot: Annotated[int, typer.Option(help="Bootstrap replicates for BCD errors.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Measure morphology on Dask: 'local' (a LocalCluster, one worker process per "
            "core), 'local:N' (N worker processes) or a scheduler address (tcp://host:8786; its "
            "workers read the files at the same paths). Needs the morph-metrics 'dask' extra. "
            "Default: a process pool on this machine. Results are identical."
        ),
    ] = None,
) -> None:
    """Morphology of real and generated galaxies, JSD and BCD tables (Table 1 layout), figures."""
    if protocol not in ("statmorph", "paper"):
        raise GalgenError(f"unknown protocol {protocol!r}; choose statmorph or paper")
    table = galgen.evaluate(
        real, generated, out, protocol=protocol, n_boot=n_boot, seed=seed, scheduler=scheduler
    )
    typer.echo(table)


# ----------------------------------------------------------------------------- bench


@app.command()
@_friendly
def bench(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (ddpm and/or pmf).")],
    out: Annotated[Path | None, typer.Option(help="Write bench.json/bench.md here.")] = None,
    batch: Annotated[int, typer.Option(help="Galaxies per timed batch.")] = 16,
    repeats: Annotated[int, typer.Option(help="Timed repeats (median reported).")] = 3,
    ddpm_steps: Annotated[int, typer.Option(help="Ancestral steps of the DDPM row.")] = 1000,
) -> None:
    """Table 2: NFE, parameters, wall time for a fixed batch, GFLOPs — per method, this device."""
    typer.echo(galgen.bench(runs, out, batch=batch, repeats=repeats, ddpm_steps=ddpm_steps))


# ----------------------------------------------------------------------------- reproduce


@app.command()
@_friendly
def reproduce(
    out: Annotated[Path, typer.Option(help="Output directory (everything is written here).")],
    preset: Annotated[
        str,
        typer.Option(
            help="smoke (CPU, ~14 min on 2 cores, default), cpu (CPU, <= 2 h, 1,024 test "
            "galaxies and Table 3), gpu-short (one GPU, ~12 min), paper (GPU) or test."
        ),
    ] = "smoke",
    data: Annotated[
        Path | None, typer.Option(help="Real GalaxiesML directory (default: synthesize).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Redo finished stages.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    cpu_devices: Annotated[int, typer.Option(help=_CPU_DEVICES_HELP)] = 1,
) -> None:
    """THE MAIN JOB: data → train → sample every method → evaluate → bench → ablations → report.md."""
    report = galgen.reproduce(
        out,
        preset=preset,
        data=data,
        force=force,
        seed=seed,
        cpu_devices=cpu_devices,
    )
    _say(f"[green]report[/] {report}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())

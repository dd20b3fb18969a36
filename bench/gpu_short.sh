#!/usr/bin/env bash
# The gpu-short reproduce preset as one prepared command on a GPU machine (docs/results.md, "GPU").
#
# Runs from the repository root with the machine's own jax/flax/optax/orbax (CUDA) and the
# packages' sources on PYTHONPATH. Pure-Python or missing dependencies (galsim, astropy, pyerfa,
# photutils, statmorph, lsstdesc-coord) come from SITE, a tar.xz of unpacked wheels, when given:
#
#     bash bench/gpu_short.sh [OUT_DIR] [SITE_TAR] [TIME_LIMIT_S]
#
# SITE_TAR was made on the CPU machine: `pip download --no-deps --only-binary=:all:
# --python-version 3.12 --platform manylinux_2_28_x86_64 ...` of each package (statmorph copied
# from an installed environment, as it has no wheel), every wheel unzipped into one folder, the
# extension modules stripped (`strip --strip-unneeded`; galsim's 194 MB -> 4 MB) and galsim's
# share/{SEDs,roman,sensors} and include/ removed: 8.9 MB as tar.xz.
#
# Writes OUT_DIR/run (the reproduce directory), OUT_DIR/log.txt and OUT_DIR/results.tgz (report,
# tables, stage records, training metrics, figures; no samples or checkpoints).
set -uo pipefail
out=${1:-/tmp/gpu-short}
site=${2:-}
limit=${3:-540}
mkdir -p "$out"
if [ -n "$site" ]; then
    mkdir -p /tmp/site && tar -C /tmp/site -xJf "$site" || exit 1
    export PYTHONPATH=/tmp/site
fi
for src in "$PWD"/packages/*/src; do PYTHONPATH="$src:${PYTHONPATH:-}"; done
export PYTHONPATH PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
nproc
start=$(date +%s)
timeout "$limit" python3 -c "from galgen_cli.cli import main; main()" \
    reproduce --preset gpu-short --out "$out/run" >"$out/log.txt" 2>&1
rc=$?
echo "reproduce rc=$rc after $(($(date +%s) - start)) s"
tr '\r' '\n' <"$out/log.txt" | grep -a -E "^done |rror|Traceback|report " | tail -40
cd "$out/run" && tar -czf "$out/results.tgz" --ignore-failed-read report.md stages eval/*.md \
    eval/*.json eval/figures bench runs/*/metrics.jsonl runs/*/config.json 2>/dev/null
exit $rc

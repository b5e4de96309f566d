#!/usr/bin/env bash
# Runs the GPU check on a bare GPU machine, from the repository root, with
# the folder written by tests/gpu/pack_for_device.py (.gpu/) carried along:
# installs its wheels into /tmp/site (no network needed), points the check
# at its slimmed shared folder and writes the summary to $OUT (the device
# tool's folder that comes back) or results/gpu_check.
#
#   bash tests/gpu/on_device.sh [more gpu_check.py options]
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/site .gpu/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .gpu/shared ]; then
    export MR_RAWNET_SHARED=${MR_RAWNET_SHARED:-$PWD/.gpu/shared}
fi
export PYTHONUNBUFFERED=1
export GPU_CHECK_OUT=${GPU_CHECK_OUT:-${OUT:-results/gpu_check}}
nvidia-smi -L 2>/dev/null
exec "$PY" tests/gpu/gpu_check.py "$@"

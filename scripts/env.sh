# Sourced by the Makefile recipes and scripts: creates the project-local Python
# environment when it is missing (libtorch for tch, plus the reference package that the
# tests use as their oracle) and points torch-sys at it, unless the user already
# chose a libtorch with LIBTORCH or LIBTORCH_USE_PYTORCH.
LPIPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LPIPS_VENV="${LPIPS_VENV:-$LPIPS_ROOT/.venv}"
LPIPS_PY_PINS="torch==2.11.0 torchvision==0.26.0 lpips==0.1.4 opencv-python-headless==5.0.0.93 safetensors==0.8.0 scikit-image==0.26.0 stlpips-pytorch==0.0.2 torchmetrics==1.8.2 lightning-utilities==0.15.3"
# Oracles only, installed without their dependencies: scripts/gen_harness.py runs pyiqa's
# LPIPS file alone (the rest of pyiqa needs dozens of packages it does not use).
LPIPS_PY_NODEPS_PINS="pyiqa==0.1.16"

lpips_venv() {
    if [ ! -x "$LPIPS_VENV/bin/python" ] || ! "$LPIPS_VENV/bin/python" -c 'import importlib.util as u, torch, torchvision, lpips, cv2, safetensors, skimage, torchmetrics; assert u.find_spec("stlpips_pytorch") and u.find_spec("pyiqa")' 2>/dev/null; then
        echo "setting up $LPIPS_VENV ($LPIPS_PY_PINS); about 5 GB, a few minutes" >&2
        python3 -m venv "$LPIPS_VENV" || return 1
        "$LPIPS_VENV/bin/pip" install --quiet --disable-pip-version-check $LPIPS_PY_PINS || return 1
        "$LPIPS_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps $LPIPS_PY_NODEPS_PINS || return 1
    fi
}

lpips_libtorch_env() {
    if [ -z "${LIBTORCH:-}" ] && [ -z "${LIBTORCH_USE_PYTORCH:-}" ]; then
        lpips_venv || return 1
        LIBTORCH="$("$LPIPS_VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
        export LIBTORCH
    fi
}

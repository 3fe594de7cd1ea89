#!/usr/bin/env bash
# GPU checks in two halves, for a GPU machine that has torch 2.11.0 (CUDA) but no Rust.
#
#   scripts/gpu_check.sh build   # here: builds tests/library/cuda.rs (in the library test
#                                #   binary) and the benches, bundles them
#                                #   with the small oracle files into target/gpu-bundle/
#   scripts/gpu_check.sh run     # there (repository root, target/gpu-bundle carried):
#                                #   runs them against that machine's libtorch
#   scripts/gpu_check.sh bench   # there: the README's side-by-side table on the GPU, f32
#                                #   and f16 (the reference package is carried, pure
#                                #   Python; the seeded random trunks are made there)
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle
case "${1:-}" in
build)
    source scripts/env.sh && lpips_libtorch_env
    make oracle
    rm -rf "$bundle" && mkdir -p "$bundle/oracle"
    bin=$(cargo test --release --features cuda-tests --test library --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "library" and m.get("executable"):
        print(m["executable"])')
    cp "$bin" "$bundle/cuda-tests"
    cp tests/oracle/stamp tests/oracle/cli.json "$bundle/oracle/"
    # The nets of tests/library/cuda.rs (their oracle files are small), checked against
    # scripts/nets.py.
    for net in $(python3 scripts/nets.py alex squeeze); do
        cp "tests/oracle/trunk_$net.safetensors" "tests/oracle/outputs_$net.safetensors" "$bundle/oracle/"
    done
    cargo build --release --example timing
    mkdir -p "$bundle/bench"
    cp target/release/examples/timing scripts/bench_side_by_side.py scripts/nets.py scripts/reference_trunk.py "$bundle/bench/"
    lpips_venv
    cp -r "$("$LPIPS_VENV/bin/python" -c 'import lpips, os; print(os.path.dirname(lpips.__file__))')" "$bundle/bench/"
    du -sh "$bundle"
    ;;
bench)
    lib=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)
    py=/opt/torch/.venv/bin/python3
    [ -x "$py" ] || py=python3
    [ -n "$lib" ] || lib=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    trunks=$(mktemp -d)
    # Timing needs an architecture, not ImageNet weights: seeded torchvision trunks, each
    # net's of scripts/nets.py (carried in the bundle).
    "$py" - "$trunks" "$bundle/bench" <<'PY'
import sys, torch, torchvision
sys.path.insert(0, sys.argv[2])
from nets import NETS, TABLE
for net in NETS:
    torch.manual_seed(0)
    build = getattr(torchvision.models, TABLE[net].torchvision)
    state = {k: v for k, v in build(weights=None).state_dict().items() if k.startswith("features.")}
    torch.save(state, f"{sys.argv[1]}/trunk_{net}.pt")
PY
    export LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" PYTHONPATH="$bundle/bench:${PYTHONPATH:-}"
    export LPIPS_ORACLE_DIR="$trunks" LPIPS_BENCH_TIMING="$bundle/bench/timing" LPIPS_BENCH_DEVICE=cuda
    nvidia-smi --query-gpu=name,memory.total --format=csv || true
    for precision in f32 f16; do
        LPIPS_BENCH_PRECISION=$precision LPIPS_BENCH_ROUNDS=${LPIPS_BENCH_ROUNDS:-3} \
            "$py" "$bundle/bench/bench_side_by_side.py"
    done
    ;;
run)
    lib=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)
    if [ -z "$lib" ]; then
        lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    fi
    nvidia-smi --query-gpu=name,memory.total --format=csv || true
    LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" LPIPS_ORACLE_DIR="$bundle/oracle" \
        "$bundle/cuda-tests" cuda:: --test-threads=1 --nocapture
    ;;
*)
    echo "usage: $0 build|run|bench" >&2
    exit 2
    ;;
esac

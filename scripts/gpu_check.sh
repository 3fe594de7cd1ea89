#!/usr/bin/env bash
# GPU checks in two halves, for a GPU machine that has torch 2.11.0 (CUDA) but no Rust.
#
#   scripts/gpu_check.sh build   # here: builds tests/cuda.rs and the benches, bundles them
#                                #   with the small oracle files into target/gpu-bundle/
#   scripts/gpu_check.sh run     # there (repository root, target/gpu-bundle carried):
#                                #   runs them against that machine's libtorch
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=target/gpu-bundle
case "${1:-}" in
build)
    source scripts/env.sh && lpips_libtorch_env
    make oracle
    rm -rf "$bundle" && mkdir -p "$bundle/oracle"
    bin=$(cargo test --release --features cuda-tests --test cuda --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda" and m.get("executable"):
        print(m["executable"])')
    cp "$bin" "$bundle/cuda-tests"
    for f in stamp cli.json trunk_alex.safetensors trunk_squeeze.safetensors outputs_alex.safetensors outputs_squeeze.safetensors; do
        cp "tests/oracle/$f" "$bundle/oracle/"
    done
    du -sh "$bundle"
    ;;
run)
    lib=$(ls -d /opt/torch/.venv/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)
    if [ -z "$lib" ]; then
        lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    fi
    nvidia-smi --query-gpu=name,memory.total --format=csv || true
    LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}" LPIPS_ORACLE_DIR="$bundle/oracle" \
        "$bundle/cuda-tests" --test-threads=1 --nocapture
    ;;
*)
    echo "usage: $0 build|run" >&2
    exit 2
    ;;
esac

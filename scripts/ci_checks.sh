#!/usr/bin/env bash
# What `make test` checks beyond the test suites: that a user's crate can depend on lpips
# and run without LD_LIBRARY_PATH, that CUDA stays linked, that the library pulls in no
# CLI crate, that both crates package, and that the docs build without libtorch
# (as on docs.rs). Needs LIBTORCH (scripts/env.sh sets it) and the oracle.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TARGET="$ROOT/target"
step() { printf '\n== %s\n' "$*"; }

step "the library's normal dependencies include no CLI crate"
tree="$(cargo tree -p lpips -e normal --prefix none --format '{p}')"
for crate in clap clap_complete csv indicatif assert_cmd; do
    if grep -q "^$crate v" <<<"$tree"; then
        echo "lpips depends on $crate" >&2
        exit 1
    fi
done
echo "ok: $(sort -u <<<"$tree" | wc -l) crates, none of them CLI-only"

step "a downstream crate (examples/downstream) outside the repository, only LIBTORCH set"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r examples/downstream "$work/downstream"
# The same versions as the workspace, so the shared target folder is reused.
cp Cargo.lock "$work/downstream/Cargo.lock"
sed -i "s|^lpips = .*|lpips = { path = \"$ROOT\" }|" "$work/downstream/Cargo.toml"
(cd "$work/downstream" && env -i PATH="$PATH" HOME="$HOME" LIBTORCH="$LIBTORCH" \
    ${CARGO_HOME:+CARGO_HOME="$CARGO_HOME"} ${RUSTUP_HOME:+RUSTUP_HOME="$RUSTUP_HOME"} \
    cargo build --quiet --target-dir "$TARGET/downstream")
bin="$TARGET/downstream/debug/downstream"
d="$(env -i "$bin" tests/oracle/img_alex_0.png tests/oracle/img_alex_1.png \
    tests/oracle/trunk_alex.safetensors)"
want="$(python3 -c 'import json; print(json.load(open("tests/oracle/cli.json"))["alex/v0.1"])')"
echo "downstream printed $d; the reference: $want"
python3 - "$d" "$want" <<'PY'
import sys
got, want = float(sys.argv[1]), float(sys.argv[2])
assert abs(got - want) <= 1e-6 + 1e-4 * abs(want), (got, want)
PY

step "libtorch_cuda stays linked when the libtorch in use has it"
lib="$(python3 - <<'PY'
import os
print(os.path.join(os.environ["LIBTORCH"], "lib"))
PY
)"
if [ -e "$lib/libtorch_cuda.so" ]; then
    for b in "$bin" "$TARGET/debug/lpips"; do
        readelf -d "$b" | grep -q 'NEEDED.*libtorch_cuda.so' || {
            echo "$b does not load libtorch_cuda.so" >&2
            exit 1
        }
    done
    echo "ok: the downstream binary and lpips both need libtorch_cuda.so"
else
    echo "skipped: $lib has no libtorch_cuda.so (a CPU-only libtorch)"
fi

step "both crates package and dry-run publish"
# cargo unpacks the temporary registry's crates into
# $CARGO_HOME/registry/src/-<hash of that registry's path>/ and never unpacks a
# name-version again once it is there: packaging the same checkout twice would
# verify the CLI against the library as it was the first time (a CI failure).
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rm -rf "$cargo_home"/registry/src/-*/lpips-[0-9]* "$cargo_home"/registry/src/-*/lpips-cli-[0-9]*
# Nor does it rebuild a registry crate whose version it has built: drop the
# library's builds that came from such a registry.
target_dir="${CARGO_TARGET_DIR:-target}"
for dep in "$target_dir"/debug/deps/lpips-*.d; do
    [ -e "$dep" ] && grep -q "registry/src/-" "$dep" || continue
    hash=$(basename "$dep" .d)
    hash=${hash#lpips-}
    rm -rf "$target_dir/debug/.fingerprint/lpips-$hash" "$target_dir"/debug/deps/*lpips-"$hash".*
done
cargo package --workspace --allow-dirty --quiet
cargo publish --workspace --dry-run --allow-dirty --quiet --no-verify
echo "ok"

step "docs build without libtorch (docs.rs: feature doc-only)"
env -u LIBTORCH -u LIBTORCH_USE_PYTORCH DOCS_RS=1 RUSTDOCFLAGS="-D warnings" \
    cargo doc --quiet --no-deps -p lpips --features doc-only
echo "ok"

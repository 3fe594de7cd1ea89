#!/usr/bin/env python3
"""Times the library's folder engine (examples/engine_bench.rs) against `lpips dirs` on the
same folders, and a hand-written grouping (every image decoded first, pairs grouped by
size, `distances` per group), uniform and mixed sizes; end to end (process start, model,
decoding), the best of LPIPS_BENCH_REPEATS runs (default 3), same machine and threads.

  cargo build --release -p lpips --example engine_bench && cargo build --release -p lpips-cli
  .venv/bin/python scripts/bench_engine.py

LPIPS_BENCH_PAIRS (default 400) pairs per case; the trunk is the oracle's (tests/oracle).
"""

import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRUNK = os.path.join(ROOT, "tests", "oracle", "trunk_alex.safetensors")
CLI = os.path.join(ROOT, "target", "release", "lpips")
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "engine_bench")
PAIRS = int(os.environ.get("LPIPS_BENCH_PAIRS", "400"))
REPEATS = int(os.environ.get("LPIPS_BENCH_REPEATS", "3"))


def make_pairs(root, sizes):
    rng = np.random.default_rng(0)
    for d in ("d0", "d1"):
        os.makedirs(os.path.join(root, d))
    for i in range(PAIRS):
        h, w = sizes[i % len(sizes)]
        for d in ("d0", "d1"):
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            img = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
            noise = rng.integers(-12, 13, img.shape)
            img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(os.path.join(root, d, "%05d.png" % i), img)


def best(cmd):
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    for path in (CLI, EXAMPLE):
        if not os.path.exists(path):
            sys.exit("%s is missing: cargo build --release -p lpips --example engine_bench && "
                     "cargo build --release -p lpips-cli" % path)
    rng = np.random.default_rng(1)
    cases = {
        "uniform 64x64": [(64, 64)],
        "mixed: 20 sizes 64..160": [tuple(int(v) for v in rng.integers(64, 161, 2))
                                    for _ in range(20)],
        "mixed: every pair its own size": [tuple(int(v) for v in rng.integers(64, 161, 2))
                                           for _ in range(PAIRS)],
    }
    for name, sizes in cases.items():
        with tempfile.TemporaryDirectory() as t:
            make_pairs(t, sizes)
            d0, d1 = os.path.join(t, "d0"), os.path.join(t, "d1")
            cli = best([CLI, "dirs", d0, d1, "--trunk", TRUNK, "--format", "json", "-q"])
            engine = best([EXAMPLE, d0, d1, TRUNK, "engine", "16"])
            unordered = best([EXAMPLE, d0, d1, TRUNK, "engine-unordered", "16"])
            hand = best([EXAMPLE, d0, d1, TRUNK, "hand", "16"])
            print("%-32s %d pairs: lpips dirs %.2f s, engine %.2f s, engine without "
                  "order_by_size %.2f s, hand-grouped %.2f s"
                  % (name, PAIRS, cli, engine, unordered, hand), flush=True)


if __name__ == "__main__":
    main()

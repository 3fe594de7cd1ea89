#!/usr/bin/env python3
"""Times the reference package (lpips 0.1.4) on the inputs of benches/trunks.rs, with the
same thread count, and prints a table beside this crate's criterion medians.

  make bench-compare      (runs `cargo bench --bench trunks` first, then this script)

Threads: LPIPS_BENCH_THREADS (default: all cores), as in the Rust bench.
"""

import json
import os
import statistics
import sys
import time

import torch
import lpips

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion", "lpips")


def load_trunk(model, net):
    """The same seeded trunk as the Rust bench (tests/oracle, from `make oracle`)."""
    from safetensors.torch import load_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_oracle import load_trunk as load_named

    load_named(model, load_file(os.path.join(ROOT, "tests", "oracle", f"trunk_{net}.safetensors")))


def reference_median(model, a, b, min_time=3.0, min_runs=10):
    with torch.no_grad():
        model(a, b)  # warm-up
        model(a, b)
        times = []
        start = time.perf_counter()
        while len(times) < min_runs or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            model(a, b)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ours_median(name):
    path = os.path.join(CRITERION, name, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def main():
    threads = int(os.environ.get("LPIPS_BENCH_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(f"threads: {threads}; torch {torch.__version__}; medians\n")
    print("| trunk | input | batch | reference (ms) | lpips-rs (ms) | speed-up |")
    print("|---|---|---|---|---|---|")
    for net in ["alex", "vgg", "squeeze"]:
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
        load_trunk(model, net)
        for size in [64, 256]:
            for batch in [1, 8]:
                a = torch.rand(batch, 3, size, size) * 2 - 1
                b = torch.rand(batch, 3, size, size) * 2 - 1
                ref = reference_median(model, a, b)
                ours = ours_median(f"{net}_{size}_b{batch}")
                ours_text = f"{ours * 1e3:.2f}" if ours else "(run cargo bench)"
                ratio = f"{ref / ours:.2f}x" if ours else "-"
                print(f"| {net} | {size}x{size} | {batch} | {ref * 1e3:.2f} | {ours_text} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()

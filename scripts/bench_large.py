#!/usr/bin/env python3
"""Peak resident memory and time of one large comparison: `lpips compare` (tiled under
--max-memory, and with its default budget) against the reference package's single pass,
on seeded random trunks (tests/oracle/trunk_*.safetensors) and two smooth random 8-bit
PNGs. A benchmark, not a test: prints a Markdown table.

    scripts/bench_large.py [--sizes 4000x3000,6000x6000] [--nets alex,squeeze,vgg]
        [--max-memory 2G] [--reference-limit-gb 12]

The reference runs only where its single pass is estimated below --reference-limit-gb
(VGG at 4000x3000 needs some 30 GB), and `lpips compare` with its default budget (90%
of MemAvailable) only below --default-limit-gb, so that a shared machine is never driven
out of memory.
Both sides get the same thread count (torch.get_num_threads() here, OMP_NUM_THREADS).
"""

import argparse
import os
import resource  # noqa: F401 (used by the probe without /usr/bin/time)
import subprocess
import sys
import time

from nets import TABLE, cheapest_first

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ROOT, "target", "bench_large")
LPIPS = os.path.join(ROOT, "target", "release", "lpips")

WORKER = r"""
import sys, time, torch, lpips
sys.path.insert(0, {scripts!r})
from reference_trunk import load_trunk, read_trunk
torch.set_grad_enabled(False)
net, a, b, trunk = sys.argv[1:5]
m = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
load_trunk(m, read_trunk(trunk))
m.eval()
x = lpips.im2tensor(lpips.load_image(a)); y = lpips.im2tensor(lpips.load_image(b))
t = time.perf_counter()
d = m(x, y).item()
print(d, time.perf_counter() - t)
"""


def images(h, w):
    import cv2
    import numpy as np

    os.makedirs(OUT, exist_ok=True)
    paths = []
    rng = np.random.default_rng(20261129)
    for i in range(2):
        path = os.path.join(OUT, f"{h}x{w}_{i}.png")
        paths.append(path)
        if os.path.exists(path):
            continue
        coarse = rng.random((h // 40 + 2, w // 40 + 2, 3)).astype(np.float32)
        up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        img = np.clip(up + (rng.random((h, w, 3), dtype=np.float32) - 0.5) * 0.3, 0, 1)
        cv2.imwrite(path, (img * 255).round().astype(np.uint8))
    return paths


def measured(cmd, env=None):
    """Runs `cmd` under /usr/bin/time -v when present (exact peak per run)."""
    if os.path.exists("/usr/bin/time"):
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        peak = next((int(l.split()[-1]) / 1024 for l in p.stderr.splitlines() if "Maximum resident" in l), None)
        if p.returncode != 0:
            return wall, peak, "FAILED: " + [l for l in p.stderr.splitlines() if l.strip()][0]
        return wall, peak, p.stdout.strip()
    # Without /usr/bin/time: a fresh Python per run, reporting its child's peak.
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode); "
        "print(p.stdout.strip()); print(p.stderr.strip()[-300:], file=sys.stderr)"
    )
    p = subprocess.run([sys.executable, "-c", probe] + cmd, capture_output=True, text=True, env=env)
    head, _, rest = p.stdout.partition("\n")
    wall, peak_kb, rc = head.split()
    out = rest.strip() if rc == "0" else "FAILED: " + p.stderr.strip().splitlines()[-1]
    return float(wall), int(peak_kb) / 1024, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4000x3000")
    ap.add_argument("--nets", default=",".join(cheapest_first()))
    ap.add_argument("--max-memory", default="2G")
    ap.add_argument("--reference-limit-gb", type=float, default=12)
    ap.add_argument("--default-limit-gb", type=float, default=8,
                    help="run `lpips compare` with its default budget only where one pass is estimated below this")
    args = ap.parse_args()
    import torch

    threads = str(torch.get_num_threads())
    env = dict(os.environ, OMP_NUM_THREADS=threads, LPIPS_OFFLINE="1")
    print(f"threads {threads}; tiled runs: --max-memory {args.max_memory}\n")
    print("| net | size | ours tiled: s | ours tiled: peak MiB | ours default: s | ours default: peak MiB | reference one pass: s | reference: peak MiB | distances (tiled / default / reference) |")
    print("|---|---|---|---|---|---|---|---|---|")
    worker = WORKER.format(scripts=os.path.join(ROOT, "scripts"))
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        a, b = images(h, w)
        for net in args.nets.split(","):
            trunk = os.path.join(ORACLE, f"trunk_{net}.safetensors")
            base = [LPIPS, "compare", a, b, "--net", net, "--trunk", trunk]
            t_tiled, m_tiled, d_tiled = measured(base + ["--max-memory", args.max_memory], env)
            # The reference's single pass, from its tensors: the net's tap values per
            # pixel (scripts/nets.py) for both images' taps, their normalised copies and
            # the squared differences (3x per image, 2 images), plus the largest layer's
            # input and output; float32.
            estimate_gb = TABLE[net].tap_values_per_pixel * 3 * 2 * 4 * h * w / 2**30
            if estimate_gb <= args.default_limit_gb:
                t_def, m_def, d_def = measured(base, env)
            else:
                t_def, m_def, d_def = None, None, "not run"
            if estimate_gb <= args.reference_limit_gb:
                t_ref, m_ref, out = measured([sys.executable, "-c", worker, TABLE[net].reference, a, b, trunk[: -len(".safetensors")]], env)
                d_ref = out.split()[0] if not out.startswith("FAILED") else out
            else:
                t_ref, m_ref, d_ref = None, None, f"not run: estimated {estimate_gb:.0f} GB"
            f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
            print(f"| {net} | {w}x{h} | {f(t_tiled)} | {f(m_tiled, 0)} | {f(t_def)} | {f(m_def, 0)} | {f(t_ref)} | {f(m_ref, 0)} | {d_tiled} / {d_def} / {d_ref} |", flush=True)


if __name__ == "__main__":
    main()

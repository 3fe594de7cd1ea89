#!/usr/bin/env python3
"""Times `lpips dirs` against the reference's `lpips_2dirs.py` on 1,000 pairs of 64x64
PNGs, end to end (process start, model, decoding, output), same machine and threads.

The reference script (richzhang/PerceptualSimilarity, lpips_2dirs.py) is not shipped in
the pip package and downloads ImageNet weights; its loop is reproduced here line for line
(load_image + im2tensor per file, loss_fn.forward per pair, one line written per pair),
with the same seeded trunk as ours (tests/oracle, `make oracle`).

  make bench-folders        (builds the release binary first)
Threads: LPIPS_BENCH_THREADS (default: all cores) for both.
"""

import os
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRUNK = os.path.join(ROOT, "tests", "oracle", "trunk_alex.safetensors")
BINARY = os.path.join(ROOT, "target", "release", "lpips")
PAIRS = int(os.environ.get("LPIPS_BENCH_PAIRS", "1000"))

REFERENCE = r'''
import os, sys
import torch, lpips
from safetensors.torch import load_file
torch.set_num_threads(int(sys.argv[4]))
dir0, dir1, out = sys.argv[1], sys.argv[2], sys.argv[3]
loss_fn = lpips.LPIPS(net='alex', version='0.1', pnet_rand=True, verbose=False)
trunk = load_file(sys.argv[5])
loss_fn.net.load_state_dict({k: trunk["features.%s.%s" % tuple(k.split(".", 2)[1:])] for k in loss_fn.net.state_dict()})
# lpips_2dirs.py from here on
f = open(out, 'w')
files = os.listdir(dir0)
for file in files:
    if os.path.exists(os.path.join(dir1, file)):
        img0 = lpips.im2tensor(lpips.load_image(os.path.join(dir0, file)))
        img1 = lpips.im2tensor(lpips.load_image(os.path.join(dir1, file)))
        dist01 = loss_fn.forward(img0, img1)
        f.writelines('%s: %.6f\n' % (file, dist01))
f.close()
'''


def make_pairs(root):
    rng = np.random.default_rng(0)
    for d in ("d0", "d1"):
        os.makedirs(os.path.join(root, d))
    for i in range(PAIRS):
        for d in ("d0", "d1"):
            coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            img = cv2.resize(coarse, (64, 64), interpolation=cv2.INTER_LINEAR)
            noise = rng.integers(-12, 13, img.shape)
            img = np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)
            cv2.imwrite(os.path.join(root, d, f"{i:05d}.png"), img)


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main():
    threads = os.environ.get("LPIPS_BENCH_THREADS", str(os.cpu_count()))
    with tempfile.TemporaryDirectory() as root:
        make_pairs(root)
        d0, d1 = os.path.join(root, "d0"), os.path.join(root, "d1")
        ref_out, our_out = os.path.join(root, "ref.txt"), os.path.join(root, "ours.csv")
        script = os.path.join(root, "lpips_2dirs_random_trunk.py")
        with open(script, "w") as f:
            f.write(REFERENCE)
        env = dict(os.environ, OMP_NUM_THREADS=threads)
        ours_cmd = [BINARY, "dirs", d0, d1, "--trunk", TRUNK, "--format", "csv", "--out", our_out, "--quiet"]
        # One warm-up each (page cache, Python imports), then the median of three.
        runs = {"reference": [], "ours": []}
        for i in range(4):
            r = timed([sys.executable, script, d0, d1, ref_out, threads, TRUNK])
            o = timed(ours_cmd)
            if i:
                runs["reference"].append(r)
                runs["ours"].append(o)
        ref = sorted(runs["reference"])[1]
        ours = sorted(runs["ours"])[1]
        # Same numbers?
        want = {l.split(":")[0]: float(l.split(":")[1]) for l in open(ref_out)}
        got = {}
        for line in open(our_out).read().splitlines()[1:]:
            index, img0, img1, dist, *_ = line.split(",")
            got[os.path.basename(img0)] = float(dist)
        worst = max(abs(got[k] - v) for k, v in want.items())
        print(f"{PAIRS} pairs of 64x64 PNGs, {threads} threads, medians of 3 whole runs")
        print("| tool | seconds | pairs/s |")
        print("|---|---|---|")
        print(f"| reference lpips_2dirs.py loop | {ref:.2f} | {PAIRS / ref:.0f} |")
        print(f"| lpips dirs | {ours:.2f} | {PAIRS / ours:.0f} |")
        print(f"speed-up: {ref / ours:.2f}x; largest difference between the two outputs: {worst:.1e} "
              f"(the reference prints 6 decimals)")


if __name__ == "__main__":
    main()

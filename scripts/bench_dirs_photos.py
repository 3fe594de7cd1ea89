#!/usr/bin/env python3
"""Times `lpips dirs --batch-size 8` against the reference's batched loop on 256x256
photograph pairs, whole processes (start, model, decoding, output), same machine, threads
and seeded trunks (tests/oracle), alternating; with and without the Winograd path.

The reference side is what a user of the pip package writes for folders of large
images: `lpips.load_image` + `im2tensor` per file, batches of 8 pairs through
`loss_fn.forward` under `torch.no_grad()`, one line per pair. The pairs are scikit-image's
photographs (scripts/photos.py) cut to 256x256 at several offsets and scales, against
blurred, noisy, JPEG-compressed and tone-shifted copies.

  .venv/bin/python scripts/bench_dirs_photos.py     (after cargo build --release --bin lpips)
Environment: LPIPS_BENCH_THREADS (default: all cores), LPIPS_BENCH_PAIRS (default 64),
LPIPS_BENCH_ROUNDS (default 3), LPIPS_BENCH_NETS (default alex,vgg).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

import photos
from nets import named

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "lpips")
PAIRS = int(os.environ.get("LPIPS_BENCH_PAIRS", "64"))
ROUNDS = int(os.environ.get("LPIPS_BENCH_ROUNDS", "3"))

REFERENCE = r'''
import os, sys
import torch, lpips
from safetensors.torch import load_file
dir0, dir1, out, threads, trunk_file, net = sys.argv[1:7]
torch.set_num_threads(int(threads))
loss_fn = lpips.LPIPS(net=net, version='0.1', pnet_rand=True, verbose=False)
trunk = load_file(trunk_file)
loss_fn.net.load_state_dict({k: trunk["features.%s.%s" % tuple(k.split(".", 2)[1:])] for k in loss_fn.net.state_dict()})
files = sorted(f for f in os.listdir(dir0) if os.path.exists(os.path.join(dir1, f)))
with open(out, 'w') as f, torch.no_grad():
    for start in range(0, len(files), 8):
        batch = files[start:start + 8]
        img0 = torch.cat([lpips.im2tensor(lpips.load_image(os.path.join(dir0, n))) for n in batch])
        img1 = torch.cat([lpips.im2tensor(lpips.load_image(os.path.join(dir1, n))) for n in batch])
        for n, d in zip(batch, loss_fn.forward(img0, img1).flatten().tolist()):
            f.write('%s: %.6f\n' % (n, d))
'''


def make_pairs(root):
    sources = [("astronaut.png", 0.6), ("chelsea.png", 1.0), ("coffee.png", 0.75), ("rocket.jpg", 0.7)]
    changes = [lambda u, i: photos.blur(u, 1.0 + i % 3), lambda u, i: photos.noise(u, 0.03, i),
               lambda u, i: photos.jpeg(u, 20 + 10 * (i % 5)), lambda u, i: photos.tone(u, 0.9, 12)]
    for d in ("d0", "d1"):
        os.makedirs(os.path.join(root, d))
    for i in range(PAIRS):
        name, scale = sources[i % len(sources)]
        ref = photos.photo(name, 256, 256, scale, top=(i * 7) % 40, left=(i * 11) % 40)
        photos.write_png(os.path.join(root, "d0", f"{i:05d}.png"), ref)
        photos.write_png(os.path.join(root, "d1", f"{i:05d}.png"), changes[i % len(changes)](ref, i))


def timed(cmd, env):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    threads = os.environ.get("LPIPS_BENCH_THREADS", str(os.cpu_count()))
    nets = named(*os.environ.get("LPIPS_BENCH_NETS", "alex,vgg").split(","))
    # As bench_side_by_side.py runs both sides: OpenMP threads bound to cores.
    env = dict(os.environ, OMP_NUM_THREADS=threads, OMP_PROC_BIND="true", OMP_PLACES="cores")
    print(f"{PAIRS} pairs of 256x256 photographs (PNG), batch 8, {threads} threads, "
          f"medians of {ROUNDS} alternating whole runs after one warm-up")
    print("| trunk | reference (s) | lpips dirs, Winograd off (s) | lpips dirs (s) | speed-up off | speed-up on | largest difference |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        make_pairs(root)
        d0, d1 = os.path.join(root, "d0"), os.path.join(root, "d1")
        script = os.path.join(root, "reference_batched.py")
        with open(script, "w") as f:
            f.write(REFERENCE)
        for net in nets:
            trunk = os.path.join(ROOT, "tests", "oracle", f"trunk_{net}.safetensors")
            ref_out = os.path.join(root, f"ref_{net}.txt")
            outs = {m: os.path.join(root, f"ours_{net}_{m}.csv") for m in ("off", "on")}
            ours = {m: [BINARY, "dirs", d0, d1, "--net", net, "--trunk", trunk, "--batch-size", "8",
                        "--format", "csv", "--out", outs[m], "--quiet"]
                    + (["--no-winograd"] if m == "off" else []) for m in ("off", "on")}
            runs = {"ref": [], "off": [], "on": []}
            for i in range(ROUNDS + 1):
                r = timed([sys.executable, script, d0, d1, ref_out, threads, trunk, net], env)
                t = {m: timed(ours[m], env) for m in ("off", "on")}
                if i:
                    runs["ref"].append(r)
                    runs["off"].append(t["off"])
                    runs["on"].append(t["on"])
            want = {l.split(":")[0]: float(l.split(":")[1]) for l in open(ref_out)}
            worst = 0.0
            for m in ("off", "on"):
                for line in open(outs[m]).read().splitlines()[1:]:
                    _, img0, _, dist, *_ = line.split(",")
                    worst = max(worst, abs(float(dist) - want[os.path.basename(img0)]))
            ref, off, on = (statistics.median(runs[k]) for k in ("ref", "off", "on"))
            print(f"| {net} | {ref:.2f} | {off:.2f} | {on:.2f} | {ref / off:.2f}x | {ref / on:.2f}x | {worst:.1e} |",
                  flush=True)


if __name__ == "__main__":
    main()

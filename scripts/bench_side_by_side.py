#!/usr/bin/env python3
"""The performance table of the README, reference package vs this crate, same machine,
same seeded trunks (tests/oracle), same thread count, same inputs.

  make bench-compare

Each job runs in its own process on each side (so peak memory is the job's), and the
two sides alternate for several rounds (so a noisy machine's drift hits both); the
medians are over every timed call of every round. Our side is
`examples/timing.rs` (release build); the reference's is this script with `--worker`.
The reference runs under torch.no_grad(), which favours it.

Prints: pairs (each trunk, 64x64 and 256x256, batch 1 and 8), 2AFC triplets (reference,
p0, p1 per item: the reference's scoring loop calls the model twice, we run each image
through the trunk once), peak resident memory of each job, model construction, GFLOP/s
for alex and vgg at 256x256 against this CPU's peak, `lpips dirs` (via
bench_folders.py and bench_dirs_photos.py), and the whole workflows `lpips eval 2afc` and `lpips train` against
the reference's scripts plus the CLI on a busy machine (via bench_workflows.py).

Both sides run in the same environment: OpenMP threads bound to cores (unbound, the
scheduler now and then left a whole process 30-50% slower), and, unless
LPIPS_BENCH_MALLOC=default, glibc told to keep freed memory (what
`lpips::tune_cpu_allocator` does and the `lpips` command does itself; with glibc's
defaults, page faults on fresh activation memory cost up to a quarter of the time on
large inputs, on both sides, and make single runs bimodal) and libtorch's allocator
told to use transparent huge pages (THP_MEM_ALLOC_ENABLE=1, which the `lpips` command
also sets itself).

Environment: LPIPS_BENCH_THREADS (default: all cores), LPIPS_BENCH_ROUNDS (default 5),
LPIPS_BENCH_SECONDS per round and side (default 1), LPIPS_BENCH_ONLY (comma-separated
sections: pairs,triplets,load,flops,dirs,workflows), LPIPS_BENCH_MALLOC (tuned or default).
"""

import json
import os
import statistics
import subprocess
import sys

from nets import NETS, TABLE, cheapest_first, named

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Overridable for scripts/gpu_check.sh, which carries the binary and trunks elsewhere.
ORACLE = os.environ.get("LPIPS_ORACLE_DIR", os.path.join(ROOT, "tests", "oracle"))
TIMING = os.environ.get("LPIPS_BENCH_TIMING", os.path.join(ROOT, "target", "release", "examples", "timing"))
# cpu, or cuda (both sides on GPU 0); LPIPS_BENCH_PRECISION (f32, f16, bf16) is ours only.
DEVICE = os.environ.get("LPIPS_BENCH_DEVICE", "cpu")


def trunk_path(net):
    """The oracle's safetensors trunk, or the `.pt` one gpu_check.sh writes on the GPU
    machine (both sides read either)."""
    stem = os.path.join(ORACLE, f"trunk_{net}")
    return stem + ".safetensors" if os.path.exists(stem + ".safetensors") else stem + ".pt"


def worker(job, net, size, batch, seconds, threads):
    """The reference's side of one job; prints the same JSON as examples/timing.rs."""
    import resource
    import time

    import torch
    import lpips

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from reference_trunk import load_trunk, read_trunk

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = lpips.LPIPS(net=TABLE[net].reference, pnet_rand=True, verbose=False).eval()
    load_trunk(model, read_trunk(os.path.join(ORACLE, f"trunk_{net}")))
    model = model.to(DEVICE)
    a, b, c = (torch.rand(batch, 3, size, size, device=DEVICE) * 2 - 1 for _ in range(3))
    if job == "pairs":
        def run():
            model(a, b)
            if DEVICE != "cpu":
                torch.cuda.synchronize()  # kernels are asynchronous; ours copies values back
    elif job == "triplets":
        # The body of the reference's score_2afc_dataset loop.
        def run():
            d0 = model(a, b).data.cpu().numpy().flatten().tolist()
            d1 = model(a, c).data.cpu().numpy().flatten().tolist()
            return d0, d1
    else:
        raise SystemExit(f"unknown job {job}")
    times = []
    with torch.no_grad():
        run()
        run()
        start = time.perf_counter()
        while len(times) < 5 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"times": times, "peak_rss_kib": peak}))


# The same settings as lpips::tune_cpu_allocator, through glibc's environment variables,
# and libtorch's allocator on transparent huge pages, as the `lpips` command sets it.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(2 ** 32 - 1),
                "THP_MEM_ALLOC_ENABLE": "1"}


def bench_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="true", OMP_PLACES="cores")
    if os.environ.get("LPIPS_BENCH_MALLOC", "tuned") == "tuned":
        env.update(TUNED_MALLOC)
    return env


def run_side(cmd, threads):
    env = bench_env(threads)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(job, net, size, batch, rounds, seconds, threads):
    """Medians of every timed call on each side, the median of the per-round ratios
    (robust to a noisy spell hitting one side of one round), and peak memories."""
    ref_cmd = [sys.executable, os.path.abspath(__file__), "--worker", job, net, str(size), str(batch),
               str(seconds), str(threads)]
    our_cmd = [TIMING, job, net, str(size), str(batch), str(seconds), str(threads), trunk_path(net)]
    ref, ours = {"times": [], "peak": 0}, {"times": [], "peak": 0}
    ratios = []
    for _ in range(rounds):
        medians = []
        for side, cmd in ((ref, ref_cmd), (ours, our_cmd)):
            r = run_side(cmd, threads)
            side["times"] += r["times"]
            side["peak"] = max(side["peak"], r["peak_rss_kib"] or 0)
            medians.append(statistics.median(r["times"]))
        ratios.append(medians[0] / medians[1])
    return (statistics.median(ref["times"]), statistics.median(ours["times"]), ref["peak"], ours["peak"],
            statistics.median(ratios))


def taps_inside(size, out, kernel, stride, padding):
    """Kernel taps that land on the input (not on the zero padding), summed over the
    output positions of one spatial dimension."""
    return sum(max(0, min(kernel, size + padding - o * stride) - max(0, padding - o * stride))
               for o in range(out))


def conv_flops(net, size):
    """Multiply-adds x 2 of the trunk's convolutions for one image, up to the last tap:
    nominal (every tap, the usual count) and without the taps that fall on zero padding,
    which oneDNN skips (a third of AlexNet's nominal count at 64x64, where its last three
    convolutions run on 3x3 maps)."""
    import torch
    import lpips

    model = lpips.LPIPS(net=TABLE[net].reference, pnet_rand=True, verbose=False).eval()
    total = [0, 0]

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        per_tap = 2 * output.shape[0] * output.shape[1] * module.in_channels // module.groups
        total[0] += per_tap * output.shape[2] * output.shape[3] * k
        (h, w), (oh, ow) = inputs[0].shape[2:], output.shape[2:]
        (kh, kw), (sh, sw), (ph, pw) = module.kernel_size, module.stride, module.padding
        total[1] += per_tap * taps_inside(h, oh, kh, sh, ph) * taps_inside(w, ow, kw, sw, pw)

    for m in model.net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.net(torch.zeros(1, 3, size, size))
    return total[0], total[1]


def cpu_peak_gflops(threads):
    """FP32 peak: cores x measured clock x FLOPs per cycle per core (2 FMA pipes of 256
    bits with AVX2, and on AMD's AVX-512, which splits 512-bit operations in two; 2 x 512
    bits on Intel AVX-512). The clock is measured (`timing clock`), as a virtual machine's
    /proc/cpuinfo shows the base clock, not the boost clock the cores run at."""
    info = open("/proc/cpuinfo").read()
    flags = next(l for l in info.splitlines() if l.startswith("flags")).split()
    if "avx512f" in flags and "AuthenticAMD" not in info:
        per_cycle, why = 64, "2 x 512-bit FMA"
    elif "fma" in flags:
        per_cycle, why = 32, "2 x 256-bit FMA"
    else:
        per_cycle, why = 8, "SSE"
    ghz = json.loads(subprocess.run([TIMING, "clock"], check=True, capture_output=True,
                                    text=True).stdout)["ghz"]
    cores = min(threads, os.cpu_count())
    return cores * ghz * per_cycle, f"{cores} cores x {ghz:.2f} GHz (measured) x {per_cycle} FLOP/cycle ({why})"


def sgemm_gflops(threads):
    """What libtorch's own large matrix product reaches, as a practical ceiling."""
    import time

    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(4096, 4096), torch.rand(4096, 4096)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b), time) for _ in range(3))
    return 2 * 4096 ** 3 / best / 1e9


def _timed(fn, time):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main():
    threads = int(os.environ.get("LPIPS_BENCH_THREADS", os.cpu_count()))
    rounds = int(os.environ.get("LPIPS_BENCH_ROUNDS", "5"))
    seconds = float(os.environ.get("LPIPS_BENCH_SECONDS", "1"))
    # Off the CPU, the CPU's peak and the folder tool (image decoding) say little.
    default_only = "pairs,triplets,load,flops,dirs,workflows" if DEVICE == "cpu" else "pairs,triplets,load"
    only = set(filter(None, os.environ.get("LPIPS_BENCH_ONLY", default_only).split(",")))
    import torch
    malloc = os.environ.get("LPIPS_BENCH_MALLOC", "tuned")
    if DEVICE != "cpu":
        print(f"device {DEVICE}: {torch.cuda.get_device_name(0)}; lpips precision "
              f"{os.environ.get('LPIPS_BENCH_PRECISION', 'f32')} (the reference: f32)")
    print(f"threads {threads} (bound to cores); glibc malloc {malloc}; torch {torch.__version__}; "
          f"{rounds} alternating rounds of {seconds} s a side; medians\n")
    results = {}
    memory = []
    if "pairs" in only:
        print("| pairs | input | batch | reference (ms) | lpips (ms) | speed-up |")
        print("|---|---|---|---|---|---|")
        for net in NETS:
            for size in [64, 256]:
                for batch in [1, 8]:
                    r, o, rp, op, ratio = side_by_side("pairs", net, size, batch, rounds, seconds, threads)
                    results[(net, size, batch)] = (r, o)
                    memory.append((f"pairs {net} {size}x{size} b{batch}", rp, op))
                    print(f"| {net} | {size}x{size} | {batch} | {r * 1e3:.2f} | {o * 1e3:.2f} | {ratio:.2f}x |", flush=True)
        print()
    if "triplets" in only:
        print("| 2AFC triplets | input | batch | reference (ms) | lpips (ms) | speed-up |")
        print("|---|---|---|---|---|---|")
        for net in cheapest_first():
            batch = TABLE[net].triplet_batch
            r, o, rp, op, ratio = side_by_side("triplets", net, 64, batch, rounds, seconds, threads)
            memory.append((f"triplets {net} 64x64 b{batch}", rp, op))
            print(f"| {net} | 64x64 | {batch} | {r * 1e3:.2f} | {o * 1e3:.2f} | {ratio:.2f}x |", flush=True)
        print()
    if memory:
        print("| job | reference peak RSS (MiB) | lpips peak RSS (MiB) | ratio |")
        print("|---|---|---|---|")
        for job, rp, op in memory:
            print(f"| {job} | {rp / 1024:.0f} | {op / 1024:.0f} | {op / rp:.2f} |")
        print()
    if "load" in only:
        (net,) = named("alex")
        r = run_side([TIMING, "load", net, "64", "1", str(seconds), str(threads), trunk_path(net)], threads)
        print(f"model construction, {net} from {os.path.basename(trunk_path(net))}: "
              f"{statistics.median(r['times']) * 1e3:.1f} ms (median)\n")
    if "flops" in only:
        peak, how = cpu_peak_gflops(threads)
        print(f"CPU FP32 peak: {peak:.0f} GFLOP/s = {how}; libtorch's 4096x4096 SGEMM: "
              f"{sgemm_gflops(threads):.0f} GFLOP/s")
        print("GFLOP/s from the nominal count; in brackets, without taps on zero padding")
        print("| trunk | input | batch | GFLOP per call | reference GFLOP/s | lpips GFLOP/s | lpips, of peak |")
        print("|---|---|---|---|---|---|---|")
        for net, size in [(net, size) for net in named("alex", "vgg") for size in [64, 256]]:
            nominal, inside = (2 * f for f in conv_flops(net, size))  # both images of a pair
            for batch in [1, 8]:
                if (net, size, batch) not in results:
                    results[(net, size, batch)] = side_by_side("pairs", net, size, batch, 1, seconds, threads)[:2]
                r, o = results[(net, size, batch)]
                g, u = nominal * batch / 1e9, inside * batch / 1e9
                print(f"| {net} | {size}x{size} | {batch} | {g:.2f} ({u:.2f}) | {g / r:.0f} ({u / r:.0f}) "
                      f"| {g / o:.0f} ({u / o:.0f}) | {g / o / peak:.0%} ({u / o / peak:.0%}) |")
        print()
    if "dirs" in only:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_folders.py")], check=True)
        # `lpips dirs --batch-size 8` on 256x256 photographs against the reference's batched loop.
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_dirs_photos.py")], check=True)
    if "workflows" in only:
        # `lpips eval 2afc` and `lpips train` against the reference's scripts, and the
        # CLI on a busy machine (its own LPIPS_BENCH_ONLY=eval,train,busy).
        env = {k: v for k, v in os.environ.items() if k != "LPIPS_BENCH_ONLY"}
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_workflows.py")], check=True, env=env)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        job, net, size, batch, seconds, threads = sys.argv[2:8]
        worker(job, net, int(size), int(batch), float(seconds), int(threads))
    else:
        main()

#!/usr/bin/env python3
"""Whole workflows, side by side with the reference, as a user runs them: each run is a
whole process (interpreter or binary start, model, data loading, the loop, output).

  eval   `lpips eval 2afc` against the reference repository's test_dataset_model.py
         (lpips.Trainer in test mode, its TwoAFCDataset/DataLoader, score_2afc_dataset)
  train  `lpips train --epochs 1 --decay-epochs 0` against its train.py (lpips.Trainer,
         shuffled DataLoader, optimize_parameters per batch, trainer.save per epoch)
  busy   our CLI (eval, train, dirs) with every core kept busy by other processes,
         under each OpenMP wait policy and thread count: how the CLI's defaults were
         chosen

test_dataset_model.py, train.py and the repository's data loaders are not in the pip
package (and need ImageNet weights); their loops are reproduced here line for line as
`reference_eval` and `reference_train`, on the oracle's seeded AlexNet trunk (the same
file ours reads). Both scripts default to a DataLoader with 4 worker processes
(`--nThreads 4`); the reference is run that way and with `num_workers=0`, and the
speed-up is given against the faster of the two. Skipped in the reference: train.py's
HTML visualiser (which would only slow it).

The data set: LPIPS_BENCH_TRIPLETS (default 3000) 64x64 triplets in BAPPS layout, two
subsets, written once to target/bench_workflows/. Rounds (LPIPS_BENCH_ROUNDS, default
3) alternate the sides after one untimed warm-up; medians. Threads:
LPIPS_BENCH_THREADS (default: all cores), as OMP_NUM_THREADS for both sides.

  make bench-workflows   (also run by make bench-compare); LPIPS_BENCH_ONLY=eval,train,busy
  (default: all)
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
TRUNK = os.path.join(ORACLE, "trunk_alex.safetensors")
BINARY = os.path.join(ROOT, "target", "release", "lpips")
DATA = os.path.join(ROOT, "target", "bench_workflows")
TRIPLETS = int(os.environ.get("LPIPS_BENCH_TRIPLETS", "3000"))
SUBSETS = ("traditional", "cnn")


# ---------------------------------------------------------------- the reference's side

def reference_loader(roots, batch_size, shuffle, workers):
    """The repository's data/custom_dataset_data_loader.py with dataset/twoafc_dataset.py:
    PIL convert('RGB'), Resize(64), ToTensor, Normalize(0.5, 0.5), judgements as
    FloatTensor(np.load(p).reshape(1, 1, 1)), each folder's files sorted."""
    import numpy as np
    import torch
    import torchvision.transforms as transforms
    from PIL import Image

    exts = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP")

    def make_dataset(dirs, mode="img"):
        found = []
        for d in dirs:
            for root, _, names in sorted(os.walk(d)):
                found += [os.path.join(root, n) for n in names if n.endswith(exts if mode == "img" else (".npy",))]
        return found

    class TwoAFCDataset(torch.utils.data.Dataset):
        def __init__(self):
            self.ref_paths = sorted(make_dataset([os.path.join(r, "ref") for r in roots]))
            self.p0_paths = sorted(make_dataset([os.path.join(r, "p0") for r in roots]))
            self.p1_paths = sorted(make_dataset([os.path.join(r, "p1") for r in roots]))
            self.judge_paths = sorted(make_dataset([os.path.join(r, "judge") for r in roots], "np"))
            self.transform = transforms.Compose([transforms.Resize(64), transforms.ToTensor(),
                                                 transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

        def __getitem__(self, i):
            p0 = self.transform(Image.open(self.p0_paths[i]).convert("RGB"))
            p1 = self.transform(Image.open(self.p1_paths[i]).convert("RGB"))
            ref = self.transform(Image.open(self.ref_paths[i]).convert("RGB"))
            judge = torch.FloatTensor(np.load(self.judge_paths[i]).reshape((1, 1, 1)))
            return {"p0": p0, "p1": p1, "ref": ref, "judge": judge, "p0_path": self.p0_paths[i],
                    "p1_path": self.p1_paths[i], "ref_path": self.ref_paths[i], "judge_path": self.judge_paths[i]}

        def __len__(self):
            return len(self.p0_paths)

    class Loader:
        def __init__(self):
            self.loader = torch.utils.data.DataLoader(TwoAFCDataset(), batch_size=batch_size, shuffle=shuffle,
                                                      num_workers=workers)

        def load_data(self):
            return self.loader

        def __len__(self):
            return len(self.loader.dataset)

    return Loader()


def reference_trainer(is_train):
    import lpips
    from reference_trunk import load_trunk, read_trunk

    trainer = lpips.Trainer()
    # pnet_rand: ImageNet weights cannot be downloaded; the seeded trunk replaces them.
    trainer.initialize(model="lpips", net="alex", use_gpu=False, is_train=is_train, pnet_rand=True)
    load_trunk(trainer.net, read_trunk(TRUNK[: -len(".safetensors")]))
    return trainer


def reference_eval(data, workers):
    """test_dataset_model.py: one data loader and score_2afc_dataset per subset."""
    import lpips

    trainer = reference_trainer(is_train=False)
    scores = {}
    for subset in SUBSETS:
        loader = reference_loader([os.path.join(data, subset)], 50, False, workers)
        score, _ = lpips.score_2afc_dataset(loader, trainer.forward, name=subset)
        print("  Dataset [%s]: %.2f" % (subset, 100.0 * score))
        scores[subset] = score
    print(json.dumps(scores))


def reference_train(data, out, workers):
    """train.py for one epoch (nepoch 1, nepoch_decay 0): a shuffled loader over all
    subsets, optimize_parameters per batch, the save per epoch."""
    import torch

    torch.manual_seed(0)
    trainer = reference_trainer(is_train=True)
    loader = reference_loader([os.path.join(data, s) for s in SUBSETS], 50, True, workers)
    dataset = loader.load_data()
    dataset_size = len(loader)
    total_steps = 0
    for epoch in range(1, 2):
        for data_batch in dataset:
            total_steps += 50
            trainer.set_input(data_batch)
            trainer.optimize_parameters()
            if total_steps % 5000 == 0:  # print_freq
                errors = trainer.get_current_errors()
                print(epoch, total_steps - dataset_size * (epoch - 1), errors)
        trainer.save(out, "latest")
        trainer.save(out, epoch)
    print(json.dumps({"steps": total_steps // 50}))


# ---------------------------------------------------------------- data

def make_data():
    """BAPPS layout: DATA/<subset>/{ref,p0,p1}/NNNNNN.png, judge/NNNNNN.npy."""
    stamp = os.path.join(DATA, f"stamp-{TRIPLETS}")
    if os.path.exists(stamp):
        return
    import cv2
    import numpy as np

    shutil.rmtree(DATA, ignore_errors=True)
    rng = np.random.default_rng(20261129)
    per = [TRIPLETS // len(SUBSETS) + (i < TRIPLETS % len(SUBSETS)) for i in range(len(SUBSETS))]
    for subset, n in zip(SUBSETS, per):
        for sub in ("ref", "p0", "p1", "judge"):
            os.makedirs(os.path.join(DATA, subset, sub))
        for i in range(n):
            coarse = rng.integers(0, 256, (int(rng.integers(3, 12)),) * 2 + (3,), dtype=np.uint8)
            ref = cv2.resize(coarse, (64, 64), interpolation=cv2.INTER_LINEAR).astype(np.float64)
            p0 = cv2.GaussianBlur(ref, (0, 0), float(rng.uniform(0.3, 2.0)))
            p1 = ref + rng.normal(0, rng.uniform(2, 30), ref.shape)
            for sub, img in (("ref", ref), ("p0", p0), ("p1", p1)):
                cv2.imwrite(os.path.join(DATA, subset, sub, f"{i:06d}.png"),
                            np.clip(np.round(img), 0, 255).astype(np.uint8))
            np.save(os.path.join(DATA, subset, "judge", f"{i:06d}.npy"),
                    np.array([rng.integers(0, 6) / 5.0], dtype=np.float32))
    open(stamp, "w").close()


# ---------------------------------------------------------------- running

def timed(cmd, env):
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if p.returncode:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return wall, p.stdout


def base_env(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1", LPIPS_OFFLINE="1")
    for key in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND", "OMP_PLACES"):
        env.pop(key, None)
    return env


def reference_cmd(job, workers, out=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--reference", job, DATA, str(workers)]
    return cmd + ([out] if out else [])


def our_eval_cmd(out):
    return [BINARY, "eval", "2afc", *[os.path.join(DATA, s) for s in SUBSETS], "--trunk", TRUNK,
            "--format", "json", "--out", out, "--quiet"]


def our_train_cmd(out):
    return [BINARY, "train", *[os.path.join(DATA, s) for s in SUBSETS], "--trunk", TRUNK, "--epochs", "1",
            "--decay-epochs", "0", "--out", out, "--quiet"]


def side_by_side(name, commands, rounds, threads):
    """commands: label -> function(scratch folder) -> argv. Returns label -> median s."""
    env = base_env(threads)
    times = {label: [] for label in commands}
    outputs = {}
    for r in range(rounds + 1):
        for label, make in commands.items():
            with tempfile.TemporaryDirectory() as scratch:
                wall, stdout = timed(make(scratch), env)
                if label.startswith("lpips"):
                    out = os.path.join(scratch, "out.json")
                    stdout = open(out).read() if os.path.exists(out) else stdout
                outputs[label] = stdout
            if r:  # round 0 warms the page cache and Python's bytecode
                times[label].append(wall)
        print(f"  {name} round {r}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v and r),
              file=sys.stderr, flush=True)
    return {k: statistics.median(v) for k, v in times.items()}, outputs


def bench_eval(rounds, threads):
    commands = {
        "reference, 4 loader workers": lambda s: reference_cmd("eval", 4),
        "reference, no loader workers": lambda s: reference_cmd("eval", 0),
        "lpips eval 2afc": lambda s: our_eval_cmd(os.path.join(s, "out.json")),
    }
    medians, outputs = side_by_side("eval", commands, rounds, threads)
    ref = json.loads(outputs["reference, 4 loader workers"].strip().splitlines()[-1])
    ours = {s["name"]: s["score"] for s in json.loads(outputs["lpips eval 2afc"])["subsets"]}
    worst = max(abs(ref[s] - ours[s]) for s in SUBSETS)
    report(f"`lpips eval 2afc`, {TRIPLETS} triplets (alex v0.1, batch 50)", medians, "lpips eval 2afc")
    print(f"2AFC scores: reference {ref}, lpips {ours}; largest difference {worst:.1e}\n")


def bench_train(rounds, threads):
    commands = {
        "reference, 4 loader workers": lambda s: reference_cmd("train", 4, s),
        "reference, no loader workers": lambda s: reference_cmd("train", 0, s),
        "lpips train": lambda s: our_train_cmd(s),
    }
    medians, _ = side_by_side("train", commands, rounds, threads)
    report(f"`lpips train`, one epoch of {TRIPLETS} triplets (alex lin, batch 50)", medians, "lpips train")
    print()


def report(title, medians, ours_label):
    best_ref = min(v for k, v in medians.items() if k.startswith("reference"))
    print(f"{title}, whole processes, medians")
    print("| run | seconds | triplets/s | lpips speed-up |")
    print("|---|---|---|---|")
    for label, t in medians.items():
        speed = "" if label == ours_label else f"{t / medians[ours_label]:.2f}x"
        print(f"| {label} | {t:.2f} | {TRIPLETS / t:.0f} | {speed} |")
    print(f"speed-up against the faster reference run: {best_ref / medians[ours_label]:.2f}x", flush=True)


# ---------------------------------------------------------------- a busy machine

SPINNER = "while True: pass"


def busy(n):
    """n processes that keep a core each busy (what a parallel build or another job does)."""
    return [subprocess.Popen([sys.executable, "-c", SPINNER]) for _ in range(n)]


def bench_busy(rounds, cores):
    """Each workload idle and with `cores` spinning processes, under each setting.
    OpenMP (libgomp, as in the torch wheel) reads its wait policy when libtorch loads,
    so each setting is an environment of a fresh process. "lpips's default" sets
    nothing (so `lpips train` restarts itself with passive waiting);
    GOMP_SPINCOUNT=300000 is libgomp's own default spin, which stops that restart."""
    settings = [("lpips's default", cores, {}),
                ("OMP_WAIT_POLICY=PASSIVE", cores, {"OMP_WAIT_POLICY": "PASSIVE"}),
                ("OMP_WAIT_POLICY=ACTIVE", cores, {"OMP_WAIT_POLICY": "ACTIVE"}),
                ("GOMP_SPINCOUNT=300000 (libgomp's default)", cores, {"GOMP_SPINCOUNT": "300000"}),
                ("GOMP_SPINCOUNT=1000", cores, {"GOMP_SPINCOUNT": "1000"})]
    if cores > 1:
        settings.append(("lpips's default", 1, {}))
    n = max(1, TRIPLETS // 3)
    small = os.path.join(DATA, "busy")
    if not os.path.exists(os.path.join(small, "stamp")):
        shutil.rmtree(small, ignore_errors=True)
        for sub in ("ref", "p0", "p1", "judge"):
            os.makedirs(os.path.join(small, "set", sub))
            names = sorted(os.listdir(os.path.join(DATA, SUBSETS[0], sub)))[:n]
            for name in names:
                os.link(os.path.join(DATA, SUBSETS[0], sub, name), os.path.join(small, "set", sub, name))
        open(os.path.join(small, "stamp"), "w").close()
    data = os.path.join(small, "set")
    workloads = {
        "eval": lambda s: [BINARY, "eval", "2afc", data, "--trunk", TRUNK, "--quiet", "--out",
                           os.path.join(s, "o.txt")],
        "train": lambda s: [BINARY, "train", data, "--trunk", TRUNK, "--epochs", "1", "--decay-epochs", "0",
                            "--quiet", "--out", s],
        "dirs": lambda s: [BINARY, "dirs", os.path.join(data, "ref"), os.path.join(data, "p0"), "--trunk", TRUNK,
                           "--quiet", "--format", "csv", "--out", os.path.join(s, "o.csv")],
    }
    results = {}
    for load in ("idle", "busy"):
        spinners = busy(cores) if load == "busy" else []
        try:
            time.sleep(0.5 if spinners else 0)
            for r in range(rounds):
                for work, make in workloads.items():
                    for label, threads, extra in settings:
                        env = base_env(threads)
                        env.update(extra)
                        with tempfile.TemporaryDirectory() as scratch:
                            wall, _ = timed(make(scratch), env)
                        results.setdefault((work, threads, label, load), []).append(wall)
                print(f"  busy: {load} round {r} done", file=sys.stderr, flush=True)
        finally:
            for p in spinners:
                p.kill()
                p.wait()
    print(f"Our CLI on a busy machine: {cores} other processes each spinning on a core; {n} triplets "
          f"(eval: 2AFC scoring; train: one epoch; dirs: the ref/p0 pairs); whole processes, medians of {rounds}")
    print("| workload | torch threads | OpenMP setting | idle (s) | busy (s) | busy / idle |")
    print("|---|---|---|---|---|---|")
    for work in workloads:
        for label, threads, _ in settings:
            idle = statistics.median(results[(work, threads, label, "idle")])
            loaded = statistics.median(results[(work, threads, label, "busy")])
            print(f"| {work} | {threads} | {label} | {idle:.2f} | {loaded:.2f} | {loaded / idle:.1f}x |")
    print()


def main():
    threads = int(os.environ.get("LPIPS_BENCH_THREADS", os.cpu_count()))
    rounds = int(os.environ.get("LPIPS_BENCH_ROUNDS", "3"))
    only = set(filter(None, os.environ.get("LPIPS_BENCH_ONLY", "eval,train,busy").split(",")))
    make_data()
    print(f"threads {threads}; {TRIPLETS} triplets of 64x64 PNGs in {DATA}\n", flush=True)
    if "eval" in only:
        bench_eval(rounds, threads)
    if "train" in only:
        bench_train(rounds, threads)
    if "busy" in only:
        bench_busy(max(1, rounds - 1), threads)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--reference":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        job, data, workers = sys.argv[2], sys.argv[3], int(sys.argv[4])
        if job == "eval":
            reference_eval(data, workers)
        else:
            reference_train(data, sys.argv[5], workers)
    else:
        main()

#!/usr/bin/env python3
"""Writes a synthetic BAPPS-layout data set and the reference's own numbers on it.

BAPPS itself cannot be downloaded on the test machines, so tests/oracle/bapps/ holds a
small synthetic data set in exactly its layout (64x64 RGB PNG patches, one-value .npy
judgements), and expected.json holds what the reference package (`lpips` 0.1.4) computes
on it: `lpips.score_2afc_dataset` and `lpips.score_jnd_dataset` run on the reference's
own `lpips.LPIPS`, `lpips.L2` and `lpips.DSSIM`, fed by data loaders built as the
reference repository's loaders build them (data/dataset/twoafc_dataset.py and
jnd_dataset.py, which are not in the pip package): PIL `convert('RGB')`, torchvision
`Resize(64)`, `ToTensor()`, `Normalize(0.5, 0.5)`, judgements `np.load(p).reshape(1,1,1)`
as a FloatTensor, each folder's files sorted and paired by position.

Two shims, each forced by something that no longer exists or never worked:
- `skimage.measure.compare_ssim` (what `lpips.dssim` imports) was removed from
  scikit-image; `structural_similarity` with the same arguments replaces it.
- `score_jnd_dataset` collects `func(...).numpy().tolist()` without flattening, so an
  LPIPS output of N x 1 x 1 x 1 gives it an N x 1 x 1 x 1 array whose argsort runs along
  a size-1 axis: its mAP is meaningless. For LPIPS the func passed here flattens the
  output first; L2 and DSSIM return 1-D outputs and go through unchanged.

Values that must be matched to the last bit (scores, `voc_ap` results) are also written
as Python's shortest round-trip string (`score_repr`, `ap_repr`): JSON readers need not
parse floats exactly (serde_json does not by default).

Needs tests/oracle/trunk_alex.safetensors from scripts/gen_oracle.py (run that first;
`make oracle` runs both). Deterministic (seeded). Does nothing when the stamp holds this
script's and that trunk's digests; --force rebuilds.
"""

import hashlib
import io
import json
import os
import shutil
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # score_*_dataset wrap their loops in tqdm

import numpy as np
import torch
import torchvision
import torchvision.transforms as transforms
from PIL import Image
from safetensors.torch import load_file, save_file
from scipy import ndimage

import lpips
import skimage
from reference_trunk import load_trunk
import skimage.measure
from skimage.metrics import structural_similarity

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "bapps")
TRUNK = os.path.join(ORACLE, "trunk_alex.safetensors")
SEED = 20180613
LOAD_SIZE = 64
SIDE = 64
# The reference test script's batch sizes: 50 for LPIPS, 1 for L2/SSIM (they assert it).
LPIPS_BATCH = 50

TWOAFC_VAL = {"trad": 40, "cnn": 40}
JND_VAL = {"trad": 40, "cnn": 40}
N_TRAIN, N_HELDOUT = 300, 100
# Candidate distortions per reference in the training and held-out sets.
CANDIDATES = 6
# Items whose p1 is a byte-for-byte copy of p0 (2AFC: an exact tie, scored 0.5), or
# whose p1 copies p0 (JND: distance exactly 0 for every metric).
IDENTICAL_2AFC = (5, 17, 29, 38)
IDENTICAL_JND = (3, 21, 34)
# (dtype, shape) of the judgement files, cycled, so that readers meet every kind the
# reference's loader reads (not big-endian ones: torch.FloatTensor refuses them).
JUDGE_FORMATS = [("<f4", ()), ("<f8", (1,)), ("<f4", (1, 1, 1)), ("<f8", ()), ("<f4", (1,)),
                 ("<f8", (1, 1, 1))]
# Every 8th patch of each val folder goes into patches.safetensors for exact comparison.
PATCH_STRIDE = 8


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---------------------------------------------------------------- synthetic content

def texture(rng):
    """A smooth random colour texture with some edges and fine grain, float in [0, 255]."""
    c = int(rng.integers(3, 13))
    coarse = rng.uniform(0, 255, (c, c, 3))
    up = ndimage.zoom(coarse, (SIDE / c, SIDE / c, 1), order=1, mode="nearest")[:SIDE, :SIDE]
    gy, gx = np.mgrid[0:SIDE, 0:SIDE] / (SIDE - 1.0)
    img = 0.7 * up + 40 + rng.uniform(-60, 60, 3) * gx[..., None] + rng.uniform(-60, 60, 3) * gy[..., None]
    if rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = rng.integers(0, SIDE - 8, 2)
            hh, ww = rng.integers(6, 32, 2)
            img[y0:y0 + hh, x0:x0 + ww] = 0.5 * img[y0:y0 + hh, x0:x0 + ww] + rng.uniform(0, 128, 3)
    if rng.random() < 0.5:
        theta, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.6)
        phase = np.cos(theta) * gx * SIDE + np.sin(theta) * gy * SIDE
        img += rng.uniform(10, 40) * np.sin(freq * phase)[..., None] * rng.uniform(0.3, 1, 3)
    img += rng.normal(0, rng.uniform(1, 10), img.shape)
    return np.clip(img, 0, 255)


def blur(img, sigma):
    return ndimage.gaussian_filter(img, (sigma, sigma, 0), mode="reflect")


def d_noise(rng, img, s):
    return img + rng.normal(0, 2 + 40 * s, img.shape)


def d_blur(rng, img, s):
    return blur(img, 0.4 + 2.5 * s)


def d_colour(rng, img, s):
    return img + rng.uniform(-1, 1, 3) * (3 + 45 * s)


def d_shift(rng, img, s):
    dy, dx = rng.integers(-2, 3, 2)
    if dy == 0 and dx == 0:
        dx = 1
    pad = np.pad(img, ((2, 2), (2, 2), (0, 0)), mode="edge")
    return pad[2 + dy:2 + dy + SIDE, 2 + dx:2 + dx + SIDE]


def d_quant(rng, img, s):
    levels = max(2, int(round(48 - 44 * s)))
    step = 255.0 / (levels - 1)
    return np.round(img / step) * step


def d_jpeg(rng, img, s):
    buf = io.BytesIO()
    Image.fromarray(to_u8(img)).save(buf, format="JPEG", quality=int(round(70 - 65 * s)))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64)


def d_contrast(rng, img, s):
    factor = 1 + rng.choice([-1, 1]) * (0.05 + 0.5 * s)
    return (img - img.mean()) * factor + img.mean()


def d_updown(rng, img, s):
    f = 1.5 + 2.5 * s
    small = ndimage.zoom(img, (1 / f, 1 / f, 1), order=1)
    up = ndimage.zoom(small, (SIDE / small.shape[0], SIDE / small.shape[1], 1), order=1)
    return up[:SIDE, :SIDE]


def d_checker(rng, img, s):
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    pattern = np.where((yy + xx) % 2 == 0, 1.0, -1.0)[..., None]
    return img + pattern * (2 + 25 * s) * rng.uniform(0.5, 1, 3)


def d_warp(rng, img, s):
    amp = 0.3 + 3 * s
    field = [ndimage.zoom(rng.normal(0, 1, (6, 6)), SIDE / 6, order=1)[:SIDE, :SIDE] * amp for _ in range(2)]
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float64)
    coords = [yy + field[0], xx + field[1]]
    return np.stack([ndimage.map_coordinates(img[..., ch], coords, order=1, mode="nearest") for ch in range(3)], -1)


def d_sharpen(rng, img, s):
    return img + (0.5 + 2.5 * s) * (img - blur(img, 1.0))


def d_desaturate(rng, img, s):
    grey = img.mean(axis=2, keepdims=True)
    return img + (0.2 + 0.8 * s) * (grey - img)


def d_hallucinate(rng, img, s):
    tex = blur(rng.normal(0, 1, img.shape), 0.7)
    return img + tex * (3 + 30 * s)


TRAD = [d_noise, d_blur, d_colour, d_shift, d_quant, d_jpeg, d_contrast]
CNN = [d_updown, d_checker, d_warp, d_sharpen, d_desaturate, d_hallucinate, d_blur]


def to_u8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def distort(rng, img, kinds, s=None):
    if s is None:
        s = rng.uniform(0, 1)
    # Sometimes two distortions in a row, as BAPPS's traditional set composes them.
    out = kinds[int(rng.integers(len(kinds)))](rng, img, s)
    if rng.random() < 0.25:
        out = kinds[int(rng.integers(len(kinds)))](rng, np.clip(out, 0, 255), rng.uniform(0, 0.5))
    return to_u8(out)


def perceived(ref, p):
    """The synthetic humans' sense of difference: blurred error, luminance weighted."""
    d = blur(ref.astype(np.float64) - p.astype(np.float64), 0.8)
    lum = d.mean(axis=2)
    chroma = d - lum[..., None]
    return np.sqrt(np.mean(lum ** 2) + 0.3 * np.mean(chroma ** 2))


# ---------------------------------------------------------------- files

def save_png(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


def save_judgement(path, value, index):
    dtype, shape = JUDGE_FORMATS[index % len(JUDGE_FORMATS)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.full(shape, value, dtype=dtype))


def write_2afc_images(rng, root, n, kinds, identical=(), pick=None):
    """ref/p0/p1 PNGs; returns the uint8 arrays for the synthetic humans. `pick(ref)`
    chooses (p0, p1) where two independent distortions will not do."""
    items = []
    for i in range(n):
        ref = texture(rng)
        if pick is not None:
            p0, p1 = pick(ref)
        else:
            p0 = distort(rng, ref, kinds)
            p1 = p0 if i in identical else distort(rng, ref, kinds)
        name = f"{i:06d}.png"
        save_png(os.path.join(root, "ref", name), to_u8(ref))
        save_png(os.path.join(root, "p0", name), p0)
        if i in identical:
            shutil.copyfile(os.path.join(root, "p0", name), os.path.join(root, "p1", name))
        else:
            save_png(os.path.join(root, "p1", name), p1)
        items.append((to_u8(ref), p0, p1))
    return items


def human_2afc(rng, items, identical):
    judges = []
    for i, (ref, p0, p1) in enumerate(items):
        if i in identical:
            votes = rng.integers(0, 2, 5)  # nothing to choose between: coin flips
        else:
            d0, d1 = perceived(ref, p0), perceived(ref, p1)
            votes = [d1 * np.exp(rng.normal(0, 0.35)) < d0 * np.exp(rng.normal(0, 0.35)) for _ in range(5)]
        judges.append(float(np.sum(votes)) / 5)
    return judges


def write_judgements(root, folder, values):
    for i, v in enumerate(values):
        save_judgement(os.path.join(root, folder, f"{i:06d}.npy"), v, i)


def write_jnd(rng, root, n, kinds):
    sames = []
    for i in range(n):
        ref = texture(rng)
        if i in IDENTICAL_JND:
            p1 = to_u8(ref)
        else:
            # Mostly weak distortions: JND pairs sit near the threshold of visibility.
            p1 = distort(rng, ref, kinds, s=rng.uniform(0, 0.6) ** 2)
        name = f"{i:06d}.png"
        save_png(os.path.join(root, "p0", name), to_u8(ref))
        if i in IDENTICAL_JND:
            shutil.copyfile(os.path.join(root, "p0", name), os.path.join(root, "p1", name))
        else:
            save_png(os.path.join(root, "p1", name), p1)
        d = perceived(to_u8(ref), p1)
        saw_none = [d * np.exp(rng.normal(0, 0.5)) < 3.0 for _ in range(3)]
        sames.append(float(np.sum(saw_none)) / 3)
    write_judgements(root, "same", sames)
    return sames


# ---------------------------------------------------------------- reference loaders

IMG_EXTENSIONS = [".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP"]


def make_dataset(directory, mode="img"):
    """The reference repository's data/image_folder.py `make_dataset`."""
    exts = IMG_EXTENSIONS if mode == "img" else [".npy"]
    assert os.path.isdir(directory), directory
    paths = []
    for root, _, fnames in sorted(os.walk(directory)):
        for fname in fnames:
            if any(fname.endswith(e) for e in exts):
                paths.append(os.path.join(root, fname))
    return paths


def reference_transform(load_size=LOAD_SIZE):
    return transforms.Compose([transforms.Resize(load_size), transforms.ToTensor(),
                               transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])


class TwoAFCDataset(torch.utils.data.Dataset):
    """As the reference repository's data/dataset/twoafc_dataset.py reads one root."""

    def __init__(self, root):
        self.ref_paths = sorted(make_dataset(os.path.join(root, "ref")))
        self.p0_paths = sorted(make_dataset(os.path.join(root, "p0")))
        self.p1_paths = sorted(make_dataset(os.path.join(root, "p1")))
        self.judge_paths = sorted(make_dataset(os.path.join(root, "judge"), mode="np"))
        self.transform = reference_transform()

    def __getitem__(self, index):
        load = lambda p: self.transform(Image.open(p).convert("RGB"))
        judge = torch.FloatTensor(np.load(self.judge_paths[index]).reshape((1, 1, 1)))
        return {"p0": load(self.p0_paths[index]), "p1": load(self.p1_paths[index]),
                "ref": load(self.ref_paths[index]), "judge": judge}

    def __len__(self):
        return len(self.p0_paths)


class JNDDataset(torch.utils.data.Dataset):
    """As the reference repository's data/dataset/jnd_dataset.py reads one root."""

    def __init__(self, root):
        self.p0_paths = sorted(make_dataset(os.path.join(root, "p0")))
        self.p1_paths = sorted(make_dataset(os.path.join(root, "p1")))
        self.same_paths = sorted(make_dataset(os.path.join(root, "same"), mode="np"))
        self.transform = reference_transform()

    def __getitem__(self, index):
        load = lambda p: self.transform(Image.open(p).convert("RGB"))
        same = torch.FloatTensor(np.load(self.same_paths[index]).reshape((1, 1, 1)))
        return {"p0": load(self.p0_paths[index]), "p1": load(self.p1_paths[index]), "same": same}

    def __len__(self):
        return len(self.p0_paths)


class Loader:
    """What score_*_dataset expect of the repository's CustomDatasetDataLoader: serial
    batches (the test script's serial_batches=True), no shuffling."""

    def __init__(self, dataset, batch_size):
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)

    def load_data(self):
        return self.loader


def compare_ssim_shim(p0, p1, data_range=None, multichannel=False):
    """skimage.measure.compare_ssim as lpips.dssim calls it, on its replacement."""
    return structural_similarity(p0, p1, data_range=data_range, channel_axis=-1 if multichannel else None)


skimage.measure.compare_ssim = compare_ssim_shim


# ---------------------------------------------------------------- models

def lpips_model(trunk, heads=None):
    """alex v0.1 on the oracle's random trunk; the package's heads unless `heads` given."""
    model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, pretrained=heads is None, verbose=False)
    load_trunk(model, trunk)
    if heads is not None:
        state = model.state_dict()
        for key, w in heads.items():
            # `lin{k}` and `lins.{k}` are the same parameters under two names; both are
            # loaded, so both must carry the new weights.
            state[key] = w
            state[key.replace("lin", "lins.", 1)] = w
        model.load_state_dict(state, strict=True)
    return model.eval()


def teacher_heads(rng):
    """Non-negative heads on layers 3 and 4 only (sparse random channels): the hidden
    rule the synthetic humans of the training set follow."""
    heads = {}
    for k, ch in enumerate([64, 192, 384, 256, 256]):
        w = np.zeros(ch, dtype=np.float32)
        if k in (2, 3):
            chosen = rng.choice(ch, size=ch // 8, replace=False)
            w[chosen] = rng.uniform(0.2, 1.0, len(chosen))
        heads[f"lin{k}.model.1.weight"] = torch.from_numpy(w.reshape(1, ch, 1, 1))
    return heads


def metric_funcs(trunk):
    model = lpips_model(trunk)
    return {
        # 2AFC flattens by itself; JND does not (see the module docstring).
        "lpips": (LPIPS_BATCH, model.forward, lambda a, b: model(a, b).flatten()),
        "l2_rgb": (1,) + (lpips.L2(use_gpu=False, colorspace="RGB"),) * 2,
        "l2_lab": (1,) + (lpips.L2(use_gpu=False, colorspace="Lab"),) * 2,
        "ssim_rgb": (1,) + (lpips.DSSIM(use_gpu=False, colorspace="RGB"),) * 2,
        "ssim_lab": (1,) + (lpips.DSSIM(use_gpu=False, colorspace="Lab"),) * 2,
    }


def rel(path):
    return os.path.relpath(path, OUT)


def check_orderings(what, values, labels):
    """Equal distances with different labels would leave the score to the reference's
    unstable argsort; near-equal ones to last-bit differences between implementations.
    Neither may happen in the oracle."""
    order = np.argsort(values, kind="stable")
    v, lab = np.asarray(values)[order], np.asarray(labels)[order]
    for i in range(1, len(v)):
        if lab[i] != lab[i - 1] and v[i] - v[i - 1] <= 1e-5 * abs(v[i]) + 1e-9:
            raise SystemExit(f"{what}: (near) tie {v[i - 1]} / {v[i]} between different labels; change the seed")


def score_twoafc(root, funcs, identical):
    dataset = TwoAFCDataset(root)
    out = {"files": {k: [rel(p) for p in getattr(dataset, f"{k}_paths")] for k in ["ref", "p0", "p1", "judge"]},
           "metrics": {}}
    for name, (batch, func, _) in funcs.items():
        score, info = lpips.score_2afc_dataset(Loader(dataset, batch), func, name=name)
        d0, d1 = info["d0s"], info["d1s"]
        for i in range(len(d0)):
            same_images = torch.equal(dataset[i]["p0"], dataset[i]["p1"])
            if same_images and d0[i] != d1[i]:
                raise SystemExit(f"{root} {name}: item {i} has p0 == p1 but d0 {d0[i]} != d1 {d1[i]}")
            if not same_images and abs(d0[i] - d1[i]) <= 1e-5 * abs(d0[i]) + 1e-9:
                raise SystemExit(f"{root} {name}: (near) tie in item {i}: {d0[i]} / {d1[i]}; change the seed")
        out["judge"] = info["gts"].tolist()
        out["metrics"][name] = {"score": float(score), "score_repr": repr(float(score)),
                                "d0s": d0.tolist(), "d1s": d1.tolist()}
    return out


def score_jnd(root, funcs):
    dataset = JNDDataset(root)
    out = {"files": {k: [rel(p) for p in getattr(dataset, f"{k}_paths")] for k in ["p0", "p1", "same"]},
           "metrics": {}}
    for name, (batch, _, func) in funcs.items():
        score, info = lpips.score_jnd_dataset(Loader(dataset, batch), func, name=name)
        check_orderings(f"{root} {name}", info["ds"], info["sames"])
        out["same"] = info["sames"].tolist()
        out["metrics"][name] = {"score": float(score), "score_repr": repr(float(score)),
                                "ds": info["ds"].tolist()}
    return out


def twoafc_distances(model, root):
    d0s, d1s, gts = [], [], []
    for data in Loader(TwoAFCDataset(root), LPIPS_BATCH).load_data():
        d0s += model(data["ref"], data["p0"]).flatten().tolist()
        d1s += model(data["ref"], data["p1"]).flatten().tolist()
        gts += data["judge"].flatten().tolist()
    return np.array(d0s), np.array(d1s), np.array(gts)


def twoafc_formula(d0, d1, j):
    return float(np.mean((d0 < d1) * (1.0 - j) + (d1 < d0) * j + (d1 == d0) * 0.5))


def as_input(arr):
    """A uint8 H x W x 3 patch as the reference's loader makes it (1 x 3 x H x W)."""
    return reference_transform()(Image.fromarray(arr))[None]


def write_teacher_set(rng, root, n, kinds, teacher, package, k=None):
    """Triplets whose judgements follow the teacher heads: round(5 sigmoid(k (d0 - d1))) / 5.

    Of several candidate distortions of each reference, the pair that the package's
    heads find most alike becomes p0/p1: on those the package heads are near chance and
    only the teacher's rule tells them apart, which leaves room for training to show."""

    def pick(ref):
        cands = [distort(rng, ref, kinds) for _ in range(CANDIDATES)]
        batch = torch.cat([as_input(c) for c in cands])
        d = package(as_input(to_u8(ref)).expand_as(batch), batch).flatten().numpy()
        logd = np.log(np.maximum(d, 1e-12))
        best = min(((abs(logd[i] - logd[j]), i, j) for i in range(len(d)) for j in range(i + 1, len(d))
                    if not np.array_equal(cands[i], cands[j])))
        return cands[best[1]], cands[best[2]]

    write_2afc_images(rng, root, n, kinds, pick=pick)
    # Placeholder judgements so the loader can run; replaced below.
    write_judgements(root, "judge", [0.5] * n)
    d0, d1, _ = twoafc_distances(teacher, root)
    delta = d0 - d1
    if k is None:
        k = 4.0 / float(np.median(np.abs(delta)))
    judges = np.round(5 / (1 + np.exp(-k * delta))) / 5
    write_judgements(root, "judge", judges.tolist())
    return k, float(np.mean((judges == 0) | (judges == 1)))


def voc_ap_cases():
    cases = [
        ([], []),
        ([1.0], [1.0]),
        ([0.5], [0.25]),
        ([0.25, 0.5, 0.5, 1.0], [1.0, 0.5, 0.6, 0.4]),  # repeated recall, rising precision
        ([0.0, 0.0, 0.5, 0.5, 0.75], [0.0, 0.0, 0.5, 0.4, 0.6]),  # never reaches recall 1
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], [1.0, 0.9, 0.95, 0.6, 0.7, 0.5, 0.55, 0.4, 0.45, 0.3]),
        ([1 / 3, 1 / 3, 2 / 3, 1.0, 1.0], [1.0, 0.5, 2 / 3, 0.75, 0.6]),
    ]
    rng = np.random.default_rng(SEED + 7)
    for n in (9, 31):  # long enough for numpy's blocked summation
        sames = rng.integers(0, 4, n) / 3
        tps, fps = np.cumsum(sames), np.cumsum(1 - sames)
        cases.append(((tps / (tps + (np.sum(sames) - tps))).tolist(), (tps / (tps + fps)).tolist()))
    out = []
    for r, p in cases:
        ap = float(lpips.voc_ap(np.array(r, dtype=np.float64), np.array(p, dtype=np.float64)))
        out.append({"rec": list(r), "prec": list(p), "ap": ap, "ap_repr": repr(ap)})
    return out


def special_images(rng, tensors):
    """PNG modes other than RGB and sizes other than 64, read through the reference's
    transform (scripts/gen_bapps_sizes.py tests many more sizes and modes)."""
    base = to_u8(texture(rng))
    grey = base.mean(axis=2).round().astype(np.uint8)
    alpha = rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    imgs = {
        "grey.png": Image.fromarray(grey, "L"),
        "grey_alpha.png": Image.fromarray(np.stack([grey, alpha], -1), "LA"),
        "rgba.png": Image.fromarray(np.concatenate([base, alpha[..., None]], -1), "RGBA"),
        "palette.png": Image.fromarray(base).quantize(colors=37, dither=Image.Dither.NONE),
        "non_square_64x80.png": Image.fromarray(to_u8(ndimage.zoom(texture(rng), (1, 80 / SIDE, 1), order=1))),
        "resize_down_80x96.png": Image.fromarray(to_u8(ndimage.zoom(texture(rng), (80 / SIDE, 96 / SIDE, 1), order=1))),
        "resize_up_48x40.png": Image.fromarray(to_u8(ndimage.zoom(texture(rng), (48 / SIDE, 40 / SIDE, 1), order=1))),
    }
    transform = reference_transform()
    names = []
    for name, img in imgs.items():
        path = os.path.join(OUT, "special", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path)
        assert Image.open(path).mode == img.mode, (name, Image.open(path).mode)
        tensors[rel(path)] = transform(Image.open(path).convert("RGB")).contiguous()
        names.append(rel(path))
    return names


def main():
    force = "--force" in sys.argv
    if not os.path.exists(TRUNK):
        raise SystemExit(f"{TRUNK} is missing: run scripts/gen_oracle.py first (`make oracle` runs both)")
    stamp_path = os.path.join(OUT, "stamp")
    stamp = f"{digest(os.path.abspath(__file__))}\n{digest(TRUNK)}\n"
    if not force and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"BAPPS oracle up to date in {OUT}")
        return
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(SEED)
    trunk = load_file(TRUNK)
    funcs = metric_funcs(trunk)
    expected = {"load_size": LOAD_SIZE, "twoafc": {}, "jnd": {},
                "versions": {"lpips": "0.1.4", "torch": torch.__version__, "torchvision": torchvision.__version__,
                             "scikit-image": skimage.__version__, "numpy": np.__version__}}
    tensors = {}

    for subset, n in TWOAFC_VAL.items():
        root = os.path.join(OUT, "data", "2afc", "val", subset)
        kinds = TRAD if subset == "trad" else CNN
        items = write_2afc_images(rng, root, n, kinds, IDENTICAL_2AFC)
        write_judgements(root, "judge", human_2afc(rng, items, IDENTICAL_2AFC))
        expected["twoafc"][f"val/{subset}"] = score_twoafc(root, funcs, IDENTICAL_2AFC)

    teacher = lpips_model(trunk, teacher_heads(rng))
    save_file({k: v.contiguous() for k, v in teacher.state_dict().items() if k[:3] == "lin" and k[3].isdigit()},
              os.path.join(OUT, "teacher_heads_alex.safetensors"))
    train_root = os.path.join(OUT, "data", "2afc", "train", "synth")
    heldout_root = os.path.join(OUT, "data", "2afc", "val", "heldout")
    package = lpips_model(trunk)
    k, train_decisive = write_teacher_set(rng, train_root, N_TRAIN, TRAD + CNN, teacher, package)
    _, heldout_decisive = write_teacher_set(rng, heldout_root, N_HELDOUT, TRAD + CNN, teacher, package, k)
    expected["twoafc"]["val/heldout"] = score_twoafc(heldout_root, funcs, ())
    teacher_scores = {}
    for name, root in [("train", train_root), ("heldout", heldout_root)]:
        teacher_scores[name] = twoafc_formula(*twoafc_distances(teacher, root))
    expected["teacher"] = {
        "heads": "teacher_heads_alex.safetensors",
        "k": k,
        "train_root": rel(train_root),
        "train_decisive_fraction": train_decisive,
        "heldout_decisive_fraction": heldout_decisive,
        "teacher_score_train": teacher_scores["train"],
        "teacher_score_heldout": teacher_scores["heldout"],
        "package_heads_score_train": twoafc_formula(*twoafc_distances(package, train_root)),
        "package_heads_score_heldout": expected["twoafc"]["val/heldout"]["metrics"]["lpips"]["score"],
    }

    for subset, n in JND_VAL.items():
        root = os.path.join(OUT, "data", "jnd", "val", subset)
        write_jnd(rng, root, n, TRAD if subset == "trad" else CNN)
        expected["jnd"][f"val/{subset}"] = score_jnd(root, funcs)

    # Reference tensors of some patches, for exact comparison with the Rust loader.
    transform = reference_transform()
    for group in list(expected["twoafc"].values()) + list(expected["jnd"].values()):
        for folder, paths in group["files"].items():
            if folder in ("judge", "same"):
                continue
            for p in paths[::PATCH_STRIDE]:
                tensors[p] = transform(Image.open(os.path.join(OUT, p)).convert("RGB")).contiguous()
    expected["special"] = special_images(rng, tensors)
    # Lab as the reference's tensor2tensorlab(..., to_norm=False) gives it (H x W x 3,
    # float32), for the first 2AFC val patch: a debugging aid for the Lab metrics.
    first = expected["twoafc"]["val/trad"]["files"]["ref"][0]
    tensors["lab/" + first] = torch.from_numpy(
        lpips.tensor2np(lpips.tensor2tensorlab(tensors[first][None], to_norm=False))).contiguous()
    save_file(tensors, os.path.join(OUT, "patches.safetensors"))
    expected["patches"] = "patches.safetensors"
    expected["voc_ap"] = voc_ap_cases()

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    t = expected["teacher"]
    print(f"BAPPS oracle written to {OUT}: heldout 2AFC teacher {t['teacher_score_heldout']:.3f}, "
          f"package heads {t['package_heads_score_heldout']:.3f} (train: {t['teacher_score_train']:.3f} / "
          f"{t['package_heads_score_train']:.3f}; decisive {t['train_decisive_fraction']:.2f})")
    for kind in ("twoafc", "jnd"):
        for subset, group in expected[kind].items():
            print(kind, subset, {m: round(v["score"], 4) for m, v in group["metrics"].items()})


if __name__ == "__main__":
    main()

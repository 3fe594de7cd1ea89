#!/usr/bin/env python3
"""BAPPS-layout patches that are not 64x64, and what the reference's loader makes of them.

The reference repository's BAPPS loaders (data/dataset/twoafc_dataset.py and
jnd_dataset.py; not in the pip package) read every patch with PIL,
`Image.open(p).convert('RGB')`, then torchvision's `Resize(64)` (shorter side to 64,
aspect kept, PIL's antialiased bilinear resampling; nothing done when the shorter side
is already 64), `ToTensor()` and `Normalize(0.5, 0.5)`. BAPPS's own patches are 64x64,
so nothing is resampled there; this oracle holds patches of other sizes and modes:

- `pixels/`: single images of many sizes (down, up, one side already 64, extreme aspect
  ratios, 1x1) and modes (grey, grey+alpha, RGBA, palette, 1-bit, 16-bit PNG colour,
  grey and grey+alpha, JPEG colour and grey, JPEGs and a PNG with EXIF orientation
  tags).
  patches.safetensors holds, for each, PIL's resized 8-bit pixels (`u8/pixels/<name>`,
  H x W x 3 uint8, what `Resize(64)` returns) and the loader's tensor
  (`tensor/pixels/<name>`, 3 x H x W float32).
- `data/2afc/val/<subset>` and `data/jnd/val/<subset>`: subsets in BAPPS layout whose
  patches all have one size per subset (the reference's DataLoader stacks a batch, so
  a subset's sizes must agree after the resize), scored by the reference's
  `score_2afc_dataset` / `score_jnd_dataset` with LPIPS alex v0.1 on the oracle's
  seeded trunk and the L2/DSSIM baselines, through gen_bapps.py's copies of the loaders.

Needs tests/oracle/trunk_alex.safetensors (scripts/gen_oracle.py). Deterministic
(seeded). Does nothing when the stamp holds this script's, gen_bapps.py's and the
trunk's digests; --force rebuilds.
"""

import json
import os
import shutil
import struct
import sys
import zlib

os.environ.setdefault("TQDM_DISABLE", "1")

import cv2
import numpy as np
import torch
import torchvision
import torchvision.transforms as transforms
from PIL import Image
from safetensors.torch import load_file, save_file
from scipy import ndimage

import gen_bapps
from gen_bapps import digest, metric_funcs, reference_transform, score_jnd, score_twoafc

ROOT = gen_bapps.ROOT
ORACLE = gen_bapps.ORACLE
OUT = os.path.join(ORACLE, "bapps_sizes")
TRUNK = gen_bapps.TRUNK
SEED = 20261205

# (width, height) of the single-image checks, in RGB PNG.
PIXEL_SIZES = [(80, 80), (100, 64), (64, 100), (48, 48), (256, 256), (97, 61), (63, 65), (65, 63),
               (64, 64), (127, 64), (1, 1), (2, 5), (3, 200), (200, 3), (640, 480), (1000, 70), (65, 65),
               (129, 128), (31, 17)]
# Subsets: name -> (width, height), 2AFC and JND.
TWOAFC_SIZES = {"s80x80": (80, 80), "s100x64": (100, 64), "s64x100": (64, 100), "s48x48": (48, 48),
                "s256x256": (256, 256), "s97x61": (97, 61), "s63x65": (63, 65)}
JND_SIZES = {"s80x80": (80, 80), "s97x61": (97, 61), "s40x40": (40, 40)}
N_ITEMS = 12


def texture(rng, w, h):
    """A random colour texture with edges and fine grain (float, about [0, 255]); fine
    detail makes any resampling difference show."""
    c = int(rng.integers(3, 9))
    coarse = rng.uniform(0, 255, (c, c, 3))
    up = ndimage.zoom(coarse, (h / c, w / c, 1), order=1, mode="nearest")
    up = np.pad(up, ((0, max(0, h - up.shape[0])), (0, max(0, w - up.shape[1])), (0, 0)), mode="edge")[:h, :w]
    gy, gx = np.mgrid[0:h, 0:w]
    img = 0.7 * up + 30
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 1.2)
    img += rng.uniform(10, 40) * np.sin(freq * (np.cos(theta) * gx + np.sin(theta) * gy))[..., None]
    for _ in range(int(rng.integers(1, 4))):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        img[y0:y0 + int(rng.integers(1, h + 1)), x0:x0 + int(rng.integers(1, w + 1))] += rng.uniform(-80, 80, 3)
    img += rng.normal(0, rng.uniform(2, 25), img.shape)
    return np.clip(img, 0, 255)


def to_u8(img):
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def distort(rng, img):
    kind = int(rng.integers(4))
    s = rng.uniform(0.1, 1)
    if kind == 0:
        out = img + rng.normal(0, 3 + 30 * s, img.shape)
    elif kind == 1:
        out = ndimage.gaussian_filter(img, (0.5 + 2 * s, 0.5 + 2 * s, 0))
    elif kind == 2:
        out = img + rng.uniform(-1, 1, 3) * (5 + 40 * s)
    else:
        out = (img - img.mean()) * (1 + rng.choice([-1, 1]) * (0.1 + 0.4 * s)) + img.mean()
    return to_u8(out)


def png16(path, arr, colour_type):
    """A 16-bit PNG (grey+alpha: colour type 4, which neither PIL nor OpenCV writes)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw)))
        f.write(chunk(b"IEND", b""))


def pixel_images(rng, dir_):
    os.makedirs(dir_)
    names = []

    def add(name):
        names.append(name)
        return os.path.join(dir_, name)

    for w, h in PIXEL_SIZES:
        Image.fromarray(to_u8(texture(rng, w, h))).save(add(f"rgb_{w}x{h}.png"))
    w, h = 90, 72
    base = to_u8(texture(rng, w, h))
    grey = base.mean(axis=2).round().astype(np.uint8)
    alpha = rng.integers(0, 256, (h, w), dtype=np.uint8)
    Image.fromarray(grey, "L").save(add("grey_90x72.png"))
    Image.fromarray(np.stack([grey, alpha], -1), "LA").save(add("grey_alpha_90x72.png"))
    Image.fromarray(np.concatenate([base, alpha[..., None]], -1), "RGBA").save(add("rgba_90x72.png"))
    Image.fromarray(base).quantize(colors=37, dither=Image.Dither.NONE).save(add("palette_90x72.png"))
    Image.fromarray(grey > 128).save(add("bilevel_90x72.png"))
    wide = (texture(rng, w, h) * 257 + rng.integers(0, 257, (h, w, 3))).astype(np.uint16)
    cv2.imwrite(add("rgb16_90x72.png"), wide[:, :, ::-1])
    # 16-bit grey: PIL reads mode I;16 and convert('RGB') clips to 255, so small values
    # matter; half the samples below 256.
    g16 = np.where(rng.random((h, w)) < 0.5, rng.integers(0, 256, (h, w)), rng.integers(0, 65536, (h, w)))
    cv2.imwrite(add("grey16_90x72.png"), g16.astype(np.uint16))
    png16(add("grey_alpha16_90x72.png"), np.stack([wide[..., 0], wide[..., 1]], -1), 4)
    Image.fromarray(base).save(add("jpeg_90x72.jpg"), quality=85)
    Image.fromarray(grey, "L").save(add("jpeg_grey_90x72.jpg"), quality=85)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: applied by OpenCV, not by PIL
    Image.fromarray(base).save(add("jpeg_exif6_90x72.jpg"), quality=90, exif=exif)
    Image.fromarray(base).convert("CMYK").save(add("jpeg_cmyk_90x72.jpg"), quality=90)
    Image.fromarray((grey // 64).astype(np.uint8) * 85, "L").save(add("grey2bit_90x72.png"), bits=2)
    exif[0x0112] = 5  # transpose
    Image.fromarray(base).save(add("jpeg_exif5_90x72.jpg"), quality=90, exif=exif)
    exif[0x0112] = 8  # rotate 270 degrees, in a PNG eXIf chunk
    Image.fromarray(base).save(add("png_exif8_90x72.png"), exif=exif)
    return names


def check_resize_is_copy(rng):
    """Where the shorter side is already 64 torchvision returns the image itself, and
    PIL's resize to the same size is a copy: no resampling at all."""
    img = Image.fromarray(to_u8(texture(rng, 100, 64)))
    assert transforms.Resize(64)(img) is img
    assert np.array_equal(np.asarray(img.resize(img.size, Image.BILINEAR)), np.asarray(img))


def main():
    force = "--force" in sys.argv
    if not os.path.exists(TRUNK):
        raise SystemExit(f"{TRUNK} is missing: run scripts/gen_oracle.py first (`make oracle` runs it)")
    stamp_path = os.path.join(OUT, "stamp")
    stamp = f"{digest(os.path.abspath(__file__))}\n{digest(gen_bapps.__file__)}\n{digest(TRUNK)}\n"
    if not force and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"BAPPS sizes oracle up to date in {OUT}")
        return
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    gen_bapps.OUT = OUT  # file names in expected.json relative to this oracle
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(SEED)
    check_resize_is_copy(rng)

    expected = {"load_size": 64, "twoafc": {}, "jnd": {},
                "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                             "pillow": Image.__version__}}
    tensors = {}
    transform = reference_transform()
    names = pixel_images(rng, os.path.join(OUT, "pixels"))
    for name in names:
        path = os.path.join(OUT, "pixels", name)
        rgb = Image.open(path).convert("RGB")
        resized = transforms.Resize(64)(rgb)
        tensors[f"u8/pixels/{name}"] = torch.from_numpy(np.array(resized, dtype=np.uint8))
        tensors[f"tensor/pixels/{name}"] = transform(rgb).contiguous()
    expected["pixels"] = names

    funcs = metric_funcs(load_file(TRUNK))
    for subset, (w, h) in TWOAFC_SIZES.items():
        root = os.path.join(OUT, "data", "2afc", "val", subset)
        for folder in ("ref", "p0", "p1", "judge"):
            os.makedirs(os.path.join(root, folder))
        for i in range(N_ITEMS):
            ref = texture(rng, w, h)
            name = f"{i:06d}"
            Image.fromarray(to_u8(ref)).save(os.path.join(root, "ref", name + ".png"))
            Image.fromarray(distort(rng, ref)).save(os.path.join(root, "p0", name + ".png"))
            Image.fromarray(distort(rng, ref)).save(os.path.join(root, "p1", name + ".png"))
            np.save(os.path.join(root, "judge", name + ".npy"), np.float32(rng.integers(0, 6) / 5))
        expected["twoafc"][f"val/{subset}"] = score_twoafc(root, funcs, ())
    for subset, (w, h) in JND_SIZES.items():
        root = os.path.join(OUT, "data", "jnd", "val", subset)
        for folder in ("p0", "p1", "same"):
            os.makedirs(os.path.join(root, folder))
        for i in range(N_ITEMS):
            ref = texture(rng, w, h)
            name = f"{i:06d}"
            Image.fromarray(to_u8(ref)).save(os.path.join(root, "p0", name + ".png"))
            Image.fromarray(distort(rng, ref)).save(os.path.join(root, "p1", name + ".png"))
            np.save(os.path.join(root, "same", name + ".npy"), np.float64(rng.integers(0, 4) / 3))
        expected["jnd"][f"val/{subset}"] = score_jnd(root, funcs)
    # The loaded patches of every subset's first item, for a direct comparison.
    for group in list(expected["twoafc"].values()) + list(expected["jnd"].values()):
        for folder, paths in group["files"].items():
            if folder not in ("judge", "same"):
                tensors[f"tensor/{paths[0]}"] = transform(Image.open(os.path.join(OUT, paths[0])).convert("RGB"))

    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "patches.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"BAPPS sizes oracle written to {OUT}: {len(names)} single images, "
          f"{len(TWOAFC_SIZES)} 2AFC and {len(JND_SIZES)} JND subsets")
    for kind in ("twoafc", "jnd"):
        for subset, group in expected[kind].items():
            print(kind, subset, {m: round(v["score"], 4) for m, v in group["metrics"].items()})


if __name__ == "__main__":
    main()

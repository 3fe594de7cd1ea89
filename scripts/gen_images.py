#!/usr/bin/env python3
"""Writes the image-reading oracle into tests/oracle/images/: files of every kind the
reference's loader (`lpips.load_image` = `cv2.imread(path)[:, :, ::-1]`) meets, and the
pixels OpenCV gives for them, for tests/library/images.rs and cli/tests/cli/images.rs.

- JPEG: scikit-image's photographs (rocket, retina, hubble_deep_field as shipped;
  chelsea, astronaut, coffee re-encoded with PIL and OpenCV at several qualities,
  subsamplings 4:4:4 / 4:2:2 / 4:2:0 / 4:4:0 / 4:1:1, progressive, restart intervals,
  grey, CMYK), truncated and corrupt-in-the-middle copies;
- the 8 EXIF orientations in JPEG, PNG (eXIf), WebP and TIFF, on non-square images;
- 16-bit PNG and TIFF holding all 65536 values, grey, grey+alpha, palette and RGBA PNG,
  TIFF with alpha;
- LPIPS distances of the reference (seeded alex trunk of the main oracle) on real JPEGs,
  16-bit PNGs and EXIF-rotated JPEGs.

`manifest.json` lists each file with the `.npy` of OpenCV's RGB pixels, or null where
`cv2.imread` fails. Needs tests/oracle/trunk_alex.safetensors (scripts/gen_oracle.py,
run first by `make oracle`). Does nothing when up to date; --force rebuilds.

--imagenet: the LPIPS distances only (`distances.json` and its files), with the ImageNet
AlexNet trunk of tests/oracle/imagenet/ (scripts/imagenet_trunks.py), into
tests/oracle/imagenet/images/; the JPEG files come from tests/oracle/images/ (run
without --imagenet first).
"""

import hashlib
import io
import json
import os
import shutil
import sys

import cv2
import numpy as np
import skimage
import torch
import lpips
from PIL import Image

from reference_trunk import load_trunk, read_trunk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "images")
DATA = os.path.join(os.path.dirname(skimage.__file__), "data")
FLAGS_RAW = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Manifest:
    def __init__(self):
        self.entries = []

    def add(self, name, kind, **extra):
        """Records `name` with cv2's pixels (RGB, .npy) or null when cv2 cannot read it."""
        path = os.path.join(OUT, name)
        bgr = cv2.imread(path)
        npy = None
        if bgr is not None:
            npy = name + ".npy"
            np.save(os.path.join(OUT, npy), np.ascontiguousarray(bgr[:, :, ::-1]))
        self.entries.append({"file": name, "kind": kind, "cv2": npy, **extra})


def photos():
    out = {n: Image.open(os.path.join(DATA, n + ".png")).convert("RGB") for n in ["chelsea", "astronaut", "coffee"]}
    # Odd sizes: partial MCUs at the right and bottom edges.
    out["chelsea_odd"] = out["chelsea"].crop((3, 5, 3 + 251, 5 + 197))
    return out


def write_jpegs(m):
    for name in ["rocket.jpg", "retina.jpg", "hubble_deep_field.jpg"]:
        shutil.copy(os.path.join(DATA, name), os.path.join(OUT, name))
        m.add(name, "jpeg")
    for name, im in photos().items():
        bgr = np.ascontiguousarray(np.asarray(im)[:, :, ::-1])
        files = []
        for q in [50, 75, 95]:
            for ss, tag in [(0, "444"), (1, "422"), (2, "420")]:
                files.append((f"{name}_q{q}_{tag}.jpg", dict(quality=q, subsampling=ss)))
        files += [
            (f"{name}_prog.jpg", dict(quality=85, progressive=True)),
            (f"{name}_prog420opt.jpg", dict(quality=70, progressive=True, optimize=True, subsampling=2)),
        ]
        for f, kw in files:
            im.save(os.path.join(OUT, f), **kw)
        im.convert("L").save(os.path.join(OUT, f"{name}_grey.jpg"), quality=80)
        im.convert("L").save(os.path.join(OUT, f"{name}_grey_prog.jpg"), quality=80, progressive=True)
        # PIL writes CMYK with an Adobe marker, samples inverted.
        im.convert("CMYK").save(os.path.join(OUT, f"{name}_cmyk.jpg"), quality=90)
        files += [(f"{name}_grey.jpg", None), (f"{name}_grey_prog.jpg", None), (f"{name}_cmyk.jpg", None)]
        # Restart intervals and 4:4:0 / 4:1:1 through OpenCV's encoder (PIL has no option).
        for f, params in [
            (f"{name}_rst.jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 3, cv2.IMWRITE_JPEG_QUALITY, 80]),
            (f"{name}_440.jpg", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440]),
            (f"{name}_411.jpg", [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411]),
        ]:
            cv2.imwrite(os.path.join(OUT, f), bgr, params)
            files.append((f, None))
        for f, _ in files:
            m.add(f, "jpeg")


def write_damaged(m):
    """Truncated and corrupt-in-the-middle copies: cv2 reads them (libjpeg warns); the
    loader refuses them unless asked to accept damage."""
    rng = np.random.default_rng(20261129)
    for src in ["chelsea_q75_420.jpg", "chelsea_prog.jpg", "rocket.jpg", "chelsea_rst.jpg"]:
        data = open(os.path.join(OUT, src), "rb").read()
        stem = src[:-4]
        with open(os.path.join(OUT, f"{stem}_truncated.jpg"), "wb") as f:
            f.write(data[: len(data) * 6 // 10])
        m.add(f"{stem}_truncated.jpg", "damaged_jpeg", damage="truncated")
        bad = bytearray(data)
        for i in rng.integers(len(data) // 3, len(data) * 2 // 3, 20):
            bad[i] = int(rng.integers(0, 255))
        with open(os.path.join(OUT, f"{stem}_corrupt.jpg"), "wb") as f:
            f.write(bytes(bad))
        m.add(f"{stem}_corrupt.jpg", "damaged_jpeg", damage="corrupt")
    png = io.BytesIO()
    Image.open(os.path.join(DATA, "chelsea.png")).save(png, "PNG")
    with open(os.path.join(OUT, "chelsea_truncated.png"), "wb") as f:
        f.write(png.getvalue()[: len(png.getvalue()) * 6 // 10])
    m.add("chelsea_truncated.png", "damaged_png", damage="truncated")


def write_orientations(m):
    rng = np.random.default_rng(7)
    wide = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    square = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[274] = o
        im = Image.fromarray(wide)
        im.save(os.path.join(OUT, f"orient{o}.png"), exif=exif.tobytes())
        im.save(os.path.join(OUT, f"orient{o}.webp"), exif=exif.tobytes(), lossless=True)
        im.save(os.path.join(OUT, f"orient{o}.jpg"), exif=exif.tobytes(), quality=95)
        # OpenCV 5.0 fails on non-square TIFFs with orientations 5-8 (its internal
        # check 'original_ptr == real_mat.data'); it reads square ones.
        im.save(os.path.join(OUT, f"orient{o}.tiff"), tiffinfo={274: o})
        Image.fromarray(square).save(os.path.join(OUT, f"orient{o}_square.tiff"), tiffinfo={274: o})
        for ext in ["png", "webp", "jpg"]:
            m.add(f"orient{o}.{ext}", "orientation", orientation=o)
        m.add(f"orient{o}_square.tiff", "orientation", orientation=o)
        # Where OpenCV fails, the pixels it gives for the same orientation in PNG (and
        # for square TIFFs): checked here to be the EXIF transform of what is stored.
        shown = exif_transform(o, wide)
        for name, stored in [(f"orient{o}.png", wide), (f"orient{o}_square.tiff", square)]:
            got = cv2.imread(os.path.join(OUT, name))[:, :, ::-1]
            assert np.array_equal(got, exif_transform(o, stored)), name
        tiff = cv2.imread(os.path.join(OUT, f"orient{o}.tiff"))
        if tiff is None:
            np.save(os.path.join(OUT, f"orient{o}.tiff.expected.npy"), np.ascontiguousarray(shown))
            m.add(f"orient{o}.tiff", "orientation", orientation=o, expected=f"orient{o}.tiff.expected.npy")
        else:
            m.add(f"orient{o}.tiff", "orientation", orientation=o)


def exif_transform(o, x):
    """The EXIF orientation's meaning: how the stored rows and columns are shown."""
    return {
        1: lambda x: x,
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.transpose(1, 0, 2),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda x: np.rot90(x, 1),
    }[o](x)


def write_depths(m):
    v = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    rgb = np.dstack([v, v[::-1], v.T])
    cv2.imwrite(os.path.join(OUT, "all16_grey.png"), v)
    cv2.imwrite(os.path.join(OUT, "all16_rgb.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    cv2.imwrite(os.path.join(OUT, "all16_rgba.png"), np.ascontiguousarray(np.dstack([rgb[:, :, ::-1], v])))
    cv2.imwrite(os.path.join(OUT, "all16_grey.tiff"), v)
    cv2.imwrite(os.path.join(OUT, "all16_rgb.tiff"), np.ascontiguousarray(rgb[:, :, ::-1]))
    for name in ["all16_grey.png", "all16_rgb.png", "all16_rgba.png", "all16_grey.tiff", "all16_rgb.tiff"]:
        m.add(name, "depth16")
    # 8-bit PNG colour types.
    rng = np.random.default_rng(11)
    rgba = rng.integers(0, 256, (13, 17, 4), dtype=np.uint8)
    Image.fromarray(rgba[:, :, 0]).save(os.path.join(OUT, "mode_grey.png"))
    Image.fromarray(rgba[:, :, :2], "LA").save(os.path.join(OUT, "mode_grey_alpha.png"))
    Image.fromarray(rgba[:, :, :3]).save(os.path.join(OUT, "mode_rgb.png"))
    Image.fromarray(rgba).save(os.path.join(OUT, "mode_rgba.png"))
    Image.fromarray(rgba[:, :, :3]).quantize(37).save(os.path.join(OUT, "mode_palette.png"))
    pal = Image.fromarray(rgba[:, :, :3]).quantize(16)
    pal.info["transparency"] = 3
    pal.save(os.path.join(OUT, "mode_palette_trns.png"), transparency=3)
    Image.fromarray(rgba[:, :, 0] > 127).save(os.path.join(OUT, "mode_bilevel.png"))
    for name in ["mode_grey", "mode_grey_alpha", "mode_rgb", "mode_rgba", "mode_palette",
                 "mode_palette_trns", "mode_bilevel"]:
        m.add(name + ".png", "png_mode")
    # TIFF alpha: PIL writes unassociated alpha (OpenCV premultiplies it), OpenCV writes
    # none declared (kept). (Grey+alpha TIFF: OpenCV keeps the grey; the `image` crate
    # cannot decode it, so it is not here.)
    Image.fromarray(rgba).save(os.path.join(OUT, "tiff_rgba_pil.tiff"))
    cv2.imwrite(os.path.join(OUT, "tiff_rgba_cv2.tiff"), rgba)
    for name in ["tiff_rgba_pil.tiff", "tiff_rgba_cv2.tiff"]:
        m.add(name, "tiff_alpha")


def smooth16(seed, h, w):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8, w // 8, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise = torch.rand(1, 3, h, w, generator=g) * 0.05
    return ((up + noise).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 65535).round().astype(np.uint16)


def write_distances():
    """The reference's distance (alex, v0.1, the oracle's trunk) on file pairs, read its way."""
    model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    load_trunk(model, read_trunk(os.path.join(ORACLE, "trunk_alex")))
    model.eval()
    a16, b16 = smooth16(1, 48, 64), smooth16(2, 48, 64)
    cv2.imwrite(os.path.join(OUT, "pair16_a.png"), np.ascontiguousarray(a16[:, :, ::-1]))
    cv2.imwrite(os.path.join(OUT, "pair16_b.png"), np.ascontiguousarray(b16[:, :, ::-1]))
    chelsea = Image.open(os.path.join(DATA, "chelsea.png")).convert("RGB")
    for o, name in [(6, "pair_exif_a.jpg"), (8, "pair_exif_b.jpg")]:
        exif = Image.Exif()
        exif[274] = o
        # Stored rotated so that the orientation brings both back to the same layout.
        stored = chelsea.transpose(Image.Transpose.ROTATE_90 if o == 6 else Image.Transpose.ROTATE_270)
        stored.save(os.path.join(OUT, name), exif=exif.tobytes(), quality=60 if o == 6 else 90)
    pairs = {
        "jpeg_q50_420_vs_q95_444": ("chelsea_q50_420.jpg", "chelsea_q95_444.jpg"),
        "jpeg_prog_vs_cmyk": ("coffee_prog.jpg", "coffee_cmyk.jpg"),
        "png16": ("pair16_a.png", "pair16_b.png"),
        "jpeg_exif": ("pair_exif_a.jpg", "pair_exif_b.jpg"),
    }
    out = {}
    with torch.no_grad():
        for key, (a, b) in pairs.items():
            ta = lpips.im2tensor(lpips.load_image(os.path.join(OUT, a)))
            tb = lpips.im2tensor(lpips.load_image(os.path.join(OUT, b)))
            out[key] = {"a": a, "b": b, "alex/v0.1": float(model(ta, tb).item())}
    with open(os.path.join(OUT, "distances.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


def main_imagenet():
    global ORACLE, OUT
    seeded_out = OUT
    ORACLE = os.path.join(ORACLE, "imagenet")
    OUT = os.path.join(ORACLE, "images")
    stamp_path = os.path.join(OUT, "stamp")
    stamp = (f"{digest(os.path.abspath(__file__))}\n{digest(os.path.join(ORACLE, 'trunk_alex.safetensors'))}\n"
             f"{digest(os.path.join(seeded_out, 'stamp'))}\n")
    if "--force" not in sys.argv and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"ImageNet image oracle up to date in {OUT}")
        return
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.set_grad_enabled(False)
    for name in ["chelsea_q50_420.jpg", "chelsea_q95_444.jpg", "coffee_prog.jpg", "coffee_cmyk.jpg"]:
        shutil.copy(os.path.join(seeded_out, name), os.path.join(OUT, name))
    write_distances()
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"ImageNet-trunk image distances in {OUT}")


def main():
    if "--imagenet" in sys.argv:
        return main_imagenet()
    stamp_path = os.path.join(OUT, "stamp")
    stamp = f"{digest(os.path.abspath(__file__))}\n{digest(os.path.join(ORACLE, 'trunk_alex.safetensors'))}\n"
    if "--force" not in sys.argv and os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print(f"image oracle up to date in {OUT}")
        return
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    torch.set_grad_enabled(False)
    m = Manifest()
    write_jpegs(m)
    write_damaged(m)
    write_orientations(m)
    write_depths(m)
    write_distances()
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"opencv": cv2.__version__, "files": m.entries}, f, indent=1)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"images: {len(m.entries)} files with OpenCV {cv2.__version__}'s pixels in {OUT}")


if __name__ == "__main__":
    main()

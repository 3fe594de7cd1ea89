#!/usr/bin/env python3
"""Writes the oracle of the LPIPS family's tests into tests/oracle/stlpips/ (git-ignored):

* ST-LPIPS, from the package `stlpips-pytorch` 0.0.2 itself with its published weights
  (alex and vgg): distances, per-layer values, spatial maps and input gradients at several
  sizes (odd, non-square, the smallest), and which square sides it accepts.
* Real photographs (scikit-image's samples), shifted by 1-4 px, blurred, noised and
  JPEG-compressed, written as PNG files; the package's distances for each, and plain
  LPIPS's (the reference `lpips` 0.1.4 on the seeded random trunks of gen_oracle.py: no
  pretrained ImageNet trunk can be downloaded here).
* Whole `lpips.LPIPS` state dicts (`torch.save`, trunk + heads + scaling layer) of seeded
  random models, with their distances; one with an extra key and one missing a key.

The package imports `torchsummary` and `IPython` for debugging helpers only: stub modules
stand in for them. It loads its weights with strict=False, so every tensor of its files is
checked to have reached the model. Run after gen_oracle.py (`make oracle` does); does
nothing when up to date, `--force` rebuilds.
"""

import hashlib
import json
import os
import sys
import types

import cv2
import numpy as np
import torch
import lpips
from safetensors.torch import load_file, save_file

for name in ["torchsummary", "IPython"]:
    stub = types.ModuleType(name)
    stub.summary = lambda *args, **kwargs: None
    stub.embed = lambda *args, **kwargs: None
    sys.modules.setdefault(name, stub)

import stlpips_pytorch  # noqa: E402
from stlpips_pytorch import stlpips  # noqa: E402
import skimage.data  # noqa: E402

import nets  # noqa: E402
from nets import NETS, TABLE, named, with_stlpips  # noqa: E402
from reference_trunk import load_trunk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "stlpips")
SEED = 20220724
# The nets ST-LPIPS was published for, and their sizes (the smallest sides, odd
# non-square ones and a square one): `stlpips_sizes` in scripts/nets.py.
ST_NETS = with_stlpips()
# The whole-model files: each net's at its `oracle_size`; one (squeeze's) in torch's
# legacy format, and alex's also with an extra key, a missing key, and its heads under
# `lins.` only.
(LEGACY_MODEL_NET,) = named("squeeze")
(ODD_FILES_NET,) = named("alex")
BATCH = 2
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]
CROP = (121, 153)  # height, width: odd, not square
SHIFTS = [1, 2, 3, 4]
BLURS = [0.5, 1.0, 1.5, 2.0]  # Gaussian sigma, pixels
NOISES = [2, 4, 8, 16]  # Gaussian standard deviation, 8-bit levels
JPEGS = [90, 70, 50, 30, 10]  # quality


def script_digest():
    """This script's hash and its table's (scripts/nets.py)."""
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__), nets.__file__]:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def weight_file(net):
    base = os.path.dirname(stlpips_pytorch.__file__)
    return os.path.join(base, "weights", "vST0.0", f"{TABLE[net].reference}_shift_tolerant.pth")


def st_model(net, use_lin=True):
    model = stlpips.LPIPS(net=TABLE[net].reference, variant="shift_tolerant", lpips=use_lin, verbose=False).eval()
    stored = torch.load(weight_file(net), map_location="cpu", weights_only=True)
    if not use_lin:
        # With lpips=False the package loads nothing (its trunk stays random): the
        # uncalibrated baseline on the published trunk is the file's trunk and scaling.
        model.load_state_dict({k: v for k, v in stored.items() if not k.startswith("lin")}, strict=True)
    # strict=False in the package: check that every tensor of the file reached the model.
    state = model.state_dict()
    for key, value in stored.items():
        if not use_lin and key.startswith("lin"):
            continue
        assert key in state, f"{net}: {key} of the file has no place in the model"
        assert torch.equal(state[key], value), f"{net}: {key} was not loaded"
    for key in state:
        alias = key.replace("lins.", "lin", 1)
        assert key in stored or alias in stored, f"{net}: the model's {key} is not in the file"
    return model


def smooth_images(gen, n, h, w):
    coarse = torch.rand(n, 3, max(h // 6, 2), max(w // 6, 2), generator=gen) * 2 - 1
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise = (torch.rand(n, 3, h, w, generator=gen) * 2 - 1) * 0.25
    return (up + noise).clamp(-1, 1)


def per_layer(model, in0, in1):
    """Each layer's term, from the package's own parts: its forward with retPerLayer adds
    the other layers into layer 0's tensor in place (`val = res[0]; val += res[l]`)."""
    norm = stlpips_pytorch.utils.normalize_tensor
    outs0, outs1 = model.net(model.scaling_layer(in0)), model.net(model.scaling_layer(in1))
    return [
        stlpips.spatial_average(model.lins[k]((norm(outs0[k]) - norm(outs1[k])) ** 2), keepdim=True)
        for k in range(model.L)
    ]


def write_sizes(gen):
    accepted = {}
    for net in ST_NETS:
        model = st_model(net)
        baseline = st_model(net, use_lin=False)
        tensors = {}
        for h, w in TABLE[net].stlpips_sizes:
            in0, in1 = smooth_images(gen, BATCH, h, w), smooth_images(gen, BATCH, h, w)
            key = f"{h}x{w}"
            tensors[f"{key}/in0"], tensors[f"{key}/in1"] = in0, in1
            with torch.no_grad():
                tensors[f"{key}/scalar"] = model(in0, in1)
                for k, layer in enumerate(per_layer(model, in0, in1)):
                    tensors[f"{key}/scalar_layer{k}"] = layer
                tensors[f"{key}/none"] = baseline(in0, in1)
                tensors[f"{key}/normalized"] = model((in0 + 1) / 2, (in1 + 1) / 2, normalize=True)
                model.spatial = True
                tensors[f"{key}/spatial"] = model(in0, in1)
                model.spatial = False
            x = in0.clone().requires_grad_(True)
            model(x, in1).sum().backward()
            tensors[f"{key}/grad_in0"] = x.grad
        save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, f"outputs_{net}.safetensors"))
        sides = []
        for side in range(1, 65):
            try:
                with torch.no_grad():
                    x = torch.zeros(1, 3, side, side)
                    model(x, x)
                sides.append(side)
            except RuntimeError:
                pass
        # One side at the minimum, the other large, and one side just below it.
        low = sides[0]
        non_square = {}
        for h, w in [(low, 64), (64, low), (low - 1, 64), (64, low - 1)]:
            try:
                with torch.no_grad():
                    x = torch.zeros(1, 3, h, w)
                    model(x, x)
                non_square[f"{h}x{w}"] = True
            except RuntimeError:
                non_square[f"{h}x{w}"] = False
        accepted[net] = {"square": sides, "non_square": non_square}
        print(f"{net}: sizes written; accepted square sides from {low}")
    return accepted


def photo_crop(name):
    """The photo at a shorter side of 160 (area-averaged), RGB uint8."""
    img = getattr(skimage.data, name)()[:, :, :3]
    h, w = img.shape[:2]
    s = 160 / min(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def write_png(path, rgb):
    cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]))


def write_photos(gen_np):
    """The photos and their distortions as PNGs; returns {photo: {label: file}}."""
    (ch, cw), y0, x0 = CROP, 8, 2
    photos = {}
    for name in PHOTOS:
        full = photo_crop(name)
        crop = lambda img, dx=0: img[y0:y0 + ch, x0 + dx:x0 + dx + cw]  # noqa: E731
        files = {"ref": crop(full)}
        for s in SHIFTS:
            files[f"shift{s}"] = crop(full, s)
        for sigma in BLURS:
            files[f"blur{sigma}"] = crop(cv2.GaussianBlur(full, (0, 0), sigma))
        for std in NOISES:
            noisy = crop(full).astype(np.float64) + gen_np.normal(0, std, (ch, cw, 3))
            files[f"noise{std}"] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
        for q in JPEGS:
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(crop(full)[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
            assert ok
            files[f"jpeg{q}"] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        photos[name] = {}
        for label, rgb in files.items():
            fname = f"photo_{name}_{label}.png"
            write_png(os.path.join(OUT, fname), rgb)
            photos[name][label] = fname
    return photos


def photo_distances(photos):
    """{model: {photo: {label: distance}}}, images read as the packages read them."""
    models = {f"st_{net}": st_model(net) for net in ST_NETS}
    for i, net in enumerate(ST_NETS):
        plain = lpips.LPIPS(net=TABLE[net].reference, pnet_rand=True, verbose=False)
        load_trunk(plain, load_file(os.path.join(ORACLE, f"trunk_{net}.safetensors")))
        models[f"plain_{net}"] = plain.eval()
    out = {}
    for label, model in models.items():
        out[label] = {}
        for name, files in photos.items():
            load = lambda f: stlpips_pytorch.utils.im2tensor(stlpips_pytorch.utils.load_image(os.path.join(OUT, f)))  # noqa: E731
            ref = load(files["ref"])
            with torch.no_grad():
                out[label][name] = {k: float(model(ref, load(f)).item()) for k, f in files.items() if k != "ref"}
    return out


def report(dist):
    """The paper's claim in numbers: shifts against a just-visible blur and noise."""
    lines = []
    for label, per_photo in dist.items():
        for name, d in per_photo.items():
            shifts = " ".join(f"{d[f'shift{s}']:.4f}" for s in SHIFTS)
            lines.append(
                f"{label:10s} {name:10s} shift1-4 {shifts} | blur1.0 {d['blur1.0']:.4f} noise8 {d['noise8']:.4f}"
                f" | shift1/blur1.0 {d['shift1'] / d['blur1.0']:.3f} shift4/noise8 {d['shift4'] / d['noise8']:.3f}"
            )
    return "\n".join(lines)


def write_model_files(gen):
    """Whole lpips.LPIPS state dicts of seeded random models, and their distances."""
    tensors = {}
    for i, net in enumerate(NETS):
        h, w = TABLE[net].oracle_size
        torch.manual_seed(SEED + i)
        model = lpips.LPIPS(net=TABLE[net].reference, pnet_rand=True, verbose=False)
        with torch.no_grad():
            # Heads and scaling of this model's own, so that only the file can give them.
            for lin in model.lins:
                lin.model[1].weight.copy_(torch.rand(lin.model[1].weight.shape) * 0.1)
            model.scaling_layer.shift.add_(0.01 * (i + 1))
            model.scaling_layer.scale.mul_(1.05)
        model.eval()
        state = model.state_dict()
        legacy = net == LEGACY_MODEL_NET
        torch.save(state, os.path.join(OUT, f"model_{net}.pth"), _use_new_zipfile_serialization=not legacy)
        in0, in1 = smooth_images(gen, 3, h, w), smooth_images(gen, 3, h, w)
        with torch.no_grad():
            tensors[f"{net}/in0"], tensors[f"{net}/in1"] = in0, in1
            tensors[f"{net}/scalar"] = model(in0, in1)
            model.spatial = True
            tensors[f"{net}/spatial"] = model(in0, in1)
        if net == ODD_FILES_NET:
            extra = dict(state)
            extra["extra.weight"] = torch.zeros(3)
            torch.save(extra, os.path.join(OUT, f"model_{net}_extra_key.pth"))
            # A key of alex's trunk (its slice3 ends at features.6).
            missing = {k: v for k, v in state.items() if k != "net.slice3.6.bias"}
            torch.save(missing, os.path.join(OUT, f"model_{net}_missing_key.pth"))
            only_list = {k: v for k, v in state.items() if not k.startswith("lin") or k.startswith("lins.")}
            torch.save(only_list, os.path.join(OUT, f"model_{net}_lins_only.pth"))
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "model_outputs.safetensors"))


def main():
    stamp_path = os.path.join(OUT, "stamp")
    digest = script_digest()
    if "--force" not in sys.argv and os.path.exists(stamp_path) and open(stamp_path).read().strip() == digest:
        print(f"ST-LPIPS oracle up to date in {OUT}")
        return
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    gen = torch.Generator().manual_seed(SEED)

    accepted = write_sizes(gen)
    photos = write_photos(np.random.default_rng(SEED))
    dist = photo_distances(photos)
    write_model_files(gen)
    info = {
        "accepted": accepted,
        "photos": photos,
        "distances": dist,
        "shifts": SHIFTS,
        "blurs": [f"blur{s}" for s in BLURS],
        "noises": [f"noise{s}" for s in NOISES],
        "jpegs": [f"jpeg{q}" for q in JPEGS],
        "weights": {net: weight_file(net) for net in ST_NETS},
        "site_packages": os.path.dirname(os.path.dirname(stlpips_pytorch.__file__)),
    }
    with open(os.path.join(OUT, "oracle.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
    print(report(dist))
    with open(stamp_path, "w") as f:
        f.write(digest + "\n")
    print(f"ST-LPIPS oracle written to {OUT}")


if __name__ == "__main__":
    main()

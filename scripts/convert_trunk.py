#!/usr/bin/env python3
"""Converts a torchvision ImageNet checkpoint into a safetensors trunk file that the
`lpips` crate reads (the trunk's `features.*` tensors, torchvision's names).

  convert_trunk.py NET            NET = alex | vgg | squeeze: takes torchvision's checkpoint
                                  from the torch hub cache (torch downloads it when missing)
                                  and writes <hub cache>/<same name>.safetensors beside it,
                                  where `lpips` looks by default.
  convert_trunk.py IN.pth OUT.safetensors
                                  converts any checkpoint holding a torchvision state dict.
"""

import os
import sys

import torch
from safetensors.torch import save_file

FILES = {
    "alex": ("alexnet", "AlexNet_Weights"),
    "vgg": ("vgg16", "VGG16_Weights"),
    "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
}


def trunk_tensors(state):
    kept = {k: v.float().contiguous() for k, v in state.items() if k.startswith("features.")}
    if not kept:
        sys.exit("no `features.*` tensors in this checkpoint: not a torchvision AlexNet/VGG16/SqueezeNet state dict")
    return kept


def main(argv):
    if len(argv) == 2 and argv[1] in FILES:
        import torchvision

        name, weights = FILES[argv[1]]
        enum = getattr(torchvision.models, weights).IMAGENET1K_V1
        state = enum.get_state_dict(progress=True, check_hash=True)
        hub = os.path.join(torch.hub.get_dir(), "checkpoints")
        out = os.path.join(hub, os.path.basename(enum.url).replace(".pth", ".safetensors"))
    elif len(argv) == 3:
        state = torch.load(argv[1], map_location="cpu", weights_only=True)
        out = argv[2]
    else:
        sys.exit(__doc__)
    save_file(trunk_tensors(state), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)

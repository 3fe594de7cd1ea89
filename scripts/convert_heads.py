#!/usr/bin/env python3
"""Converts the reference package's linear-head files (torch legacy pickles) into the
safetensors files under weights/ that the crate embeds. Run once with the project's venv
python; the outputs are committed. tests/library/heads.rs checks them against the package again."""

import os

import lpips
import torch
from safetensors.torch import save_file

from nets import NETS, TABLE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(os.path.dirname(lpips.__file__), "weights")

for version in ["0.0", "0.1"]:
    os.makedirs(os.path.join(ROOT, "weights", f"v{version}"), exist_ok=True)
    for net in NETS:
        ref = TABLE[net].reference
        state = torch.load(os.path.join(SRC, f"v{version}", f"{ref}.pth"), map_location="cpu")
        out = os.path.join(ROOT, "weights", f"v{version}", f"{net}.safetensors")
        save_file({k: v.float().contiguous() for k, v in sorted(state.items())}, out,
                  metadata={"source": f"lpips 0.1.4 lpips/weights/v{version}/{ref}.pth", "licence": "BSD-2-Clause"})
        print(out, {k: tuple(v.shape) for k, v in state.items()})

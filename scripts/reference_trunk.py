"""Loading this project's torchvision-named trunks into the reference package's models;
needs torch only (the GPU machine has no OpenCV or safetensors)."""

import os


def load_trunk(model, trunk):
    """Loads torchvision-named trunk tensors into a reference model, whose trunk slices
    torchvision's `features` into `slice{k}.{index}`."""
    state = {}
    for key in model.net.state_dict():
        _, index, param = key.split(".", 2)
        state[key] = trunk[f"features.{index}.{param}"]
    model.net.load_state_dict(state, strict=True)


def read_trunk(stem):
    """`{stem}.safetensors`, or `{stem}.pt` (torch.save of the same dict, as
    gpu_check.sh bundles it) where that is missing or safetensors is not installed."""
    if os.path.exists(stem + ".safetensors"):
        try:
            from safetensors.torch import load_file

            return load_file(stem + ".safetensors")
        except ImportError:
            pass
    import torch

    return torch.load(stem + ".pt", weights_only=True)

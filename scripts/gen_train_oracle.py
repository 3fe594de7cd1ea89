"""The reference's training recipe on a tiny 2AFC set, for tests/library/bapps_train.rs.

Writes tests/oracle/train/ (git-ignored): a 2AFC subset in BAPPS layout, and for each of
`lin` (heads only) and `tune` (heads and trunk) a starting checkpoint in the format
`lpips train` writes (so the Rust trainer can resume from exactly the reference's
initial weights) and the weights after three optimisation steps of the reference's own
`lpips.Trainer` (ranking loss, Adam, clamping), with dropout off so that both sides
compute the same function. Run by `make oracle` after gen_oracle.py, whose random
AlexNet trunk it uses.
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
import torchvision.transforms as transforms

import lpips

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_oracle import load_trunk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "train")
N = 12
STEPS = 3
LR = 1e-4
BETA1 = 0.5


def digest():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_dataset(rng):
    root = os.path.join(OUT, "data", "2afc", "train", "mini")
    for sub in ("ref", "p0", "p1", "judge"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(N):
        coarse = rng.random((8, 8, 3))
        ref = np.kron(coarse, np.ones((8, 8, 1))) * 200 + rng.random((64, 64, 3)) * 55
        p0 = ref + rng.normal(0, 4 + 6 * (i % 4), ref.shape)
        p1 = ref + [rng.uniform(-40, 40) for _ in range(3)]
        for sub, img in (("ref", ref), ("p0", p0), ("p1", p1)):
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                os.path.join(root, sub, f"{i:06d}.png"))
        np.save(os.path.join(root, "judge", f"{i:06d}.npy"),
                np.array([rng.integers(0, 6) / 5.0], dtype=np.float32))
    return root


def load_batch(root):
    """As the reference repository's TwoAFCDataset loads and collates it."""
    transform = transforms.Compose([
        transforms.Resize(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    batch = {}
    for sub in ("ref", "p0", "p1"):
        files = sorted(os.listdir(os.path.join(root, sub)))
        batch[sub] = torch.stack([
            transform(Image.open(os.path.join(root, sub, f)).convert("RGB")) for f in files])
    files = sorted(os.listdir(os.path.join(root, "judge")))
    batch["judge"] = torch.stack([
        torch.FloatTensor(np.load(os.path.join(root, "judge", f)).reshape((1, 1, 1)))
        for f in files])
    return batch


def named_params(trainer, with_trunk):
    out = {}
    for k, lin in enumerate(trainer.net.lins):
        out[f"lin{k}.model.1.weight"] = lin.model[1].weight
    for name, p in trainer.rankLoss.net.named_parameters():
        out[f"rank.{name}"] = p
    if with_trunk:
        for name, p in trainer.net.net.named_parameters():
            _, index, param = name.split(".", 2)
            out[f"features.{index}.{param}"] = p
    return out


def main():
    stamp = os.path.join(OUT, "stamp")
    if os.path.exists(stamp) and open(stamp).read().strip() == digest():
        print(f"training oracle up to date in {OUT}")
        return
    os.makedirs(OUT, exist_ok=True)
    root = write_dataset(np.random.default_rng(7))
    batch = load_batch(root)
    trunk = load_file(os.path.join(ORACLE, "trunk_alex.safetensors"))
    for mode in ("lin", "tune"):
        torch.manual_seed(3)
        trainer = lpips.Trainer()
        trainer.initialize(model="lpips", net="alex", pnet_rand=True, pnet_tune=(mode == "tune"),
                           use_gpu=False, is_train=True, lr=LR, beta1=BETA1)
        with torch.no_grad():
            load_trunk(trainer.net, trunk)
        for m in trainer.net.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        params = named_params(trainer, mode == "tune")
        start = {k: v.detach().clone().contiguous() for k, v in params.items()}
        for k, v in params.items():
            start[f"adam.exp_avg.{k}"] = torch.zeros_like(v)
            start[f"adam.exp_avg_sq.{k}"] = torch.zeros_like(v)
        config = dict(net="alex", mode=mode, epochs=STEPS, decay_epochs=0, batch_size=N,
                      lr=LR, beta1=BETA1, seed=0, dropout=0.0)
        save_file(start, os.path.join(OUT, f"start_{mode}.safetensors"),
                  metadata={"format": "lpips-train/1", "config": json.dumps(config),
                            "epoch": "0", "step": "0", "version": "0.1"})
        losses = []
        for _ in range(STEPS):
            trainer.set_input(batch)
            trainer.optimize_parameters()
            losses.append(float(trainer.loss_total.detach()))
        after = {k: v.detach().clone().contiguous() for k, v in params.items()}
        save_file(after, os.path.join(OUT, f"after_{mode}.safetensors"),
                  metadata={"losses": json.dumps(losses)})
        print(f"{mode}: losses {losses}")
        if mode == "tune":
            # What the reference's own Trainer.save writes (`{label}_net_.pth`: the whole
            # LPIPS state dict, trunk as net.slice{k}.{i}), and the distances it gives.
            torch.save(trainer.net.state_dict(), os.path.join(OUT, "reference_tune_net.pth"))
            trainer.net.eval()
            with torch.no_grad():
                d = trainer.net(batch["ref"], batch["p0"]).flatten().contiguous()
            save_file({"d": d}, os.path.join(OUT, "reference_tune_distances.safetensors"))
    with open(stamp, "w") as f:
        f.write(digest())


if __name__ == "__main__":
    main()

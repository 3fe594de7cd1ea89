#!/usr/bin/env python3
"""Writes legacy (pre-1.6) `torch.save` files the way old torch wrote them, for the
checkpoint reader's tests: storage *views* and `torch.cuda.*Storage` types, which torch
2.11 no longer writes but still reads.

Each file is laid out by hand as torch's legacy writer did: the magic number, the
protocol version and the system info (three pickles), the object pickle whose storages
are persistent ids `('storage', storage_type, root_key, location, numel, view)` with
`view` None or `(view_key, offset, view_size)` (elements of the storage type), the
sorted list of root storage keys, then each root storage as an 8-byte little-endian
element count and its raw bytes.

What every file should hold is computed here from the raw arrays (numpy), without
torch's loader; then torch 2.11's `torch.load(..., weights_only=True,
map_location="cpu")` must read exactly that back, or this script fails. Files torch
refuses are checked to be refused. Output: tests/oracle/checkpoints/ (git-ignored), read
by tests/library/checkpoint.rs. Run after gen_oracle.py (it reuses its random trunks);
does nothing when up to date, `--force` rebuilds.
"""

import hashlib
import os
import pickle
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from nets import named

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(ROOT, "tests", "oracle")
OUT = os.path.join(ORACLE, "checkpoints")

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
PICKLE_PROTOCOL = 2

STORAGE_TYPES = {
    "float": (torch.FloatStorage, torch.cuda.FloatStorage, np.float32),
    "double": (torch.DoubleStorage, torch.cuda.DoubleStorage, np.float64),
    "half": (torch.HalfStorage, torch.cuda.HalfStorage, np.float16),
    "long": (torch.LongStorage, torch.cuda.LongStorage, np.int64),
    "int": (torch.IntStorage, torch.cuda.IntStorage, np.int32),
    "byte": (torch.ByteStorage, torch.cuda.ByteStorage, np.uint8),
}


def digest():
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Pid:
    """A storage as the object pickle names it (a persistent id)."""

    def __init__(self, kind, root_key, numel, view=None, cuda=False):
        cpu_type, cuda_type, _ = STORAGE_TYPES[kind]
        self.storage_type = cuda_type if cuda else cpu_type
        self.location = "cuda:0" if cuda else "cpu"
        self.root_key, self.numel, self.view = root_key, numel, view

    def saved_id(self):
        return ("storage", self.storage_type, self.root_key, self.location, self.numel, self.view)


class Rebuild:
    """Pickles as torch's tensor rebuild call on a storage, as torch.save wrote it:
    `_rebuild_tensor_v2` (torch >= 0.4) or `_rebuild_tensor` (torch 0.3), optionally
    wrapped in `_rebuild_parameter`."""

    def __init__(self, pid, offset, size, stride, old=False):
        self.pid, self.offset, self.size, self.stride, self.old = pid, offset, size, stride, old

    def __reduce__(self):
        if self.old:
            return (torch._utils._rebuild_tensor, (self.pid, self.offset, tuple(self.size), tuple(self.stride)))
        return (
            torch._utils._rebuild_tensor_v2,
            (self.pid, self.offset, tuple(self.size), tuple(self.stride), False, OrderedDict()),
        )


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (torch._utils._rebuild_parameter, (self.tensor, True, OrderedDict()))


class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.saved_id() if isinstance(obj, Pid) else None


def write_legacy(path, obj, storages, counts=None):
    """`storages`: root key -> numpy array (its raw bytes); `counts` overrides the element
    count written before a storage (to make files torch refuses)."""
    counts = counts or {}
    with open(path, "wb") as f:
        pickle.dump(MAGIC_NUMBER, f, protocol=PICKLE_PROTOCOL)
        pickle.dump(PROTOCOL_VERSION, f, protocol=PICKLE_PROTOCOL)
        sys_info = dict(
            protocol_version=PROTOCOL_VERSION,
            little_endian=True,
            type_sizes=dict(short=2, int=4, long=8),
        )
        pickle.dump(sys_info, f, protocol=PICKLE_PROTOCOL)
        LegacyPickler(f, protocol=PICKLE_PROTOCOL).dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=PICKLE_PROTOCOL)
        for key in keys:
            array = storages[key]
            f.write(struct.pack("<q", counts.get(key, array.size)))
            f.write(array.tobytes())


def strided(raw, start, length, dtype, offset, size, stride):
    """The tensor a storage view holds, computed from bytes: the view is
    `raw[start : start + length]` (Python's slice clamping), read as `dtype`."""
    view = np.frombuffer(raw[start : start + length], dtype=dtype)
    if any(s == 0 for s in size):
        return np.zeros(size, dtype=dtype)
    item = np.dtype(dtype).itemsize
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    assert last < view.size, "the intended tensor must fit its view"
    return np.lib.stride_tricks.as_strided(
        view[offset:], shape=size, strides=[s * item for s in stride]
    ).copy()


def torch_load(path):
    return torch.load(path, weights_only=True, map_location="cpu")


def check_equal(path, loaded, intended):
    assert list(loaded) == list(intended), (path, list(loaded), list(intended))
    for name, want in intended.items():
        got = loaded[name]
        assert got.dtype == want.dtype, (path, name, got.dtype, want.dtype)
        assert got.shape == want.shape, (path, name, got.shape, want.shape)
        assert torch.equal(got, want), (path, name, got, want)


def views_file(cuda):
    """Tensors on storage views of two roots: offsets, clamping, reused keys, another
    dtype over the same bytes, both rebuild functions, a parameter."""
    f32 = (np.arange(40, dtype=np.float32) * 0.5 - 3.0).astype(np.float32)
    f64 = np.linspace(-1.0, 1.0, 12, dtype=np.float64)
    f16 = np.linspace(-4.0, 4.0, 8).astype(np.float16)
    a, b, c = "94296011830400", "94296011830528", "94296011830656"
    storages = {a: f32, b: f64, c: f16}
    raw = {a: f32.tobytes(), b: f64.tobytes(), c: f16.tobytes()}

    def pid(kind, root, numel, view=None):
        return Pid(kind, root, numel, view, cuda=cuda)

    # (name, what is pickled, intended: root, byte start, byte length, dtype, offset, size, stride)
    entries = [
        ("view_matrix", Rebuild(pid("float", a, 40, ("94296011831000", 8, 12)), 2, (2, 3), (3, 1)),
         (a, 32, 48, np.float32, 2, (2, 3), (3, 1))),
        ("view_transposed", Rebuild(pid("float", a, 40, ("94296011831000", 8, 12)), 0, (3, 4), (1, 3)),
         (a, 32, 48, np.float32, 0, (3, 4), (1, 3))),
        # A view key seen before: torch keeps the first view, whatever this one says.
        ("view_key_reused", Rebuild(pid("float", a, 40, ("94296011831000", 30, 5)), 1, (4,), (1,)),
         (a, 32, 48, np.float32, 1, (4,), (1,))),
        ("root_offset", Rebuild(pid("float", a, 40), 33, (7,), (1,)),
         (a, 0, 160, np.float32, 33, (7,), (1,))),
        # A view running past its root is cut at the root's end (Python slicing).
        ("view_clamped", Rebuild(pid("float", a, 40, ("94296011831001", 36, 10)), 0, (2, 2), (2, 1)),
         (a, 144, 40, np.float32, 0, (2, 2), (2, 1))),
        ("view_past_end", Rebuild(pid("float", a, 40, ("94296011831002", 50, 3)), 0, (0,), (1,)),
         (a, 200, 12, np.float32, 0, (0,), (1,))),
        ("double_view", Rebuild(pid("double", b, 12, ("94296011831003", 3, 6)), 0, (2, 3), (1, 2)),
         (b, 24, 48, np.float64, 0, (2, 3), (1, 2))),
        # A byte view of the float root: offsets count bytes then.
        ("bytes_of_floats", Rebuild(pid("byte", a, 160, ("94296011831004", 4, 8)), 0, (8,), (1,)),
         (a, 4, 8, np.uint8, 0, (8,), (1,))),
        # A root seen before keeps its first type.
        ("root_retyped", Rebuild(pid("int", a, 40), 0, (3,), (1,)),
         (a, 0, 160, np.float32, 0, (3,), (1,))),
        ("old_rebuild", Rebuild(pid("float", a, 40, ("94296011831005", 20, 10)), 0, (2, 5), (5, 1), old=True),
         (a, 80, 40, np.float32, 0, (2, 5), (5, 1))),
        ("parameter", Parameter(Rebuild(pid("float", a, 40, ("94296011831006", 0, 6)), 0, (6,), (1,))),
         (a, 0, 24, np.float32, 0, (6,), (1,))),
        ("half_view", Rebuild(pid("half", c, 8, ("94296011831007", 2, 4)), 1, (3,), (1,)),
         (c, 4, 8, np.float16, 1, (3,), (1,))),
    ]
    obj = OrderedDict((name, pickled) for name, pickled, _ in entries)
    intended = OrderedDict()
    for name, _, (root, start, length, dtype, offset, size, stride) in entries:
        array = strided(raw[root], start, length, dtype, offset, size, stride)
        intended[name] = torch.from_numpy(array)
    return obj, storages, intended


def trunk_file(trunk, cuda, gap):
    """A trunk whose tensors all live in one or two root storages, each through a view at
    its own offset, with `gap` NaNs between them (a reader ignoring view offsets reads
    NaNs and wrong weights)."""
    names = sorted(trunk)
    halves = [names[: len(names) // 2], names[len(names) // 2 :]] if cuda else [names]
    obj, storages = OrderedDict(), {}
    for h, group in enumerate(halves):
        root = f"1402137600{h}0960"
        parts, offsets, pos = [], {}, 0
        for name in group:
            parts.append(np.full(gap, np.nan, np.float32))
            pos += gap
            offsets[name] = pos
            flat = trunk[name].contiguous().numpy().ravel()
            parts.append(flat)
            pos += flat.size
        data = np.concatenate(parts).astype(np.float32)
        storages[root] = data
        for i, name in enumerate(group):
            t = trunk[name]
            view = (f"1402137700{h}{i:04d}", offsets[name], t.numel())
            obj[name] = Rebuild(Pid("float", root, data.size, view, cuda=cuda), 0, tuple(t.shape), t.stride())
    obj = OrderedDict((name, obj[name]) for name in names)
    return obj, storages


def expect_refused(path, why):
    try:
        torch_load(path)
    except Exception as e:  # noqa: BLE001 - any refusal will do
        return str(e).splitlines()[0]
    raise AssertionError(f"torch read {path}, which should be refused: {why}")


def main():
    force = "--force" in sys.argv
    stamp_path = os.path.join(OUT, "stamp")
    if not force and os.path.exists(stamp_path) and open(stamp_path).read().strip() == digest():
        print(f"legacy checkpoints up to date in {OUT}")
        return
    os.makedirs(OUT, exist_ok=True)
    if os.path.exists(stamp_path):
        os.remove(stamp_path)

    for cuda in [False, True]:
        stem = "views_cuda" if cuda else "views"
        obj, storages, intended = views_file(cuda)
        path = os.path.join(OUT, f"{stem}_legacy.pth")
        write_legacy(path, obj, storages)
        loaded = torch_load(path)
        check_equal(path, loaded, intended)
        save_file({k: v.contiguous().clone() for k, v in intended.items()},
                  os.path.join(OUT, f"{stem}_expected.safetensors"))

    # gen_oracle.py's seeded alex trunk as views of CPU storages, and squeeze's as
    # torch.cuda storages (tests/library/checkpoint.rs reads both).
    for net, cuda in zip(named("alex", "squeeze"), [False, True]):
        trunk = load_file(os.path.join(ORACLE, f"trunk_{net}.safetensors"))
        obj, storages = trunk_file(trunk, cuda, gap=3)
        path = os.path.join(OUT, f"trunk_{net}_{'cuda_' if cuda else ''}views_legacy.pth")
        write_legacy(path, obj, storages)
        check_equal(path, torch_load(path), OrderedDict((k, trunk[k]) for k in sorted(trunk)))

    # What torch refuses: a storage whose element count in the file differs from its
    # persistent id; a tensor reading past its (clamped) view.
    obj, storages, _ = views_file(False)
    counts = {"94296011830528": 13}
    storages = dict(storages)
    storages["94296011830528"] = np.concatenate([storages["94296011830528"], [0.0]])
    path = os.path.join(OUT, "refused_count_legacy.pth")
    write_legacy(path, obj, storages, counts)
    expect_refused(path, "storage count 13 in the file, 12 in its persistent id")

    a = "94296011830400"
    f32 = np.arange(10, dtype=np.float32)
    obj = OrderedDict(w=Rebuild(Pid("float", a, 10, ("94296011831000", 6, 10)), 0, (5,), (1,)))
    path = os.path.join(OUT, "refused_view_overrun_legacy.pth")
    write_legacy(path, obj, {a: f32})
    expect_refused(path, "5 elements on a view cut to 4")

    with open(stamp_path, "w") as f:
        f.write(digest())
    print(f"legacy checkpoints written to {OUT}")


if __name__ == "__main__":
    main()

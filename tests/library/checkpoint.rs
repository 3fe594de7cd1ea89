//! The `torch.save` reader: checkpoints written by the reference's torch in both formats,
//! the reference's own head files, and hostile or broken files.

use crate::common::{LINS, assert_close, oracle_file, read_tensors};
use lpips::weights::{linear_heads, read_checkpoint};
use lpips::{Lin, Lpips, LpipsError, Net, Tensor, Version};

/// A checkpoint gives the same distances as the reference on the same trunk.
fn check_distances(net: Net, checkpoint: &str) {
    let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
    for (lin, label) in LINS {
        let model = Lpips::builder()
            .net(net)
            .lin(lin)
            .trunk_file(oracle_file(checkpoint))
            .build()
            .unwrap();
        let got = model.forward(&oracle["in0"], &oracle["in1"]).unwrap();
        assert_close(
            &got,
            &oracle[&format!("{label}/scalar")],
            &format!("{checkpoint} {label}"),
        );
    }
}

#[test]
fn zip_and_legacy_checkpoints_match_reference() {
    check_distances(Net::Alex, "ckpt_alex_full_zip.pth");
    check_distances(Net::Alex, "ckpt_alex_legacy.pth");
    check_distances(Net::Squeeze, "ckpt_squeeze_full_zip.pth");
    check_distances(Net::Squeeze, "ckpt_squeeze_full_legacy.pth");
    check_distances(Net::Vgg, "ckpt_vgg_legacy.pth");
}

#[test]
fn views_dtypes_and_shared_storages() {
    let expected = read_tensors("views_expected.safetensors");
    for format in ["zip", "legacy"] {
        let got: std::collections::HashMap<String, Tensor> =
            read_checkpoint(oracle_file(&format!("views_{format}.pth")))
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(got.len(), expected.len(), "{format}");
        for (name, want) in &expected {
            let t = &got[name];
            assert_eq!(t.kind(), want.kind(), "{format} {name}: dtype");
            assert_eq!(t.size(), want.size(), "{format} {name}: shape");
            assert!(t.equal(want), "{format} {name}: values\n{t}\n{want}");
        }
    }
}

#[test]
fn reference_head_files_equal_embedded_heads() {
    for version in [Version::V0_0, Version::V0_1] {
        for net in Net::ALL {
            let file = oracle_file(&format!("heads_{version}_{}.pth", net.name()));
            let read: std::collections::HashMap<_, _> =
                read_checkpoint(&file).unwrap().into_iter().collect();
            for (k, head) in linear_heads(net, version).unwrap().iter().enumerate() {
                let theirs = &read[&format!("lin{k}.model.1.weight")];
                assert!(theirs.equal(head), "{version} {net} lin{k}");
            }
        }
    }
}

#[test]
fn hostile_pickles_are_refused_without_running() {
    let marker = oracle_file("PWNED");
    let _ = std::fs::remove_file(&marker);
    // Protocol 2 names builtins `__builtin__`, as Python 2 did.
    for (stem, global) in [
        ("evil_system", "posix.system"),
        ("evil_eval", "__builtin__.eval"),
    ] {
        for format in ["zip", "legacy"] {
            let path = oracle_file(&format!("{stem}_{format}.pth"));
            match read_checkpoint(&path) {
                Err(LpipsError::ForbiddenGlobal { global: g, .. }) => assert_eq!(g, global),
                other => panic!("{stem} {format}: {other:?}"),
            }
            let built = Lpips::builder()
                .net(Net::Alex)
                .lin(Lin::V0_1)
                .trunk_file(&path)
                .build();
            assert!(
                matches!(built, Err(LpipsError::ForbiddenGlobal { .. })),
                "{stem} {format}"
            );
        }
    }
    assert!(!marker.exists(), "a hostile pickle ran");
}

fn format_error(bytes: &[u8], name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match read_checkpoint(&path) {
        Err(LpipsError::WeightFormat { reason, .. }) => reason,
        Err(LpipsError::ForbiddenGlobal { global, .. }) => format!("forbidden {global}"),
        other => panic!("{name}: expected an error, got {other:?}"),
    }
}

#[test]
fn truncated_and_wrong_files() {
    for stem in [
        "ckpt_squeeze_full_zip",
        "ckpt_squeeze_full_legacy",
        "views_zip",
        "views_legacy",
    ] {
        let bytes = std::fs::read(oracle_file(&format!("{stem}.pth"))).unwrap();
        for cut in [
            1,
            10,
            100,
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            let reason = format_error(&bytes[..cut], &format!("{stem}-{cut}.pth"));
            assert!(!reason.is_empty(), "{stem} cut at {cut}");
        }
    }
    let reason = format_error(b"GIF89a not a checkpoint", "wrong-magic.pth");
    assert!(reason.contains("wrong magic"), "{reason}");
    assert!(format_error(b"", "empty.pth").contains("wrong magic"));
}

// A hand-built legacy stream, to reach the cases torch never writes.
mod craft {
    pub const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    pub fn s(text: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend((text.len() as u32).to_le_bytes());
        out.extend(text.as_bytes());
        out
    }

    pub fn int(i: i32) -> Vec<u8> {
        let mut out = vec![b'J'];
        out.extend(i.to_le_bytes());
        out
    }

    pub fn global(module: &str, name: &str) -> Vec<u8> {
        [
            b"c".as_slice(),
            module.as_bytes(),
            b"\n",
            name.as_bytes(),
            b"\n",
        ]
        .concat()
    }

    pub fn tuple(items: &[i32]) -> Vec<u8> {
        let mut out = vec![b'('];
        for &i in items {
            out.extend(int(i));
        }
        out.push(b't');
        out
    }

    /// `{"w": tensor}` viewing storage "0" (numel elements) with the given size/stride.
    pub fn state_dict(
        callable: &[u8],
        numel: i32,
        size: &[i32],
        stride: &[i32],
        offset: i32,
    ) -> Vec<u8> {
        let mut p = vec![0x80, 0x02, b'}', b'('];
        p.extend(s("w"));
        p.extend(callable);
        p.extend([b'(', b'(']);
        p.extend(s("storage"));
        p.extend(global("torch", "FloatStorage"));
        p.extend(s("0"));
        p.extend(s("cpu"));
        p.extend(int(numel));
        p.extend([b't', b'Q']);
        p.extend(int(offset));
        p.extend(tuple(size));
        p.extend(tuple(stride));
        p.push(0x89);
        p.extend(global("collections", "OrderedDict"));
        p.extend([b')', b'R', b't', b'R', b'u', b'.']);
        p
    }

    /// 200,000 empty dicts in the memo, linked `memo[i - 1]["k"] = memo[i]` in the given
    /// order of `i`; the pickle's value is `memo[0]`.
    pub fn dict_chain(links: impl Iterator<Item = u32>) -> Vec<u8> {
        let mut p = vec![0x80, 0x02];
        for i in 0..200_000u32 {
            p.push(b'}');
            p.push(b'r');
            p.extend(i.to_le_bytes());
            p.push(b'0');
        }
        for i in links {
            p.push(b'j');
            p.extend((i - 1).to_le_bytes());
            p.extend(s("k"));
            p.push(b'j');
            p.extend(i.to_le_bytes());
            p.extend([b's', b'0']);
        }
        p.push(b'j');
        p.extend(0u32.to_le_bytes());
        p.push(b'.');
        p
    }

    pub fn legacy(main: &[u8], storage_count: u64, storage_bytes: usize) -> Vec<u8> {
        let mut out = vec![0x80, 0x02, 0x8a, 0x0a];
        out.extend(MAGIC);
        out.push(b'.');
        out.extend([0x80, 0x02, b'M', 0xe9, 0x03, b'.']);
        out.extend([0x80, 0x02, b'}', b'.']);
        out.extend(main);
        out.extend([0x80, 0x02, b']', b'(']);
        out.extend(s("0"));
        out.extend([b'e', b'.']);
        out.extend(storage_count.to_le_bytes());
        out.extend(vec![0u8; storage_bytes]);
        out
    }
}

#[test]
fn crafted_streams() {
    use craft::*;
    let rebuild = global("torch._utils", "_rebuild_tensor_v2");
    // Well-formed: 6 floats viewed as 2 x 3.
    let ok = legacy(&state_dict(&rebuild, 6, &[2, 3], &[3, 1], 0), 6, 24);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.pth");
    std::fs::write(&path, &ok).unwrap();
    let read = read_checkpoint(&path).unwrap();
    assert_eq!(read[0].0, "w");
    assert_eq!(read[0].1.size(), vec![2, 3]);

    // Storage shorter than its tensor: declared and actual.
    let r = format_error(
        &legacy(&state_dict(&rebuild, 4, &[2, 3], &[3, 1], 0), 4, 16),
        "short.pth",
    );
    assert!(r.contains("reads elements up to 6"), "{r}");
    let r = format_error(
        &legacy(&state_dict(&rebuild, 6, &[2, 3], &[3, 1], 2), 6, 24),
        "offset.pth",
    );
    assert!(r.contains("reads elements up to 8"), "{r}");
    // An element count of 2^61: refused, not allocated.
    let r = format_error(
        &legacy(&state_dict(&rebuild, 6, &[2, 3], &[3, 1], 0), 1 << 61, 24),
        "huge.pth",
    );
    assert!(r.contains("past the end") || r.contains("overflows"), "{r}");
    // Negative strides and sizes, rank mismatch.
    let r = format_error(
        &legacy(&state_dict(&rebuild, 6, &[2, 3], &[-3, 1], 0), 6, 24),
        "neg.pth",
    );
    assert!(r.contains("negative"), "{r}");
    let r = format_error(
        &legacy(&state_dict(&rebuild, 6, &[2, 3], &[3], 0), 6, 24),
        "rank.pth",
    );
    assert!(r.contains("rank"), "{r}");

    // Unexpected REDUCE targets: an allowed name that is not a function, other globals.
    let r = format_error(
        &legacy(
            &state_dict(&global("torch", "FloatStorage"), 6, &[2, 3], &[3, 1], 0),
            6,
            24,
        ),
        "storage-call.pth",
    );
    assert!(r.contains("not supported"), "{r}");
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("subprocess", "Popen"),
        ("torch", "load"),
        ("__builtin__", "getattr"),
    ] {
        let r = format_error(
            &legacy(
                &state_dict(&global(module, name), 6, &[2, 3], &[3, 1], 0),
                6,
                24,
            ),
            "evil.pth",
        );
        assert_eq!(r, format!("forbidden {module}.{name}"));
    }
    // Deep nesting through later mutation: an error or a result, never a stack overflow.
    // Linked back to front, each insert sees the depth below it: refused on the way.
    let r = format_error(
        &legacy(&dict_chain((1..200_000u32).rev()), 0, 0),
        "deep.pth",
    );
    assert!(r.contains("nesting"), "{r}");
    // Linked front to back, each insert sees an empty dict, so the depth is only found by
    // walking; the result must still be freed without recursion.
    let r = format_error(&legacy(&dict_chain(1..200_000u32), 0, 0), "chain.pth");
    assert!(r.contains("no tensors"), "{r}");
}

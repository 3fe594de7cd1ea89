//! The `torch.save` reader: checkpoints written by the reference's torch in both formats,
//! the reference's own head files, and hostile or broken files.

use crate::common::{LINS, assert_close, oracle_file, read_tensors};
use lpips::weights::{WeightProblem, linear_heads, read_checkpoint};
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
                Err(LpipsError::Weights {
                    problem: WeightProblem::ForbiddenGlobal { global: g },
                    ..
                }) => assert_eq!(g, global),
                other => panic!("{stem} {format}: {other:?}"),
            }
            let built = Lpips::builder()
                .net(Net::Alex)
                .lin(Lin::V0_1)
                .trunk_file(&path)
                .build();
            assert!(
                matches!(
                    built,
                    Err(LpipsError::Weights {
                        problem: WeightProblem::ForbiddenGlobal { .. },
                        ..
                    })
                ),
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
        Err(LpipsError::Weights {
            problem: WeightProblem::Format { reason },
            ..
        }) => reason,
        Err(LpipsError::Weights {
            problem: WeightProblem::ForbiddenGlobal { global },
            ..
        }) => format!("forbidden {global}"),
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

    /// A legacy persistent id: `('storage', torch.<storage_type>, key, location, numel,
    /// view)`, `view` being `(view_key, offset, size)` or None.
    pub fn pid(
        storage_type: &str,
        key: &str,
        location: &str,
        numel: i32,
        view: Option<(&str, i32, i32)>,
    ) -> Vec<u8> {
        let (module, name) = storage_type.rsplit_once('.').unwrap();
        let mut p = vec![b'('];
        p.extend(s("storage"));
        p.extend(global(module, name));
        p.extend(s(key));
        p.extend(s(location));
        p.extend(int(numel));
        match view {
            Some((view_key, offset, size)) => {
                p.push(b'(');
                p.extend(s(view_key));
                p.extend(int(offset));
                p.extend(int(size));
                p.push(b't');
            }
            None => p.push(b'N'),
        }
        p.extend([b't', b'Q']);
        p
    }

    /// `{name: tensor}` on the storage `pid` names, with the given size/stride/offset.
    pub fn tensor_dict(
        name: &str,
        callable: &[u8],
        pid: &[u8],
        size: &[i32],
        stride: &[i32],
        offset: i32,
    ) -> Vec<u8> {
        let mut p = vec![0x80, 0x02, b'}', b'('];
        p.extend(s(name));
        p.extend(callable);
        p.push(b'(');
        p.extend(pid);
        p.extend(int(offset));
        p.extend(tuple(size));
        p.extend(tuple(stride));
        p.push(0x89);
        p.extend(global("collections", "OrderedDict"));
        p.extend([b')', b'R', b't', b'R', b'u', b'.']);
        p
    }

    /// `{"w": tensor}` viewing storage "0" (numel elements) with the given size/stride.
    pub fn state_dict(
        callable: &[u8],
        numel: i32,
        size: &[i32],
        stride: &[i32],
        offset: i32,
    ) -> Vec<u8> {
        let pid = pid("torch.FloatStorage", "0", "cpu", numel, None);
        tensor_dict("w", callable, &pid, size, stride, offset)
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
        legacy_storages(main, &[("0", storage_count, storage_bytes)])
    }

    /// A legacy file listing the given storages: (key, element count, bytes).
    pub fn legacy_storages(main: &[u8], storages: &[(&str, u64, usize)]) -> Vec<u8> {
        let mut out = vec![0x80, 0x02, 0x8a, 0x0a];
        out.extend(MAGIC);
        out.push(b'.');
        out.extend([0x80, 0x02, b'M', 0xe9, 0x03, b'.']);
        out.extend([0x80, 0x02, b'}', b'.']);
        out.extend(main);
        out.extend([0x80, 0x02, b']', b'(']);
        for (key, _, _) in storages {
            out.extend(s(key));
        }
        out.extend([b'e', b'.']);
        for &(_, count, bytes) in storages {
            out.extend(count.to_le_bytes());
            out.extend(vec![0u8; bytes]);
        }
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

/// Every tensor of `name` (a file under the oracle) against the tensors of `expected`
/// (a safetensors file): same names, dtypes, shapes and values.
fn assert_reads_as(name: &str, expected: &std::collections::HashMap<String, Tensor>) {
    let got: std::collections::HashMap<String, Tensor> = read_checkpoint(oracle_file(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .collect();
    let mut names: Vec<&String> = got.keys().collect();
    names.sort();
    let mut want: Vec<&String> = expected.keys().collect();
    want.sort();
    assert_eq!(names, want, "{name}: tensor names");
    for (key, want) in expected {
        let t = &got[key];
        assert_eq!(t.kind(), want.kind(), "{name} {key}: dtype");
        assert_eq!(t.size(), want.size(), "{name} {key}: shape");
        assert!(t.equal(want), "{name} {key}: values\n{t}\n{want}");
    }
}

/// Legacy files whose storages are views (and `torch.cuda.*Storage`s at `cuda:0`), laid
/// out as old torch wrote them by scripts/gen_checkpoints.py: read as torch 2.11's
/// `torch.load(weights_only=True, map_location="cpu")` reads them.
#[test]
fn legacy_storage_views_and_cuda_storages_read_as_torch_does() {
    for stem in ["views", "views_cuda"] {
        let expected = read_tensors(&format!("checkpoints/{stem}_expected.safetensors"));
        assert_reads_as(&format!("checkpoints/{stem}_legacy.pth"), &expected);
    }
}

/// Trunks whose every tensor is a view into one shared storage (NaNs between them), on
/// the CPU and typed `torch.cuda.FloatStorage`: the same tensors as the reference's
/// trunk, and the same distances.
#[test]
fn legacy_view_trunks_give_reference_distances() {
    for (net, file) in [
        (Net::Alex, "checkpoints/trunk_alex_views_legacy.pth"),
        (
            Net::Squeeze,
            "checkpoints/trunk_squeeze_cuda_views_legacy.pth",
        ),
    ] {
        let trunk = read_tensors(&format!("trunk_{}.safetensors", net.name()));
        assert_reads_as(file, &trunk);
        check_distances(net, file);
    }
}

/// What torch 2.11 refuses in a legacy file is refused here too.
#[test]
fn legacy_files_torch_refuses_are_refused() {
    let reason = |name: &str| match read_checkpoint(oracle_file(name)) {
        Err(LpipsError::Weights {
            problem: WeightProblem::Format { reason },
            ..
        }) => reason,
        other => panic!("{name}: expected a format error, got {other:?}"),
    };
    // A storage whose element count in the file is not its persistent id's.
    let r = reason("checkpoints/refused_count_legacy.pth");
    assert!(
        r.contains("holds 13 elements in the file but 12 by its persistent id"),
        "{r}"
    );
    // A tensor reading past its view, which the storage's end cut to 4 elements.
    let r = reason("checkpoints/refused_view_overrun_legacy.pth");
    assert!(
        r.contains("reads elements up to 5, but its storage holds 4"),
        "{r}"
    );
}

#[test]
fn crafted_views_and_storage_lists() {
    use craft::*;
    let rebuild = global("torch._utils", "_rebuild_tensor_v2");
    let write = |bytes: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crafted.pth");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    };
    // A view of 6 elements from element 4 of "0" (10 floats 0..9): the tensor's
    // offset counts from the view.
    let floats: Vec<u8> = (0..10).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let pid_view = pid(
        "torch.cuda.FloatStorage",
        "0",
        "cuda:1",
        10,
        Some(("v", 4, 6)),
    );
    let main = tensor_dict("w", &rebuild, &pid_view, &[2, 2], &[1, 2], 1);
    let mut file = legacy_storages(&main, &[("0", 10, 0)]);
    file.extend(&floats);
    let (_dir, path) = write(&file);
    let read = read_checkpoint(&path).unwrap();
    let got = Vec::<f32>::try_from(read[0].1.flatten(0, -1)).unwrap();
    // Element (i, j) is view[1 + i + 2j] = 4 + 1 + i + 2j.
    assert_eq!(got, vec![5.0, 7.0, 6.0, 8.0]);

    // The storage list names a view; a storage twice; a storage never named.
    let listed_view = legacy_storages(&main, &[("v", 6, 24)]);
    assert!(format_error(&listed_view, "v.pth").contains("a storage view, not a storage"));
    let twice = legacy_storages(&main, &[("0", 10, 40), ("0", 10, 40)]);
    assert!(format_error(&twice, "twice.pth").contains("listed twice"));
    let stranger = legacy_storages(&main, &[("0", 10, 40), ("9", 1, 4)]);
    assert!(format_error(&stranger, "stranger.pth").contains("never names it"));
    // A tensor whose storage is not listed: torch would read uninitialised memory.
    let unlisted = legacy_storages(&main, &[]);
    assert!(format_error(&unlisted, "unlisted.pth").contains("storage `0` is missing"));
    // Negative view offsets, a view that is not a triple, a pickled whole model.
    let negative = pid("torch.FloatStorage", "0", "cpu", 10, Some(("v", -2, 6)));
    let r = format_error(
        &legacy(
            &tensor_dict("w", &rebuild, &negative, &[2], &[1], 0),
            10,
            40,
        ),
        "negative.pth",
    );
    assert!(r.contains("offset is not a count"), "{r}");
    let mut module = vec![b'('];
    module.extend(s("module"));
    module.extend(s("x"));
    module.extend([b't', b'Q']);
    let r = format_error(
        &legacy(&tensor_dict("w", &rebuild, &module, &[2], &[1], 0), 10, 40),
        "module.pth",
    );
    assert!(r.contains("whole pickled model"), "{r}");
    // One large list named over and over (a few bytes each) to build ever new dicts:
    // copies are bounded by the input's length, so memory stays near the file's size.
    let mut amplify = vec![0x80, 0x02, b']', b'q', 0, b'('];
    for i in 0..1000 {
        amplify.push(b'(');
        amplify.extend(s("k"));
        amplify.extend(int(i));
        amplify.push(b't');
    }
    amplify.extend([b'e', b'0']);
    for _ in 0..100_000 {
        amplify.extend(global("collections", "OrderedDict"));
        amplify.extend([b'(', b'h', 0, b't', b'R', b'0']);
    }
    amplify.extend([b'}', b'.']);
    let r = format_error(&legacy(&amplify, 0, 0), "amplify.pth");
    assert!(
        r.contains("copies more values than its length allows"),
        "{r}"
    );
    // Complex storages are named, not called forbidden.
    let complex = pid("torch.ComplexFloatStorage", "0", "cpu", 10, None);
    let r = format_error(
        &legacy(&tensor_dict("w", &rebuild, &complex, &[2], &[1], 0), 10, 80),
        "complex.pth",
    );
    assert!(r.contains("complex or quantized"), "{r}");
}

/// A 10 MB legacy file whose tensor claims 2^30 elements through a stride-0 view of its
/// storage, named and shaped as the alex trunk's first weight would be but for its size.
fn broadcast_file(dir: &std::path::Path, elements: i32) -> std::path::PathBuf {
    use craft::*;
    let numel = 2_500_000;
    let pid = pid("torch.FloatStorage", "0", "cpu", numel, None);
    let main = tensor_dict(
        "features.0.weight",
        &global("torch._utils", "_rebuild_tensor_v2"),
        &pid,
        &[elements],
        &[0],
        0,
    );
    let path = dir.join("broadcast.pth");
    std::fs::write(&path, legacy(&main, numel as u64, numel as usize * 4)).unwrap();
    path
}

fn peak_resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

const PEAK_CHILD_ENV: &str = "LPIPS_TEST_PEAK_MEMORY_FILE";

/// Not a test of its own: the child process of
/// `refused_broadcast_view_costs_no_memory`, which runs this test binary filtered to it
/// with the file to load in the environment. Without that variable it does nothing.
#[test]
fn peak_memory_child() {
    let Some(path) = std::env::var_os(PEAK_CHILD_ENV) else {
        return;
    };
    // libtorch's start-up and a model of the same kind first (randomly initialised), so
    // that the peak below is what the file adds.
    let model = Lpips::builder()
        .net(Net::Alex)
        .lin(Lin::V0_1)
        .trunk(lpips::weights::TrunkWeights::RandomInit)
        .build()
        .unwrap();
    drop(model);
    let before = peak_resident_kib();
    let e = read_checkpoint(&path).unwrap_err();
    let reason = match &e {
        LpipsError::Weights {
            problem: WeightProblem::Format { reason },
            ..
        } => reason.clone(),
        other => panic!("expected a format error, got {other:?}"),
    };
    assert!(
        reason.contains("overlapping or broadcast view") && reason.contains("4294967296 bytes"),
        "{reason}"
    );
    let built = Lpips::builder()
        .net(Net::Alex)
        .lin(Lin::V0_1)
        .trunk_file(&path)
        .build();
    assert!(
        matches!(
            built,
            Err(LpipsError::Weights {
                problem: WeightProblem::Format { .. },
                ..
            })
        ),
        "{built:?}"
    );
    let after = peak_resident_kib();
    println!("PEAK_GROWTH_KIB={}", after.saturating_sub(before));
}

/// A stride-0 view claiming 2^30 floats (4 GiB once copied) in a 10 MB file is refused
/// before anything is allocated for it: the peak memory of the process that reads it
/// grows by less than the file's size, not by gigabytes.
#[test]
fn refused_broadcast_view_costs_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = broadcast_file(dir.path(), 1 << 30);
    let file_kib = std::fs::metadata(&path).unwrap().len() / 1024;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "checkpoint::peak_memory_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PEAK_CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A guard against a hang, not a timing: the child needs a second or two.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child process reading the file hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let growth: u64 = stdout
        .split("PEAK_GROWTH_KIB=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no peak reported: {stdout}"));
    eprintln!("peak memory growth reading a {file_kib} KiB file: {growth} KiB");
    assert!(
        growth < file_kib,
        "peak memory grew by {growth} KiB for a {file_kib} KiB file"
    );
}

/// Runs `f` on another thread; fails if it does not return in time (a hang guard).
fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: no answer within a minute (hung?)"))
}

/// A folder, a FIFO with no writer and a device given as a weight file: refused at
/// once, saying what they are, by the reader and by the model builder, in both formats.
#[test]
fn folders_fifos_and_devices_are_not_weight_files() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("weights.pth");
    std::fs::create_dir(&folder).unwrap();
    let fifo = dir.path().join("fifo.pth");
    let fifo_st = dir.path().join("fifo.safetensors");
    for f in [&fifo, &fifo_st] {
        let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }
    let cases = [
        (folder, "a folder"),
        (fifo, "a FIFO"),
        (fifo_st, "a FIFO"),
        (std::path::PathBuf::from("/dev/null"), "a device"),
    ];
    for (path, kind) in cases {
        let p = path.clone();
        let read = within_a_minute(&format!("read_checkpoint {}", p.display()), move || {
            read_checkpoint(&p).map(|_| ()).map_err(|e| e.to_string())
        });
        let p = path.clone();
        let built = within_a_minute(&format!("trunk_file {}", p.display()), move || {
            Lpips::builder()
                .net(Net::Alex)
                .lin(Lin::V0_1)
                .trunk_file(&p)
                .build()
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        for result in [read, built] {
            let message = result.expect_err("not a weight file");
            assert!(
                message.contains(&path.display().to_string())
                    && message.contains(kind)
                    && message.contains("not a regular file"),
                "{}: {message}",
                path.display()
            );
        }
    }
}

//! Each error path: a typed error with the facts, never a panic.

use lpips::weights::TrunkWeights;
use lpips::{Device, InputRange, Lin, Lpips, LpipsError, Net, Tensor};
use tch::Kind;

fn random_model(net: Net) -> Lpips {
    Lpips::builder()
        .net(net)
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap()
}

fn images(n: i64, h: i64, w: i64) -> Tensor {
    Tensor::rand([n, 3, h, w], (Kind::Float, Device::Cpu)) * 2.0 - 1.0
}

#[test]
fn wrong_rank_and_channels() {
    let m = random_model(Net::Alex);
    let ok = images(1, 32, 32);
    // One image may come as 3 x H x W; anything else of the wrong rank is refused.
    let three_d = Tensor::zeros([3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(m.forward(&three_d, &ok).is_ok());
    let two_d = Tensor::zeros([32, 32], (Kind::Float, Device::Cpu));
    match m.forward(&two_d, &ok) {
        Err(LpipsError::BadShape {
            which: "in0",
            shape,
        }) => assert_eq!(shape, vec![32, 32]),
        other => panic!("{other:?}"),
    }
    let grey = Tensor::zeros([1, 1, 32, 32], (Kind::Float, Device::Cpu));
    match m.forward(&ok, &grey) {
        Err(LpipsError::BadShape {
            which: "in1",
            shape,
        }) => assert_eq!(shape, vec![1, 1, 32, 32]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn mismatched_shapes_and_empty_batch() {
    let m = random_model(Net::Alex);
    match m.forward(&images(1, 40, 32), &images(1, 32, 40)) {
        Err(LpipsError::ShapeMismatch { a, b }) => {
            assert_eq!(a, vec![1, 3, 40, 32]);
            assert_eq!(b, vec![1, 3, 32, 40]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.forward(&images(2, 32, 32), &images(3, 32, 32)),
        Err(LpipsError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        m.forward(&images(0, 32, 32), &images(0, 32, 32)),
        Err(LpipsError::EmptyBatch)
    ));
}

#[test]
fn below_minimum_size_names_the_minimum() {
    for (net, min) in [(Net::Alex, 31), (Net::Vgg, 16), (Net::Squeeze, 17)] {
        let m = random_model(net);
        // Exactly the minimum runs, on either side.
        assert!(
            m.forward(&images(1, min, min + 7), &images(1, min, min + 7))
                .is_ok(),
            "{net} at {min}"
        );
        for (h, w) in [(min - 1, min + 7), (min + 7, min - 1)] {
            match m.forward(&images(1, h, w), &images(1, h, w)) {
                Err(LpipsError::TooSmall {
                    net: n,
                    min: got,
                    height,
                    width,
                }) => {
                    assert_eq!((n, got, height, width), (net, min, h, w));
                    let text = LpipsError::TooSmall {
                        net,
                        min,
                        height: h,
                        width: w,
                    }
                    .to_string();
                    assert!(text.contains(&format!("at least {min}")), "{text}");
                }
                other => panic!("{net} {h}x{w}: {other:?}"),
            }
        }
    }
}

#[test]
fn non_finite_inputs() {
    let m = random_model(Net::Squeeze);
    let ok = images(2, 20, 20);
    let nan = ok.copy();
    let _ = nan.get(1).get(0).get(3).get(4).fill_(f64::NAN);
    assert!(matches!(
        m.forward(&nan, &ok),
        Err(LpipsError::NonFinite { which: "in0" })
    ));
    let inf = ok.copy();
    let _ = inf.get(0).get(2).get(0).get(0).fill_(f64::INFINITY);
    assert!(matches!(
        m.distances(&ok, &inf),
        Err(LpipsError::NonFinite { which: "in1" })
    ));
}

#[test]
fn inputs_of_other_kinds_and_ranges_work() {
    let m = random_model(Net::Squeeze);
    let a = images(1, 20, 24);
    let b = images(1, 20, 24);
    let f32_out = m.distances(&a, &b).unwrap();
    let f64_out = m
        .distances(a.to_kind(Kind::Double), b.to_kind(Kind::Double))
        .unwrap();
    assert!((f32_out[0] - f64_out[0]).abs() < 1e-6);
    let unit = Lpips::builder()
        .net(Net::Squeeze)
        .input_range(InputRange::ZeroToOne)
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap();
    // Different random trunk, so only check it runs and is finite.
    let d = unit
        .distances(&((&a + 1.0) / 2.0), &((&b + 1.0) / 2.0))
        .unwrap();
    assert!(d[0].is_finite() && d[0] > 0.0);
}

/// A random AlexNet trunk under torchvision's names, as a weight file would hold it.
fn alex_tensors() -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for (i, cin, cout, k) in [
        (0, 3, 64, 11),
        (3, 64, 192, 5),
        (6, 192, 384, 3),
        (8, 384, 256, 3),
        (10, 256, 256, 3),
    ] {
        out.push((
            format!("features.{i}.weight"),
            Tensor::rand([cout, cin, k, k], (Kind::Float, Device::Cpu)) * 0.01,
        ));
        out.push((
            format!("features.{i}.bias"),
            Tensor::zeros([cout], (Kind::Float, Device::Cpu)),
        ));
    }
    out
}

fn build_with(tensors: Vec<(String, Tensor)>) -> Result<Lpips, LpipsError> {
    Lpips::builder()
        .net(Net::Alex)
        .trunk(TrunkWeights::Tensors(tensors))
        .build()
}

#[test]
fn strict_weight_loading() {
    let full = alex_tensors();
    assert!(
        build_with(
            full.iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect()
        )
        .is_ok()
    );

    // Extra tensors (a classifier) are ignored.
    let mut extra: Vec<_> = full
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    extra.push((
        "classifier.1.weight".into(),
        Tensor::zeros([10, 10], (Kind::Float, Device::Cpu)),
    ));
    assert!(build_with(extra).is_ok());

    let missing: Vec<_> = full
        .iter()
        .filter(|(k, _)| k != "features.8.bias")
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    match build_with(missing) {
        Err(LpipsError::MissingWeight { key, expected, .. }) => {
            assert_eq!(key, "features.8.bias");
            assert_eq!(expected, vec![256]);
        }
        other => panic!("{other:?}"),
    }

    let misshapen: Vec<_> = full
        .iter()
        .map(|(k, v)| {
            let v = if k == "features.3.weight" {
                Tensor::zeros([192, 64, 3, 3], (Kind::Float, Device::Cpu))
            } else {
                v.shallow_clone()
            };
            (k.clone(), v)
        })
        .collect();
    match build_with(misshapen) {
        Err(e @ LpipsError::WeightShape { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("features.3.weight")
                    && text.contains("[192, 64, 3, 3]")
                    && text.contains("[192, 64, 5, 5]"),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }

    let nan: Vec<_> = full
        .iter()
        .map(|(k, v)| {
            let v = v.copy();
            if k == "features.10.bias" {
                let _ = v.get(5).fill_(f64::NAN);
            }
            (k.clone(), v)
        })
        .collect();
    assert!(
        matches!(build_with(nan), Err(LpipsError::NonFiniteWeight { key, .. }) if key == "features.10.bias")
    );

    // Integer or bool tensors are not weights (a rounded copy would load silently).
    for kind in [Kind::Int64, Kind::Bool] {
        let ints: Vec<_> = full
            .iter()
            .map(|(k, v)| {
                let v = if k == "features.0.weight" {
                    v.to_kind(kind)
                } else {
                    v.shallow_clone()
                };
                (k.clone(), v)
            })
            .collect();
        match build_with(ints) {
            Err(LpipsError::WeightDtype { key, .. }) => assert_eq!(key, "features.0.weight"),
            other => panic!("{kind:?}: {other:?}"),
        }
    }
}

#[test]
fn weight_files() {
    let dir = tempfile::tempdir().unwrap();
    let build = |path: &std::path::Path| Lpips::builder().net(Net::Alex).trunk_file(path).build();

    let good = dir.path().join("good.safetensors");
    Tensor::write_safetensors(&alex_tensors(), &good).unwrap();
    let model = build(&good).unwrap();
    // Half-precision files load too, converted to f32.
    let half = dir.path().join("half.safetensors");
    let halves: Vec<_> = alex_tensors()
        .into_iter()
        .map(|(k, v)| (k, v.to_kind(Kind::Half)))
        .collect();
    Tensor::write_safetensors(&halves, &half).unwrap();
    assert!(build(&half).is_ok());
    drop(model);

    let ints = dir.path().join("ints.safetensors");
    let int_tensors: Vec<_> = alex_tensors()
        .into_iter()
        .map(|(k, v)| (k, v.to_kind(Kind::Int64)))
        .collect();
    Tensor::write_safetensors(&int_tensors, &ints).unwrap();
    assert!(
        matches!(build(&ints), Err(LpipsError::WeightDtype { key, dtype, .. }) if key.starts_with("features.") && dtype == "I64")
    );

    let bytes = std::fs::read(&good).unwrap();
    for (name, content) in [
        ("truncated", bytes[..bytes.len() / 2].to_vec()),
        ("garbage", b"this is not a weight file at all".to_vec()),
        ("empty", Vec::new()),
        // A header length of 2^60 bytes: rejected, not allocated.
        (
            "huge-header",
            [(1u64 << 60).to_le_bytes().as_slice(), b"{}"].concat(),
        ),
        (
            "bad-json",
            [8u64.to_le_bytes().as_slice(), b"{\"a\":[}"].concat(),
        ),
    ] {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, content).unwrap();
        match build(&path) {
            Err(LpipsError::WeightFormat { source_name, .. }) => {
                assert!(source_name.contains(name))
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    let pth = dir.path().join("alexnet.pth");
    std::fs::write(&pth, b"PK").unwrap();
    assert!(matches!(build(&pth), Err(LpipsError::WeightFormat { .. })));
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(build(&missing), Err(LpipsError::Io { .. })));
}

#[test]
fn parse_errors_name_the_choices() {
    assert!(matches!("alexnet".parse::<Net>(), Ok(Net::Alex)));
    let e = "resnet".parse::<Net>().unwrap_err().to_string();
    assert!(
        e.contains("resnet") && e.contains("alex, vgg, squeeze"),
        "{e}"
    );
    assert!(matches!("v0.0".parse::<Lin>(), Ok(Lin::V0_0)));
    assert!("v0.2".parse::<Lin>().is_err());
    assert!(matches!(
        lpips::runtime::parse_device("cpu"),
        Ok(Device::Cpu)
    ));
    assert!(matches!(
        lpips::runtime::parse_device("gpu"),
        Err(LpipsError::Parse { .. })
    ));
    assert!(matches!(
        lpips::runtime::parse_device("cuda:x"),
        Err(LpipsError::Parse { .. })
    ));
    if !tch::Cuda::is_available() {
        assert!(matches!(
            lpips::runtime::parse_device("cuda:0"),
            Err(LpipsError::DeviceUnavailable { .. })
        ));
    }
}

#[test]
fn unavailable_devices_are_errors_not_panics() {
    let build = |device: Device| {
        Lpips::builder()
            .trunk(TrunkWeights::RandomInit)
            .device(device)
            .build()
    };
    let count = lpips::tch::Cuda::device_count();
    // An index past the devices there are: never usable, on any machine.
    match build(Device::Cuda(count as usize)) {
        Err(LpipsError::DeviceUnavailable { device, reason }) => {
            assert_eq!(device, format!("cuda:{count}"));
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
    if count == 0 {
        let e = build(Device::Cuda(0)).unwrap_err();
        assert!(e.to_string().contains("cuda:0"), "{e}");
    }
    if !lpips::tch::utils::has_mps() {
        assert!(matches!(
            build(Device::Mps),
            Err(LpipsError::DeviceUnavailable { .. })
        ));
    }
}

/// The library's writers replace regular files only: a FIFO or a device in the output's
/// place is an error at once (no blocking, the node left as it was), and a conversion
/// onto its own input is refused.
#[test]
fn writers_never_replace_what_is_not_a_regular_file_or_their_input() {
    use std::os::unix::fs::FileTypeExt;
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("fifo.npy");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let map = ndarray::Array2::<f32>::zeros((4, 4));
    for result in [
        lpips::maps::write_npy(&fifo, &map),
        lpips::maps::write_heatmap(&fifo, &map, None).map(drop),
    ] {
        match result {
            Err(LpipsError::NotAFile { kind, .. }) => assert!(kind.contains("FIFO")),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // /dev/null is never replaced (the check comes before any temporary file).
    match lpips::maps::write_npy("/dev/null", &map) {
        Err(LpipsError::NotAFile { kind, .. }) => assert_eq!(kind, "a device"),
        other => panic!("{other:?}"),
    }
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    let trunk = t.path().join("trunk.safetensors");
    std::fs::copy(crate::common::oracle_file("trunk_alex.safetensors"), &trunk).unwrap();
    let link = t.path().join("link.safetensors");
    std::os::unix::fs::symlink(&trunk, &link).unwrap();
    let before = std::fs::read(&trunk).unwrap();
    for output in [&trunk, &link] {
        match lpips::weights::convert_trunk(&trunk, output, None) {
            Err(e @ LpipsError::OutputIsInput { .. }) => {
                assert!(e.to_string().contains("is the input"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(&trunk).unwrap(), before);
}

/// `{:?}` of an error (what `fn main() -> Result<(), LpipsError>` prints when it fails)
/// is its message with the fix, not a struct dump nor libtorch's C++ backtrace.
#[test]
fn debug_prints_the_message_with_its_fix() {
    let home = tempfile::tempdir().unwrap();
    let e = Lpips::builder()
        .net(Net::Alex)
        .trunk(TrunkWeights::File(home.path().join("missing.safetensors")))
        .build()
        .unwrap_err();
    assert_eq!(format!("{e:?}"), e.to_string());
    assert!(!format!("{e:?}").contains('{'), "{e:?}");
    let torch = LpipsError::Torch(tch::TchError::Torch(
        "shape mismatch\nException raised from foo at bar.cpp:12\nframe #0: ...".into(),
    ));
    assert_eq!(format!("{torch:?}"), torch.to_string());
    assert!(!format!("{torch:?}").contains("frame"), "{torch:?}");
}

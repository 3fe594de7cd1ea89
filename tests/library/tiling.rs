//! Tiled evaluation equals one pass: distances, spatial maps and weighted distances of
//! all three trunks, v0.1/v0.0/none, at sizes that are multiples of nothing, with tiles
//! small enough that crops have interior borders on every side (the one-pass path is
//! itself checked against the reference in reference.rs). On the ImageNet trunks too, and
//! a real photograph of 1000 x 1500 (alex) tiled and in one pass against the reference's
//! one pass.

use lpips::ndarray::Array2;
use lpips::{Lin, Lpips, LpipsError, Net, Tensor};

use crate::common::{assert_close_slice, cli_oracle, on_imagenet, oracle_file};

fn model(net: Net, lin: Lin, tile: Option<i64>) -> Lpips {
    let b = Lpips::builder()
        .net(net)
        .lin(lin)
        .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())));
    match tile {
        Some(core) => b.tile(core),
        None => b,
    }
    .build()
    .unwrap()
}

/// A model of `net` whose tiles are chosen to fit in `bytes`.
fn model_within(net: Net, bytes: u64) -> Lpips {
    Lpips::builder()
        .net(net)
        .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
        .max_memory(bytes)
        .build()
        .unwrap()
}

/// Smooth random images with texture, in [-1, 1], `n x 3 x h x w`.
fn images(seed: i64, n: i64, h: i64, w: i64) -> Tensor {
    tch::manual_seed(seed);
    let opts = (tch::Kind::Float, tch::Device::Cpu);
    let coarse = Tensor::rand([n, 3, h / 7, w / 7], opts) * 2.0 - 1.0;
    let up = coarse.upsample_bilinear2d([h, w], false, None, None);
    (up + (Tensor::rand([n, 3, h, w], opts) - 0.5) * 0.5).clamp(-1.0, 1.0)
}

fn flat(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

// (height, width, core) per net: cores of 2 to 6 grid cells (16 px), so that crops
// have interior borders on the left/top of some tiles and the right/bottom of others.
fn case(net: Net) -> (i64, i64, i64) {
    match net {
        Net::Alex => (300, 211, 48),
        // VGG's receptive field (196 px) makes crops large: interior borders along the
        // height only, to keep the test short.
        Net::Vgg => (250, 100, 64),
        Net::Squeeze => (211, 300, 32),
    }
}

/// Each release once, each output once: v0.1 distance, v0.0 map, no heads weighted.
fn tiled_equals_one_pass(net: Net) {
    let (h, w, core) = case(net);
    let (a, b) = (images(1, 1, h, w), images(2, 1, h, w));
    let pair = |lin| (model(net, lin, None), model(net, lin, Some(core)));
    let (one, tiled) = pair(Lin::V0_1);
    assert_eq!(tiled.tile_size(1, h, w, false).unwrap(), Some(core));
    let whole = one.distance(&a, &b).unwrap();
    let got = tiled.distance(&a, &b).unwrap();
    assert_close_slice(&[got], &[whole], &format!("{net} v0.1 tiled distance"));
    let (one, tiled) = pair(Lin::V0_0);
    let whole = one.distance_map(&a, &b).unwrap();
    let got = tiled.distance_map(&a, &b).unwrap();
    assert_close_slice(&flat(&got), &flat(&whole), &format!("{net} v0.0 tiled map"));
    let (one, tiled) = pair(Lin::None);
    let weights = Array2::from_shape_fn((h as usize, w as usize), |(y, x)| {
        if x < w as usize / 3 {
            0.0
        } else {
            ((x * 7 + y * 3) % 11) as f32 / 10.0
        }
    });
    let whole = one.distance_weighted(&a, &b, &weights).unwrap();
    let got = tiled.distance_weighted(&a, &b, &weights).unwrap();
    assert_close_slice(&[got], &[whole], &format!("{net} none tiled weighted"));
}

#[test]
fn alex_tiled_equals_one_pass() {
    tiled_equals_one_pass(Net::Alex);
}

#[test]
fn vgg_tiled_equals_one_pass() {
    tiled_equals_one_pass(Net::Vgg);
}

#[test]
fn squeeze_tiled_equals_one_pass() {
    tiled_equals_one_pass(Net::Squeeze);
}

#[test]
fn imagenet_alex_tiled_equals_one_pass() {
    on_imagenet(|| tiled_equals_one_pass(Net::Alex));
}

#[test]
fn imagenet_vgg_tiled_equals_one_pass() {
    on_imagenet(|| tiled_equals_one_pass(Net::Vgg));
}

/// A photograph of 1000 x 1500 (scikit-image's motorcycle, upscaled) against a noisy
/// JPEG of it, ImageNet AlexNet: tiles chosen under a memory budget, and one pass, both
/// equal to the reference's one pass. (VGG at this size needs some 6 GB in one pass and
/// a minute on two cores: its tiles are checked at 250 x 100 above.)
#[test]
fn imagenet_large_photograph_tiled_equals_one_pass_and_the_reference() {
    on_imagenet(|| {
        let (a, b) = (oracle_file("large_a.png"), oracle_file("large_b.png"));
        assert_eq!(image::image_dimensions(&a).unwrap(), (1500, 1000));
        let want = cli_oracle()["large/alex/v0.1"].as_f64().unwrap() as f32;
        let whole = model(Net::Alex, Lin::V0_1, None).distance(&a, &b).unwrap();
        assert_close_slice(&[whole], &[want], "1000x1500 one pass vs reference");
        let budgeted = model_within(Net::Alex, 160 << 20);
        let core = budgeted.tile_size(1, 1000, 1500, false).unwrap();
        assert!(core.is_some(), "tiles under 160 MiB");
        let got = budgeted.distance(&a, &b).unwrap();
        eprintln!("1000x1500, tiles of {core:?}: {got} vs one pass {whole}, reference {want}");
        assert_close_slice(&[got], &[want], "1000x1500 tiled vs reference");
        assert_close_slice(&[got], &[whole], "1000x1500 tiled vs one pass");
    });
}

/// A batch, and the memory budget choosing the tiles by itself.
#[test]
fn max_memory_tiles_batches_and_refuses_what_cannot_fit() {
    let (a, b) = (images(5, 2, 257, 263), images(6, 2, 257, 263));
    let whole = model(Net::Alex, Lin::V0_1, None).distances(&a, &b).unwrap();
    let budgeted = model_within(Net::Alex, 24 << 20);
    assert!(budgeted.tile_size(2, 257, 263, false).unwrap().is_some());
    let got = budgeted.distances(&a, &b).unwrap();
    assert_close_slice(&got, &whole, "alex batch under 24 MiB");
    // One image against a batch.
    let one = b.narrow(0, 0, 1);
    let whole = model(Net::Alex, Lin::V0_1, None)
        .distances(&a, &one)
        .unwrap();
    let got = budgeted.distances(&a, &one).unwrap();
    assert_close_slice(&got, &whole, "alex one against two under 24 MiB");
    let tiny = model_within(Net::Alex, 1 << 20);
    match tiny.distances(&a, &b) {
        Err(e @ LpipsError::MemoryBudget { .. }) => {
            assert!(e.to_string().contains("max_memory"), "{e}")
        }
        other => panic!("expected MemoryBudget, got {other:?}"),
    }
}

/// Features of images that need tiles keep the images; comparing them runs the tiled
/// path (what the folder commands do), weighted too.
#[test]
fn features_under_a_budget_compare_as_one_pass() {
    let (a, b) = (images(7, 1, 257, 263), images(8, 1, 257, 263));
    let one = model(Net::Alex, Lin::V0_1, None);
    let budgeted = model_within(Net::Alex, 12 << 20);
    assert!(budgeted.tile_size(1, 257, 263, false).unwrap().is_some());
    let (fa, fb) = (
        budgeted.features(&a).unwrap(),
        budgeted.features(&b).unwrap(),
    );
    assert!(fa.layers().is_empty(), "kept for tiles");
    let got = budgeted.compare_features(&fa, &fb, false).unwrap();
    let whole = one.distance(&a, &b).unwrap();
    assert_close_slice(
        &[got.double_value(&[0, 0, 0, 0]) as f32],
        &[whole],
        "features tiled",
    );
    let weights = Array2::from_elem((257, 263), 0.5);
    let got = budgeted
        .compare_features_weighted(&fa, &fb, &weights)
        .unwrap();
    assert_close_slice(
        &[got.double_value(&[0, 0, 0, 0]) as f32],
        &[whole],
        "weighted",
    );
    // Features made in one pass do not mix with kept images.
    let fc = one.features(&b).unwrap();
    assert!(matches!(
        budgeted.compare_features(&fa, &fc, false),
        Err(LpipsError::MemoryMismatch)
    ));
}

/// Sizes and tile settings at the ends of `i64` are errors or clamps, never an
/// arithmetic overflow (a panic in debug builds, a wrong plan in release).
#[test]
fn extreme_sizes_and_tiles_are_errors_or_clamped() {
    let (a, b) = (images(3, 1, 64, 48), images(4, 1, 64, 48));
    let whole = model(Net::Alex, Lin::V0_1, None).distance(&a, &b).unwrap();
    for core in [i64::MAX, i64::MIN, 0] {
        let got = model(Net::Alex, Lin::V0_1, Some(core))
            .distance(&a, &b)
            .unwrap();
        assert_close_slice(&[got], &[whole], &format!("tile({core})"));
    }
    let m = model_within(Net::Vgg, 1 << 30);
    for (n, h, w) in [
        (1, i64::MAX, i64::MAX),
        (i64::MAX, 1000, 1000),
        (1 << 40, 1 << 20, 1 << 20),
    ] {
        assert!(
            matches!(
                m.tile_size(n, h, w, true),
                Err(LpipsError::MemoryBudget { .. })
            ),
            "{n} x {h} x {w}"
        );
    }
    for (n, h, w) in [(0, 64, 64), (1, i64::MIN, 5), (1, 64, -1)] {
        assert!(
            matches!(
                m.tile_size(n, h, w, false),
                Err(LpipsError::InvalidArgument {
                    argument: "Lpips::tile_size(n, h, w)",
                    ..
                })
            ),
            "{n} x {h} x {w}"
        );
    }
}

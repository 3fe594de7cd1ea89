//! Published evaluation protocols against their own arithmetic on the seeded trunks
//! (scripts/gen_harness.py): 3D Gaussian Splatting's [0, 1] feed, torchmetrics'
//! `normalize=True` and pyiqa's LPIPS, on 8-bit PNGs.

use lpips::{FeedRange, Lin, Lpips, Net};

use crate::common::{LINS, assert_close_slice, model, oracle_file};
use crate::harness::{harness, harness_file};

fn pair(net: Net) -> (std::path::PathBuf, std::path::PathBuf) {
    let n = net.name();
    (
        harness_file(&format!("{n}_a.png")),
        harness_file(&format!("{n}_b.png")),
    )
}

/// `--pixel-range zero-to-one`: 8-bit / 255 fed unchanged, as lpipsPyTorch gets it.
#[test]
fn zero_to_one_feed_matches_the_reference_fed_zero_to_one() {
    zero_to_one();
}

#[test]
fn imagenet_zero_to_one_feed_matches_the_reference_fed_zero_to_one() {
    crate::common::on_imagenet(zero_to_one);
}

fn zero_to_one() {
    let want = harness();
    for &net in crate::common::nets() {
        let (a, b) = pair(net);
        for (lin, label) in LINS {
            let m = Lpips::builder()
                .net(net)
                .lin(lin)
                .feed_range(FeedRange::ZeroToOne)
                .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
                .build()
                .unwrap();
            let key = format!("{}/{label}/zero_to_one", net.name());
            let got = m.distance(&a, &b).unwrap();
            assert_close_slice(&[got], &[want[&key].as_f64().unwrap() as f32], &key);
        }
    }
}

/// torchmetrics (`normalize=True`, nerfstudio) and pyiqa ([0, 1] input) run on the seeded
/// trunk equal our default on 8-bit images.
#[test]
fn torchmetrics_and_pyiqa_equal_the_default() {
    torchmetrics_and_pyiqa();
}

#[test]
fn imagenet_torchmetrics_and_pyiqa_equal_the_default() {
    crate::common::on_imagenet(torchmetrics_and_pyiqa);
}

fn torchmetrics_and_pyiqa() {
    let want = harness();
    for &net in crate::common::nets() {
        let (a, b) = pair(net);
        let got = model(net, Lin::V0_1).distance(&a, &b).unwrap();
        for other in ["torchmetrics", "pyiqa"] {
            let key = format!("{}/{other}", net.name());
            assert_close_slice(&[got], &[want[&key].as_f64().unwrap() as f32], &key);
        }
    }
}

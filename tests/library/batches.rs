//! Batches: pairs, one against many, the all-pairs matrix, features computed once.

use crate::common;

use crate::common::{assert_close, assert_close_slice, read_tensors};
use lpips::{Lin, Net};

#[test]
fn one_against_many_broadcasts() {
    one_against_many();
}

#[test]
fn imagenet_one_against_many_broadcasts() {
    common::on_imagenet(one_against_many);
}

fn one_against_many() {
    for &net in common::nets() {
        let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
        let m = common::model(net, Lin::V0_1);
        let (in0, in1) = (&oracle["in0"], &oracle["in1"]);
        let n = in0.size()[0];
        let first = in0.narrow(0, 0, 1);
        let one_vs_many = m.distances(&first, in1).unwrap();
        let expanded = m
            .distances(first.expand([n, -1, -1, -1], false).contiguous(), in1)
            .unwrap();
        assert_close_slice(&one_vs_many, &expanded, &format!("{net} broadcast"));
        // The first pair is a reference pair.
        let want = Vec::<f32>::try_from(oracle["v0.1/scalar"].flatten(0, -1)).unwrap();
        assert_close_slice(
            &one_vs_many[..1],
            &want[..1],
            &format!("{net} broadcast vs reference"),
        );
    }
}

#[test]
fn features_reused_equal_forward() {
    features_reused(Net::Squeeze);
}

#[test]
fn imagenet_features_reused_equal_forward() {
    common::on_imagenet(|| {
        features_reused(Net::Alex);
        features_reused(Net::Vgg);
    });
}

fn features_reused(net: Net) {
    let n = net.name();
    let oracle = read_tensors(&format!("outputs_{n}.safetensors"));
    for spatial in [false, true] {
        let m = lpips::Lpips::builder()
            .net(net)
            .spatial(spatial)
            .trunk_file(common::oracle_file(&format!("trunk_{n}.safetensors")))
            .build()
            .unwrap();
        let f0 = m.features(&oracle["in0"]).unwrap();
        let f1 = m.features(&oracle["in1"]).unwrap();
        assert_eq!(f0.len(), 3);
        assert_eq!(f0.layers().len(), net.channels().len());
        let key = if spatial {
            "v0.1/spatial"
        } else {
            "v0.1/scalar"
        };
        assert_close(
            &m.distance_from_features(&f0, &f1).unwrap(),
            &oracle[key],
            key,
        );
        // A 2AFC triplet: the reference's features once, compared with both.
        let r = f0.narrow(0, 1).unwrap();
        let d0 = m
            .distance_from_features(&r, &f1.narrow(0, 1).unwrap())
            .unwrap();
        let d1 = m
            .distance_from_features(&r, &f1.narrow(1, 1).unwrap())
            .unwrap();
        assert!(d0.double_value(&[0, 0, 0, 0]) > 0.0 && d1.double_value(&[0, 0, 0, 0]) > 0.0);
    }
}

#[test]
fn distance_matrix_matches_pairs_for_any_block_size() {
    distance_matrix();
}

#[test]
fn imagenet_distance_matrix_matches_pairs_for_any_block_size() {
    common::on_imagenet(distance_matrix);
}

fn distance_matrix() {
    let oracle = read_tensors("outputs_alex.safetensors");
    let m = common::model(Net::Alex, Lin::V0_1);
    // Six images: both sides of the oracle batch.
    let set = tch::Tensor::cat(&[&oracle["in0"], &oracle["in1"]], 0);
    let n = set.size()[0];
    let mut want = ndarray::Array2::<f32>::zeros((n as usize, n as usize));
    for i in 0..n {
        for j in 0..n {
            if i != j {
                want[[i as usize, j as usize]] = m
                    .distances(set.narrow(0, i, 1), set.narrow(0, j, 1))
                    .unwrap()[0];
            }
        }
    }
    for block in [1, 2, 4, 64] {
        let got = m.distance_matrix(&set, block).unwrap();
        assert_close_slice(
            got.as_slice().unwrap(),
            want.as_slice().unwrap(),
            &format!("matrix, block {block}"),
        );
        assert_eq!(got, got.t(), "symmetric");
    }
    // The reference's pair distances sit at (i, i + 3).
    let pairs = Vec::<f32>::try_from(oracle["v0.1/scalar"].flatten(0, -1)).unwrap();
    let got = m.distance_matrix(&set, 4).unwrap();
    let diag: Vec<f32> = (0..3).map(|i| got[[i, i + 3]]).collect();
    assert_close_slice(&diag, &pairs, "matrix vs reference");
}

//! The embedded linear heads equal the reference package's own files (converted by the
//! oracle script straight from `lpips/weights/v*/*.pth`).

use crate::common;

use lpips::weights::linear_heads;
use lpips::{Net, Version};

#[test]
fn embedded_heads_equal_reference_files() {
    for version in [Version::V0_0, Version::V0_1] {
        for net in Net::ALL {
            let reference =
                common::read_tensors(&format!("heads_{version}_{}.safetensors", net.name()));
            let ours = linear_heads(net, version).unwrap();
            assert_eq!(ours.len(), net.channels().len());
            assert_eq!(
                reference.len(),
                ours.len(),
                "{version} {net}: number of heads"
            );
            for (k, head) in ours.iter().enumerate() {
                let want = &reference[&format!("lin{k}.model.1.weight")];
                assert_eq!(head.size(), want.size(), "{version} {net} lin{k}: shape");
                let diff = (head - want).abs().max().double_value(&[]);
                assert_eq!(diff, 0.0, "{version} {net} lin{k}: values differ");
                // Heads are non-negative and not all zero in the reference.
                assert!(want.sum(tch::Kind::Float).double_value(&[]) > 0.0);
            }
        }
    }
}

#[test]
fn minimum_sides_match_reference() {
    let text = std::fs::read_to_string(common::oracle_file("min_sides.json")).unwrap();
    let sides: serde_json::Value = serde_json::from_str(&text).unwrap();
    for net in Net::ALL {
        assert_eq!(Some(net.min_side()), sides[net.name()].as_i64(), "{net}");
    }
}

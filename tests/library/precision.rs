//! f16 and bf16 trunks against the reference's f32 outputs on the test set: the error is
//! measured and printed, and bounded (relative to each distance, plus a small absolute
//! floor): f16 within 0.2% + 1e-5, bf16 within 1% + 1e-4 (measured here: 2.6e-4 and
//! 2.1e-3 at worst, CPU). On the ImageNet trunks and real photographs the same bounds
//! hold; the worst relative errors per trunk are docs/testing.md's precision table.

use crate::common::{LINS, cli_oracle, nets, on_imagenet, oracle_file, read_tensors};
use crate::harness::{harness, harness_file};
use lpips::{Lpips, Precision};

/// The worst relative error of `precision` against the reference's f32 over the oracle's
/// batch, its PNG pair and the masks oracle's pair (v0.1, v0.0, none), per net.
fn worst(precision: Precision) -> f64 {
    let mut worst_rel = 0f64;
    let (cli, harness) = (cli_oracle(), harness());
    for &net in nets() {
        let mut net_worst = 0f64;
        let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
        for (lin, label) in LINS {
            let m = Lpips::builder()
                .net(net)
                .lin(lin)
                .precision(precision)
                .trunk_file(oracle_file(&format!("trunk_{}.safetensors", net.name())))
                .build()
                .unwrap();
            let mut got = m.distances(&oracle["in0"], &oracle["in1"]).unwrap();
            let mut want =
                Vec::<f32>::try_from(oracle[&format!("{label}/scalar")].flatten(0, -1)).unwrap();
            // The CLI's PNG pair and the masks oracle's pair, read from their files.
            let n = net.name();
            let png = |i: &str| oracle_file(&format!("img_{n}_{i}.png"));
            got.push(m.distance(png("0"), png("1")).unwrap());
            want.push(cli[&format!("{n}/{label}")].as_f64().unwrap() as f32);
            let h = |s: &str| harness_file(&format!("{n}_{s}.png"));
            got.push(m.distance(h("a"), h("b")).unwrap());
            want.push(harness[&format!("{n}/{label}/plain")].as_f64().unwrap() as f32);
            let (rel, abs) = match precision {
                Precision::F16 => (2e-3, 1e-5),
                _ => (1e-2, 1e-4),
            };
            for (g, w) in got.iter().zip(&want) {
                let err = f64::from((g - w).abs());
                assert!(
                    err <= abs + rel * f64::from(w.abs()),
                    "{precision:?} {net} {label}: {g} vs {w}"
                );
                if *w != 0.0 {
                    net_worst = net_worst.max(err / f64::from(w.abs()));
                }
            }
        }
        let trunks = if crate::common::imagenet() {
            "ImageNet"
        } else {
            "seeded"
        };
        eprintln!(
            "{precision:?} {net} ({trunks}): worst relative error against the reference's f32: {net_worst:.2e}"
        );
        worst_rel = worst_rel.max(net_worst);
    }
    worst_rel
}

#[test]
fn half_precisions_within_bounds() {
    let f16 = worst(Precision::F16);
    let bf16 = worst(Precision::BF16);
    // bf16 keeps fewer mantissa bits than f16.
    assert!(bf16 >= f16);
}

#[test]
fn imagenet_half_precisions_within_bounds() {
    on_imagenet(half_precisions_within_bounds);
}

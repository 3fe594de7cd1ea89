//! Every configuration against the reference package's outputs on the same seeded
//! random trunks: 3 nets x v0.1/v0.0/none x scalar/spatial/per-layer, a batch of 3 at
//! non-square sizes, plus the [0, 1] input option; and the same on torchvision's
//! ImageNet AlexNet and VGG16 trunks with real photographs (`imagenet_*`).

use crate::common;

use crate::common::{LINS, assert_close, model, read_tensors};
use lpips::{InputRange, Lpips, Net};

/// The trunk's file, with the Winograd path on every 3x3 layer whatever the size (the
/// oracle's inputs are too small for it to pay, and so to be chosen, on its own).
fn everywhere(net: Net, lin: lpips::Lin) -> lpips::LpipsBuilder {
    Lpips::builder()
        .net(net)
        .lin(lin)
        .winograd_everywhere()
        .trunk_file(common::oracle_file(&format!(
            "trunk_{}.safetensors",
            net.name()
        )))
}

fn check_net(net: Net) {
    let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
    let (in0, in1) = (&oracle["in0"], &oracle["in1"]);
    for (lin, label) in LINS {
        // The default choice per layer, checked against the reference on the totals.
        let chosen = model(net, lin);
        assert!(
            chosen.winograd(),
            "{net}: filters for its larger 3x3 layers"
        );
        let out = chosen.forward_layers(in0, in1).unwrap();
        assert_close(
            &out.total,
            &oracle[&format!("{label}/scalar")],
            &format!("{net} {label} scalar, default choice"),
        );
        let scalar = everywhere(net, lin).build().unwrap();
        assert!(scalar.winograd());
        let out = scalar.forward_layers(in0, in1).unwrap();
        assert_close(
            &out.total,
            &oracle[&format!("{label}/scalar")],
            &format!("{net} {label} scalar"),
        );
        assert_eq!(out.layers.len(), net.channels().len());
        for (k, layer) in out.layers.iter().enumerate() {
            let key = format!("{label}/scalar_layer{k}");
            assert_close(layer, &oracle[&key], &format!("{net} {key}"));
        }
        let batch = scalar.distances(in0, in1).unwrap();
        let want = Vec::<f32>::try_from(oracle[&format!("{label}/scalar")].flatten(0, -1)).unwrap();
        common::assert_close_slice(&batch, &want, &format!("{net} {label} distance_batch"));
        // The last pair is identical: exactly zero.
        assert_eq!(batch[batch.len() - 1], 0.0, "{net} {label}: identical pair");
        // The same with libtorch's direct convolutions only (no Winograd).
        let direct = Lpips::builder()
            .net(net)
            .lin(lin)
            .winograd(false)
            .trunk_file(common::oracle_file(&format!(
                "trunk_{}.safetensors",
                net.name()
            )))
            .build()
            .unwrap();
        assert!(!direct.winograd());
        let out = direct.forward_layers(in0, in1).unwrap();
        assert_close(
            &out.total,
            &oracle[&format!("{label}/scalar")],
            &format!("{net} {label} scalar, no Winograd"),
        );
        let batch = direct.distances(in0, in1).unwrap();
        common::assert_close_slice(
            &batch,
            &want,
            &format!("{net} {label} distance_batch, no Winograd"),
        );

        let spatial = everywhere(net, lin).spatial(true).build().unwrap();
        let out = spatial.forward_layers(in0, in1).unwrap();
        assert_close(
            &out.total,
            &oracle[&format!("{label}/spatial")],
            &format!("{net} {label} spatial"),
        );
        for (k, layer) in out.layers.iter().enumerate() {
            let key = format!("{label}/spatial_layer{k}");
            assert_close(layer, &oracle[&key], &format!("{net} {key}"));
        }

        let unit = everywhere(net, lin)
            .input_range(InputRange::ZeroToOne)
            .build()
            .unwrap();
        let got = unit
            .forward(&((in0 + 1.0) / 2.0), &((in1 + 1.0) / 2.0))
            .unwrap();
        assert_close(
            &got,
            &oracle[&format!("{label}/normalized")],
            &format!("{net} {label} normalize"),
        );
    }
}

#[test]
fn alex_matches_reference() {
    check_net(Net::Alex);
}

#[test]
fn vgg_matches_reference() {
    check_net(Net::Vgg);
}

#[test]
fn squeeze_matches_reference() {
    check_net(Net::Squeeze);
}

#[test]
fn imagenet_alex_matches_reference() {
    common::on_imagenet(|| check_net(Net::Alex));
}

#[test]
fn imagenet_vgg_matches_reference() {
    common::on_imagenet(|| check_net(Net::Vgg));
}

/// `forward` keeps autograd: the gradient reaching the input equals the reference's.
#[test]
fn input_gradient_matches_reference() {
    input_gradients();
}

#[test]
fn imagenet_input_gradient_matches_reference() {
    common::on_imagenet(input_gradients);
}

fn input_gradients() {
    for &net in common::nets() {
        let oracle = read_tensors(&format!("outputs_{}.safetensors", net.name()));
        for (lin, label) in LINS {
            let m = model(net, lin);
            let x = oracle["in0"].copy().set_requires_grad(true);
            m.forward(&x, &oracle["in1"])
                .unwrap()
                .sum(tch::Kind::Float)
                .backward();
            let grad = x.grad();
            assert!(grad.defined(), "{net} {label}: no gradient");
            // On real photographs: the reference run in channels-last, the layout of our
            // trunk (libtorch routes parts of the gradient differently in that layout;
            // scripts/gen_oracle.py, write_outputs).
            let cl = format!("{label}/grad_in0_channels_last");
            let plain = format!("{label}/grad_in0");
            let want = oracle.get(&cl).unwrap_or(&oracle[&plain]);
            assert_close(&grad, want, &format!("{net} {label} grad"));
            if oracle.contains_key(&cl) {
                let off = (&grad - &oracle[&plain]).abs().max().double_value(&[]);
                let scale = oracle[&plain].abs().max().double_value(&[]);
                eprintln!(
                    "{net} {label}: against the contiguous reference up to {off:.2e} (largest gradient {scale:.2e})"
                );
            }
        }
    }
}

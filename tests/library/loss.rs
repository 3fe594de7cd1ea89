//! LPIPS as a training loss: gradients reach the inputs (their values are checked against
//! the reference's autograd in tests/library/reference.rs), the model's weights stay frozen,
//! all-zero features give a finite gradient, an optimised image gets closer (memory over
//! repeated steps: tests/memory.rs, alone in its process so that RSS means something).

use crate::common;

use lpips::weights::TrunkWeights;
use lpips::{Device, Lin, Lpips, Net, Tensor};
use tch::Kind;

#[test]
fn weights_stay_frozen() {
    frozen();
}

#[test]
fn imagenet_weights_stay_frozen() {
    common::on_imagenet(frozen);
}

fn frozen() {
    let oracle = common::read_tensors("outputs_vgg.safetensors");
    let m = common::model(Net::Vgg, Lin::V0_1);
    let x = oracle["in0"].copy().set_requires_grad(true);
    for _ in 0..2 {
        m.forward(&x, &oracle["in1"])
            .unwrap()
            .sum(Kind::Float)
            .backward();
    }
    assert!(x.grad().defined());
    let weights = m.weights();
    assert_eq!(
        weights.len(),
        13 * 2 + 5,
        "13 convolutions with bias, 5 heads"
    );
    for w in weights {
        assert!(!w.requires_grad(), "a weight requires grad");
        assert!(!w.grad().defined(), "a gradient accumulated in a weight");
    }
}

/// Inputs that need no gradient through a frozen model: no autograd graph is built (it
/// would hold every activation until the result is dropped), on every trunk and on the
/// small maps where the trunk convolves with its NCHW copy of the weights.
#[test]
fn inputs_without_gradient_build_no_graph() {
    for net in [Net::Alex, Net::Vgg, Net::Squeeze] {
        let oracle = common::read_tensors(&format!("outputs_{}.safetensors", net.name()));
        let m = common::model(net, Lin::V0_1);
        let out = m.forward_layers(&oracle["in0"], &oracle["in1"]).unwrap();
        assert!(
            !out.total.requires_grad(),
            "{net}: the result tracks a gradient"
        );
        for (k, layer) in out.layers.iter().enumerate() {
            assert!(!layer.requires_grad(), "{net}: layer {k} tracks a gradient");
        }
    }
}

/// A trunk whose every feature is zero: the reference's square root has an infinite
/// derivative there and its gradient is NaN; ours must be a finite zero.
#[test]
fn zero_features_and_identical_inputs_give_finite_zero_gradients() {
    let zeros: Vec<(String, Tensor)> = [
        (0, 3, 64, 11),
        (3, 64, 192, 5),
        (6, 192, 384, 3),
        (8, 384, 256, 3),
        (10, 256, 256, 3),
    ]
    .into_iter()
    .flat_map(|(i, cin, cout, k)| {
        [
            (
                format!("features.{i}.weight"),
                Tensor::zeros([cout, cin, k, k], (Kind::Float, Device::Cpu)),
            ),
            (
                format!("features.{i}.bias"),
                Tensor::zeros([cout], (Kind::Float, Device::Cpu)),
            ),
        ]
    })
    .collect();
    let dead = Lpips::builder()
        .net(Net::Alex)
        .trunk(TrunkWeights::Tensors(zeros))
        .build()
        .unwrap();
    let oracle = common::read_tensors("outputs_alex.safetensors");
    let live = common::model(Net::Alex, Lin::V0_1);
    for (name, m, other) in [
        ("dead trunk", &dead, &oracle["in1"]),
        ("identical inputs", &live, &oracle["in0"]),
    ] {
        let x = oracle["in0"].copy().set_requires_grad(true);
        let d = m.forward(&x, other).unwrap();
        assert_eq!(
            d.sum(Kind::Float).double_value(&[]),
            0.0,
            "{name}: distance"
        );
        d.sum(Kind::Float).backward();
        let g = x.grad();
        assert!(
            bool::try_from(g.isfinite().all()).unwrap(),
            "{name}: non-finite gradient"
        );
        assert_eq!(
            g.abs().max().double_value(&[]),
            0.0,
            "{name}: gradient not zero"
        );
    }
}

/// The reference's `lpips_loss.py` loop (Adam on the pixels, clamped to [-1, 1]): the
/// loss falls. `examples/optimize.rs` is the same loop as a program.
#[test]
fn optimising_an_image_lowers_the_loss() {
    optimise();
}

#[test]
fn imagenet_optimising_an_image_lowers_the_loss() {
    common::on_imagenet(optimise);
}

fn optimise() {
    use tch::nn::OptimizerConfig;
    let oracle = common::read_tensors("outputs_alex.safetensors");
    let m = common::model(Net::Alex, Lin::V0_1);
    let target = oracle["in0"].narrow(0, 0, 1);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let mut image = vs.root().var_copy("image", &oracle["in1"].narrow(0, 0, 1));
    let mut adam = tch::nn::Adam::default().build(&vs, 1e-2).unwrap();
    let mut losses = Vec::new();
    for _ in 0..30 {
        let loss = m.forward(&image, &target).unwrap().sum(Kind::Float);
        losses.push(loss.double_value(&[]));
        adam.zero_grad();
        loss.backward();
        adam.step();
        tch::no_grad(|| {
            let _ = image.clamp_(-1.0, 1.0);
        });
    }
    eprintln!("loss {} -> {}", losses[0], losses[29]);
    assert!(
        losses[29] < 0.7 * losses[0],
        "loss {} -> {}",
        losses[0],
        losses[29]
    );
}

/// Heads being trained (as `lpips train` trains them) on inputs that need no gradient:
/// the trunk may take the CPU kernels, but the heads' gradient must be autograd's, the
/// same as with those kernels off.
#[test]
fn trained_heads_get_their_gradient_with_the_cpu_kernels_on() {
    let oracle = common::read_tensors("outputs_vgg.safetensors");
    let head_grads = |winograd: bool| -> Vec<Tensor> {
        let m = Lpips::builder()
            .net(Net::Vgg)
            .trunk_file(common::oracle_file("trunk_vgg.safetensors"))
            .winograd(winograd)
            .build()
            .unwrap();
        let heads: Vec<Tensor> = m.weights().split_off(13 * 2);
        for h in &heads {
            let _ = h.set_requires_grad(true);
        }
        m.forward(&oracle["in0"], &oracle["in1"])
            .unwrap()
            .sum(Kind::Float)
            .backward();
        heads.iter().map(|h| h.grad().copy()).collect()
    };
    let (on, off) = (head_grads(true), head_grads(false));
    assert_eq!(on.len(), 5);
    for (k, (g, want)) in on.iter().zip(&off).enumerate() {
        assert!(g.defined(), "head {k}: no gradient");
        common::assert_close(g, want, &format!("head {k} gradient"));
    }
}

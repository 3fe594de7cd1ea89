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

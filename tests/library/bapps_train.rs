//! `lpips train` against the reference's own `lpips.Trainer`: the same starting weights
//! (written by scripts/gen_train_oracle.py in this crate's checkpoint format), three
//! optimisation steps with dropout off, the same weights after, within 1e-6 + 1e-4|ref|.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::{assert_close, oracle_file};
use lpips::bapps::{Trainer, TwoAfcSet};
use lpips::weights::TrunkWeights;
use lpips::{Device, Tensor};

fn train_dir() -> PathBuf {
    let dir = oracle_file("train");
    assert!(
        dir.join("stamp").is_file(),
        "missing {}: run `make oracle` (scripts/gen_train_oracle.py)",
        dir.display()
    );
    dir
}

fn tensors(path: &std::path::Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn losses(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    serde_json::from_str(&meta.metadata().as_ref().unwrap()["losses"]).unwrap()
}

fn check_recipe(mode: &str) {
    let dir = train_dir();
    let data = vec![TwoAfcSet::open(&dir.join("data/2afc/train/mini")).unwrap()];
    let mut trainer = Trainer::resume(
        &dir.join(format!("start_{mode}.safetensors")),
        TrunkWeights::File(oracle_file("trunk_alex.safetensors")),
        Device::Cpu,
    )
    .unwrap();
    let want_losses = losses(&dir.join(format!("after_{mode}.safetensors")));
    let mut got_losses = Vec::new();
    while !trainer.finished() {
        got_losses.push(trainer.train_epoch(&data, &mut |_| {}).unwrap().loss);
    }
    assert_eq!(got_losses.len(), want_losses.len(), "{mode}: steps");
    for (g, w) in got_losses.iter().zip(&want_losses) {
        assert!(
            (g - w).abs() <= 1e-6 + 1e-4 * w.abs(),
            "{mode}: loss {g} vs reference {w}"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("after.safetensors");
    trainer.save(&saved).unwrap();
    let got = tensors(&saved);
    let want = tensors(&dir.join(format!("after_{mode}.safetensors")));
    for (name, w) in &want {
        let g = got
            .get(name)
            .unwrap_or_else(|| panic!("{mode}: {name} missing from the checkpoint"));
        assert_close(g, w, &format!("{mode} {name}"));
    }
    // The steps moved the heads (else the comparison above proves little).
    let start = tensors(&dir.join(format!("start_{mode}.safetensors")));
    let moved = (&start["lin0.model.1.weight"] - &want["lin0.model.1.weight"])
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        moved > 1e-5,
        "{mode}: reference heads barely moved ({moved})"
    );
}

#[test]
fn heads_only_steps_equal_the_reference() {
    check_recipe("lin");
}

#[test]
fn trunk_tuning_steps_equal_the_reference() {
    check_recipe("tune");
}

/// The reference's own training checkpoint (`Trainer.save`: the whole `lpips.LPIPS` state
/// dict, trunk under `net.slice{k}.{i}`) loads with `heads_file` alone, trunk included,
/// and gives the reference's distances.
#[test]
fn reference_training_checkpoint_loads_with_its_trunk() {
    let dir = train_dir();
    let model = lpips::Lpips::builder()
        .heads_file(dir.join("reference_tune_net.pth"))
        .build()
        .unwrap();
    let set = TwoAfcSet::open(&dir.join("data/2afc/train/mini")).unwrap();
    let d: Vec<f32> = set
        .refs
        .iter()
        .zip(&set.p0)
        .map(|(r, p)| {
            let (a, b) = (
                lpips::bapps::load_patch(r, 64).unwrap(),
                lpips::bapps::load_patch(p, 64).unwrap(),
            );
            let range = lpips::InputRange::MinusOneToOne;
            model
                .distances(lpips::Chw(a.view(), range), lpips::Chw(b.view(), range))
                .unwrap()[0]
        })
        .collect();
    let want = tensors(&dir.join("reference_tune_distances.safetensors"));
    common::assert_close_slice(&d, &Vec::<f32>::try_from(&want["d"]).unwrap(), "distances");
}

/// `--scratch` starts from torchvision's initialisation of an untrained trunk: AlexNet
/// uniform within 1/sqrt(fan_in), VGG normal with std sqrt(2/fan_out) and zero biases,
/// SqueezeNet uniform within sqrt(6/fan_in) and zero biases.
#[test]
fn scratch_trunks_start_from_torchvision_initialisation() {
    use lpips::Net;
    use lpips::bapps::{TrainConfig, TrainMode};
    for net in Net::ALL {
        let config = TrainConfig {
            net,
            mode: TrainMode::Scratch,
            ..TrainConfig::default()
        };
        let trainer = Trainer::new(config, TrunkWeights::Auto, Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scratch.safetensors");
        trainer.save(&path).unwrap();
        let t = tensors(&path);
        let w = &t["features.0.weight"];
        let b = &t["features.0.bias"];
        let size = w.size();
        let fan_in = (size[1] * size[2] * size[3]) as f64;
        let fan_out = (size[0] * size[2] * size[3]) as f64;
        let (max, std) = (
            w.abs().max().double_value(&[]),
            w.std(true).double_value(&[]),
        );
        let bias_max = b.abs().max().double_value(&[]);
        match net {
            Net::Alex => {
                let bound = 1.0 / fan_in.sqrt();
                assert!(
                    max <= bound && max > 0.9 * bound,
                    "alex weight bound {max} vs {bound}"
                );
                assert!(bias_max <= bound && bias_max > 0.0, "alex bias {bias_max}");
            }
            Net::Vgg => {
                let want = (2.0 / fan_out).sqrt();
                assert!((std / want - 1.0).abs() < 0.1, "vgg std {std} vs {want}");
                assert_eq!(bias_max, 0.0);
            }
            Net::Squeeze => {
                let bound = (6.0 / fan_in).sqrt();
                assert!(
                    max <= bound && max > 0.9 * bound,
                    "squeeze bound {max} vs {bound}"
                );
                assert_eq!(bias_max, 0.0);
            }
        }
        assert!(t.contains_key("lin0.model.1.weight") && t.contains_key("rank.model.0.weight"));
    }
}

/// A recipe whose epoch counts overflow when added is refused, naming the fields, not
/// run for "0 epochs" (nor, in a debug build, a panic).
#[test]
fn epoch_counts_that_overflow_are_refused() {
    use lpips::LpipsError;
    use lpips::bapps::TrainConfig;
    let config = TrainConfig {
        epochs: usize::MAX,
        decay_epochs: 1,
        ..TrainConfig::default()
    };
    assert_eq!(config.total_epochs(), usize::MAX);
    let err = Trainer::new(
        config,
        TrunkWeights::File(oracle_file("trunk_alex.safetensors")),
        Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(&err, LpipsError::TrainSetting { field, .. } if *field == "epochs + decay_epochs"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("epochs + decay_epochs = {} + 1", usize::MAX)),
        "{text}"
    );
}

/// A rate that blows the weights up stops the run with an error naming the rate
/// (`TrainConfig::lr`), not libtorch's complaint about NaN inputs to the loss.
#[test]
fn a_diverging_run_stops_naming_the_learning_rate() {
    use lpips::LpipsError;
    use lpips::bapps::TrainConfig;
    let mut set = TwoAfcSet::open(&train_dir().join("data/2afc/train/mini")).unwrap();
    set.truncate(20);
    let config = TrainConfig {
        lr: 1e30,
        epochs: 4,
        decay_epochs: 0,
        batch_size: 10,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(
        config,
        TrunkWeights::File(oracle_file("trunk_alex.safetensors")),
        Device::Cpu,
    )
    .unwrap();
    let err = loop {
        match trainer.train_epoch(std::slice::from_ref(&set), &mut |_| {}) {
            Ok(_) => assert!(!trainer.finished(), "4 epochs at lr 1e30 went through"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, LpipsError::TrainingDiverged { lr, .. } if lr == 1e30),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("training diverged at epoch "), "{text}");
    assert!(text.ends_with("lower TrainConfig::lr (now 1e30)"), "{text}");
}

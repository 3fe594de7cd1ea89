//! `lpips train` against the reference's own `lpips.Trainer`: the same starting weights
//! (written by scripts/gen_train_oracle.py in this crate's checkpoint format), three
//! optimisation steps with dropout off, the same weights after, within 1e-6 + 1e-4|ref|.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use common::{assert_close, oracle_file};
use lpips::bapps::{Trainer, TwoAfcSet};
use lpips::{Device, Tensor, TrunkWeights};

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

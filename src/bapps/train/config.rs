//! The training recipe and its checks: what is trained, for how long, how fast.

use serde::{Deserialize, Serialize};

use super::DROPOUT;
use crate::config::Net;
use crate::error::{LpipsError, Result};

/// What is trained, as the reference's `train.py` flags choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainMode {
    /// Heads only, on a frozen ImageNet trunk (the paper's "lin").
    #[default]
    Lin,
    /// Heads and trunk, from the ImageNet trunk (`--train_trunk`, the paper's "tune").
    Tune,
    /// Heads and trunk, from a random trunk (`--from_scratch --train_trunk`, the paper's
    /// "scratch").
    Scratch,
}

impl TrainMode {
    pub(super) fn trains_trunk(self) -> bool {
        self != TrainMode::Lin
    }
}

/// The training recipe; the defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The trunk.
    pub net: Net,
    /// What is trained.
    pub mode: TrainMode,
    /// Epochs at the base rate (`--nepoch`, 5).
    pub epochs: usize,
    /// Further epochs with the rate decaying linearly (`--nepoch_decay`, 5).
    pub decay_epochs: usize,
    /// Triplets per step (50).
    pub batch_size: usize,
    /// Adam's base learning rate (1e-4).
    pub lr: f64,
    /// Adam's beta1 (0.5).
    pub beta1: f64,
    /// Seed for the heads' initialisation, the shuffling and dropout.
    pub seed: u64,
    /// Dropout probability in front of each head while training (the reference's
    /// `nn.Dropout()`, 0.5).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
}

fn default_dropout() -> f64 {
    DROPOUT
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            net: Net::Alex,
            mode: TrainMode::Lin,
            epochs: 5,
            decay_epochs: 5,
            batch_size: 50,
            lr: 1e-4,
            beta1: 0.5,
            seed: 0,
            dropout: DROPOUT,
        }
    }
}

impl TrainConfig {
    /// Total epochs (saturating: a recipe whose sum overflows is refused when a run
    /// starts).
    pub fn total_epochs(&self) -> usize {
        self.epochs.saturating_add(self.decay_epochs)
    }

    /// The learning rate of epoch `epoch` (1-based), as the reference's schedule gives it:
    /// it lowers the rate by `lr / decay_epochs` after each epoch past `epochs`.
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        let decayed = epoch.saturating_sub(self.epochs.saturating_add(1));
        if self.decay_epochs == 0 {
            return self.lr;
        }
        self.lr - decayed as f64 * self.lr / self.decay_epochs as f64
    }
}

/// Loss and agreement over one epoch.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EpochStats {
    /// The epoch (1-based).
    pub epoch: usize,
    /// Its learning rate.
    pub lr: f64,
    /// Mean ranking loss over its steps.
    pub loss: f64,
    /// Mean agreement with the judgements, as the reference's `compute_accuracy` counts it.
    pub accuracy: f64,
    /// Triplets seen.
    pub triplets: usize,
}

/// Progress within an epoch, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// Triplets done in this epoch.
    pub done: usize,
    /// Running mean loss.
    pub loss: f64,
}

pub(super) fn check_config(c: &TrainConfig) -> Result<()> {
    let bad = |field: &'static str, value: String, expected: &str| LpipsError::TrainSetting {
        field,
        value,
        expected: expected.to_string(),
    };
    if c.batch_size == 0 {
        return Err(bad("batch_size", "0".into(), "at least 1"));
    }
    if !(c.lr.is_finite() && c.lr > 0.0) {
        return Err(bad("lr", format!("{:e}", c.lr), "a positive learning rate"));
    }
    if !(0.0..1.0).contains(&c.beta1) {
        return Err(bad("beta1", c.beta1.to_string(), "a value in [0, 1)"));
    }
    if !(0.0..1.0).contains(&c.dropout) {
        return Err(bad("dropout", c.dropout.to_string(), "a value in [0, 1)"));
    }
    match c.epochs.checked_add(c.decay_epochs) {
        None => Err(bad(
            "epochs + decay_epochs",
            format!("{} + {}", c.epochs, c.decay_epochs),
            &format!("a total of at most {} epochs", usize::MAX),
        )),
        Some(0) => Err(bad(
            "epochs + decay_epochs",
            "0 + 0".into(),
            "at least one epoch",
        )),
        Some(_) => Ok(()),
    }
}

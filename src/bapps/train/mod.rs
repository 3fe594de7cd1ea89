//! Training linear heads on 2AFC judgements with the reference's recipe (its `train.py`
//! and `lpips/trainer.py`): random heads behind dropout, the small ranking network that
//! maps the two distances to a predicted judgement, binary cross-entropy, Adam
//! (lr 1e-4, beta1 0.5), the rate constant for `epochs` then decaying linearly over
//! `decay_epochs`, heads clamped non-negative after every step.
//!
//! Differences from the reference, all deliberate: the reference image goes through the
//! trunk once per triplet, not twice (same values and gradients); with a frozen trunk
//! no graph is kept for it; only the heads are clamped (the reference clamps every 1x1
//! convolution it finds, which with SqueezeNet includes the trunk's own 1x1 convolutions,
//! even when the trunk is frozen); the optimiser's state is saved, so a run resumes
//! where it stopped.

mod adam;
mod config;
mod dist2logit;
mod files;
mod init;

use std::collections::HashMap;
use std::path::Path;

use tch::{Device, Kind, Reduction, Tensor};

use super::batches::Loading;
use super::dataset::TwoAfcSet;
use super::eval::{LOAD_SIZE, stack};
use super::{load_patch, read_judgement};
use crate::config::{Heads, Version};
use crate::error::{LpipsError, Result};
use crate::model::Lpips;
use crate::weights::{self, TrunkWeights};

use adam::Adam;
use config::check_config;
pub use config::{EpochStats, StepProgress, TrainConfig, TrainMode};
use dist2logit::RankNet;
use files::{read_metadata, write_safetensors};
use init::torchvision_init;

// nn.Dropout()'s default probability, in front of each head.
const DROPOUT: f64 = 0.5;
const FORMAT: &str = "lpips-train/1";

/// A training run: the model, the ranking network, the optimiser and how far it got.
pub struct Trainer {
    config: TrainConfig,
    model: Lpips,
    rank: RankNet,
    adam: Adam,
    epochs_done: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("epochs_done", &self.epochs_done)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// A fresh run: random heads and ranking network (seeded), the trunk from `trunk`
    /// (ignored for [`TrainMode::Scratch`], whose trunk is initialised as torchvision
    /// initialises an untrained one).
    pub fn new(config: TrainConfig, trunk: TrunkWeights, device: Device) -> Result<Trainer> {
        check_config(&config)?;
        tch::manual_seed(config.seed as i64);
        let trunk = match config.mode {
            TrainMode::Scratch => TrunkWeights::RandomInit,
            _ => trunk,
        };
        let mut model = Lpips::builder()
            .net(config.net)
            .version(Version::V0_1)
            .heads(Heads::Learned)
            .trunk(trunk)
            .device(device)
            .build()?;
        if config.mode == TrainMode::Scratch {
            torchvision_init(&model)?;
        }
        let heads = config
            .net
            .channels()
            .iter()
            .map(|&c| {
                let bound = 1.0 / (c as f64).sqrt();
                Ok(Tensor::f_empty([1, c, 1, 1], (Kind::Float, device))?
                    .f_uniform_(-bound, bound)?)
            })
            .collect::<Result<_>>()?;
        model.set_heads(heads);
        let rank = RankNet::new(device)?;
        let adam = Adam::new(&trained_params(&model, &rank, config.mode)?)?;
        Trainer::assemble(config, model, rank, adam, 0)
    }

    /// Continues a run from a checkpoint written by [`Trainer::save`]. A [`TrainMode::Lin`]
    /// run's checkpoint holds no trunk: give the same `trunk` as the run began with.
    pub fn resume(path: &Path, trunk: TrunkWeights, device: Device) -> Result<Trainer> {
        let bad = |reason: String| LpipsError::TrainCheckpoint {
            path: path.to_path_buf(),
            reason,
        };
        let meta = read_metadata(path)?;
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a training checkpoint of this version (format {:?}, expected {FORMAT})",
                meta.get("format")
            )));
        }
        let field = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("metadata `{k}` missing")))
        };
        let config: TrainConfig = serde_json::from_str(field("config")?)
            .map_err(|e| bad(format!("metadata `config` unreadable: {e}")))?;
        check_config(&config)?;
        let epochs_done: usize = field("epoch")?
            .parse()
            .map_err(|e| bad(format!("metadata `epoch` unreadable: {e}")))?;
        let step: i64 = field("step")?
            .parse()
            .map_err(|e| bad(format!("metadata `step` unreadable: {e}")))?;
        let trunk = if config.mode.trains_trunk() {
            TrunkWeights::File(path.to_path_buf())
        } else {
            trunk
        };
        let model = Lpips::builder()
            .net(config.net)
            .version(Version::V0_1)
            .heads_file(path)
            .trunk(trunk)
            .device(device)
            .build()?;
        let rank = RankNet::new(device)?;
        let mut map = weights::read_trunk_file(path)?;
        for (name, p) in &rank.params {
            let loaded = map.take(name, &p.size())?;
            tch::no_grad(|| p.shallow_clone().f_copy_(&loaded.f_to_device(device)?))?;
        }
        let params = trained_params(&model, &rank, config.mode)?;
        let mut moments = |which: &str| -> Result<Vec<Tensor>> {
            params
                .iter()
                .map(|(name, p)| {
                    Ok(map
                        .take(&format!("adam.{which}.{name}"), &p.size())?
                        .f_to_device(device)?)
                })
                .collect()
        };
        let adam = Adam {
            step,
            exp_avg: moments("exp_avg")?,
            exp_avg_sq: moments("exp_avg_sq")?,
        };
        Trainer::assemble(config, model, rank, adam, epochs_done)
    }

    /// The run, with every trained tensor requiring gradients.
    fn assemble(
        config: TrainConfig,
        mut model: Lpips,
        rank: RankNet,
        adam: Adam,
        epochs_done: usize,
    ) -> Result<Trainer> {
        if config.mode.trains_trunk() {
            model.prepare_trunk_training();
        }
        for (_, p) in trained_params(&model, &rank, config.mode)? {
            let _ = p.f_set_requires_grad(true)?;
        }
        Ok(Trainer {
            config,
            model,
            rank,
            adam,
            epochs_done,
        })
    }

    /// The recipe.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Whether every epoch of the recipe is done.
    pub fn finished(&self) -> bool {
        self.epochs_done >= self.config.total_epochs()
    }

    /// The model as trained so far, for measuring (no dropout).
    pub fn model(&self) -> &Lpips {
        &self.model
    }

    /// Runs the next epoch over every triplet of `data`, in a seeded shuffled order.
    pub fn train_epoch(
        &mut self,
        data: &[TwoAfcSet],
        progress: &mut dyn FnMut(StepProgress),
    ) -> Result<EpochStats> {
        let epoch = self.epochs_done.saturating_add(1);
        let lr = self.config.learning_rate(epoch);
        // Seeded per epoch, so that a resumed run shuffles as an uninterrupted one would.
        tch::manual_seed(self.config.seed as i64 ^ ((epoch as i64) << 20));
        // The sets' fields are public: lists of other lengths would index out of bounds.
        for set in data {
            let n = set.refs.len();
            if [set.p0.len(), set.p1.len(), set.judges.len()] != [n; 3] {
                return Err(LpipsError::Dataset {
                    path: set.root.clone(),
                    reason: format!(
                        "ref, p0, p1 and judge lists differ in length ({n}, {}, {}, {})",
                        set.p0.len(),
                        set.p1.len(),
                        set.judges.len()
                    ),
                });
            }
        }
        let items: Vec<(usize, usize)> = data
            .iter()
            .enumerate()
            .flat_map(|(s, set)| (0..set.len()).map(move |i| (s, i)))
            .collect();
        if items.is_empty() {
            return Err(LpipsError::Dataset {
                path: data
                    .first()
                    .map(|s| s.root.clone())
                    .unwrap_or_else(|| ".".into()),
                reason: "no triplets to train on".into(),
            });
        }
        let order = Vec::<i64>::try_from(Tensor::f_randperm(
            items.len() as i64,
            (Kind::Int64, Device::Cpu),
        )?)?;
        // A permutation of 0..n: every index is in range.
        let order: Vec<(usize, usize)> = order
            .into_iter()
            .map(|i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i).copied())
                    .ok_or_else(|| {
                        tch::TchError::Shape(format!(
                            "randperm gave {i}, outside 0..{}",
                            items.len()
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        let batch = self.config.batch_size;
        let loading = Loading::for_device(Some(self.model.device()));
        let load = |start: usize| -> Result<(Tensor, Tensor)> {
            let items = &order[start..(start + batch).min(order.len())];
            let triplets = loading.map(0..items.len(), |k| {
                let (s, i) = items[k];
                let set = &data[s];
                Ok((
                    [
                        load_patch(&set.refs[i], LOAD_SIZE)?,
                        load_patch(&set.p0[i], LOAD_SIZE)?,
                        load_patch(&set.p1[i], LOAD_SIZE)?,
                    ],
                    read_judgement(&set.judges[i])? as f32,
                ))
            })?;
            // References first, then the p0s, then the p1s.
            let all: Vec<_> = (0..3)
                .flat_map(|j| triplets.iter().map(move |(t, _)| &t[j]))
                .collect();
            let judges: Vec<f32> = triplets.iter().map(|(_, j)| *j).collect();
            let x = stack(&all, &data[order[start].0].root)?;
            Ok((x, Tensor::f_from_slice(&judges)?))
        };
        let (mut loss_sum, mut acc_sum, mut steps, mut seen) = (0.0, 0.0, 0usize, 0usize);
        self.model
            .set_train_dropout((self.config.dropout > 0.0).then_some(self.config.dropout));
        let base_lr = self.config.lr;
        let result = loading.run(order.len(), batch, load, |(x, judge)| {
            let (loss, acc) =
                self.step(&x, &judge, lr)?
                    .map_err(|what| LpipsError::TrainingDiverged {
                        epoch,
                        what,
                        lr: base_lr,
                    })?;
            loss_sum += loss;
            acc_sum += acc;
            steps += 1;
            seen += judge.size1()? as usize;
            progress(StepProgress {
                done: seen,
                loss: loss_sum / steps as f64,
            });
            Ok(())
        });
        self.model.set_train_dropout(None);
        result?;
        self.epochs_done = epoch;
        Ok(EpochStats {
            epoch,
            lr,
            loss: loss_sum / steps as f64,
            accuracy: acc_sum / seen as f64,
            triplets: seen,
        })
    }

    /// One optimisation step on a batch (`3N x 3 x H x W`: references, p0s, p1s);
    /// returns the loss and the summed agreement, or what shows that the run diverged
    /// (a loss or a trained weight that is NaN or infinite).
    fn step(
        &mut self,
        x: &Tensor,
        judge: &Tensor,
        lr: f64,
    ) -> Result<std::result::Result<(f64, f64), String>> {
        let device = self.model.device();
        let x = x.f_to_device(device)?;
        let judge = judge.f_to_device(device)?;
        let n = judge.size1()?;
        let features = if self.config.mode.trains_trunk() {
            self.model.features_unchecked(&x)?
        } else {
            tch::no_grad(|| self.model.features_unchecked(&x))?
        };
        let (fr, f0, f1) = (
            features.narrow(0, n)?,
            features.narrow(n, n)?,
            features.narrow(2 * n, n)?,
        );
        let d0 = self.model.compare_features(&fr, &f0, false)?;
        let d1 = self.model.compare_features(&fr, &f1, false)?;
        let target = judge.f_view([n, 1, 1, 1])?;
        let predicted = self.rank.forward(&d0, &d1)?;
        // Weights blown up by too high a rate give NaN predictions, which libtorch's
        // binary cross-entropy refuses with an error of its own: the loss would be NaN.
        if !all_finite(&predicted)? {
            return Ok(Err("loss is NaN".to_string()));
        }
        let loss = predicted.f_binary_cross_entropy(&target, None::<Tensor>, Reduction::Mean)?;
        let accuracy = tch::no_grad(|| -> Result<f64> {
            let j = judge.f_to_kind(Kind::Double)?;
            let p1_closer = d1.f_lt_tensor(&d0)?.f_view([n])?.f_to_kind(Kind::Double)?;
            // p1_closer * j + (1 - p1_closer) * (1 - j), in the same operations as before.
            let agree = p1_closer.f_mul(&j)?.f_add(
                &p1_closer
                    .f_neg()?
                    .f_add_scalar(1.0)?
                    .f_mul(&j.f_neg()?.f_add_scalar(1.0)?)?,
            )?;
            Ok(agree.f_sum(Kind::Double)?.f_double_value(&[])?)
        })?;
        loss.f_backward()?;
        let loss = loss.f_double_value(&[])?;
        if !loss.is_finite() {
            return Ok(Err(format!("loss is {loss}")));
        }
        let params = self.params()?;
        self.adam.update(&params, lr, self.config.beta1)?;
        tch::no_grad(|| -> Result<()> {
            for h in heads_of(&self.model)? {
                let _ = h.shallow_clone().f_clamp_min_(0.0)?;
            }
            Ok(())
        })?;
        for (name, p) in &params {
            if !all_finite(p)? {
                return Ok(Err(format!(
                    "weight `{name}` is NaN or infinite after a step"
                )));
            }
        }
        Ok(Ok((loss, accuracy)))
    }

    fn params(&self) -> Result<Vec<(String, Tensor)>> {
        trained_params(&self.model, &self.rank, self.config.mode)
    }

    /// Writes a checkpoint (safetensors): heads as `lin{k}.model.1.weight` (so the file
    /// loads with `--lin PATH` / [`crate::LpipsBuilder::heads_file`]), the trunk under
    /// torchvision's names when it was trained, the ranking network and the optimiser's
    /// state; written to a temporary file, then renamed into place.
    pub fn save(&self, path: &Path) -> Result<()> {
        let params = self.params()?;
        let mut tensors: Vec<(String, Tensor)> = params
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.f_detach()?)))
            .collect::<Result<_>>()?;
        for ((name, _), (m, v)) in params
            .iter()
            .zip(self.adam.exp_avg.iter().zip(&self.adam.exp_avg_sq))
        {
            tensors.push((format!("adam.exp_avg.{name}"), m.shallow_clone()));
            tensors.push((format!("adam.exp_avg_sq.{name}"), v.shallow_clone()));
        }
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "config".to_string(),
            serde_json::to_string(&self.config).map_err(|e| LpipsError::TrainCheckpoint {
                path: path.to_path_buf(),
                reason: format!("cannot write the recipe ({e})"),
            })?,
        );
        meta.insert("epoch".to_string(), self.epochs_done.to_string());
        meta.insert("step".to_string(), self.adam.step.to_string());
        meta.insert("version".to_string(), "0.1".to_string());
        write_safetensors(path, &tensors, meta)
    }
}

/// Whether every value of `t` is finite.
fn all_finite(t: &Tensor) -> Result<bool> {
    Ok(tch::no_grad(|| t.f_isfinite()?.f_all())?.f_int64_value(&[])? != 0)
}

/// Every trained tensor by name: heads, ranking network, and the trunk when trained.
fn trained_params(model: &Lpips, rank: &RankNet, mode: TrainMode) -> Result<Vec<(String, Tensor)>> {
    let mut out: Vec<(String, Tensor)> = heads_of(model)?
        .iter()
        .enumerate()
        .map(|(k, h)| (format!("lin{k}.model.1.weight"), h.shallow_clone()))
        .collect();
    out.extend(
        rank.params
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone())),
    );
    if mode.trains_trunk() {
        out.extend(model.trunk_tensors());
    }
    Ok(out)
}

/// The heads being trained: a training model is built with learned heads, so they are
/// there; an error rather than a panic all the same.
fn heads_of(model: &Lpips) -> Result<&[Tensor]> {
    model
        .heads()
        .ok_or_else(|| LpipsError::Internal("the model in training has no linear heads".into()))
}

//! `lpips train`: linear heads (and optionally the trunk) trained on BAPPS 2AFC data.

use std::path::PathBuf;

use clap::Args;
use lpips::Net;
use lpips::bapps::{self, Metric, TrainConfig, TrainMode, Trainer, TwoAfcSet};
use lpips::weights::TrunkWeights;

use crate::args::{MAX_BATCH, NetParser, count_in};
use crate::error::{CliError, Context};
use crate::terminal::outln;

#[derive(Args)]
pub struct TrainArgs {
    /// 2AFC training subsets (`2afc/train/cnn`) or folders of subsets (`2afc/train`).
    #[arg(required = true)]
    data: Vec<PathBuf>,
    /// Folder for the checkpoints: `latest.safetensors` and `epoch_N.safetensors`.
    #[arg(long)]
    out: PathBuf,
    /// Trunk network [default: alex].
    #[arg(long, value_parser = NetParser)]
    net: Option<Net>,
    /// Train the trunk too, starting from its ImageNet weights (the paper's "tune").
    #[arg(long, conflicts_with = "scratch")]
    tune: bool,
    /// Train the trunk too, starting from random weights (the paper's "scratch").
    #[arg(long)]
    scratch: bool,
    /// Trunk weights (lin and tune): .pth or .safetensors with torchvision's names;
    /// default: the torch hub cache, else a verified download.
    #[arg(long)]
    trunk: Option<PathBuf>,
    /// Epochs at the base learning rate [default: 5].
    #[arg(long)]
    epochs: Option<usize>,
    /// Further epochs with the rate decaying linearly to zero [default: 5].
    #[arg(long)]
    decay_epochs: Option<usize>,
    /// Triplets per step, 1 to 4096 [default: 50].
    #[arg(long, value_parser = count_in(MAX_BATCH))]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 0.0001].
    #[arg(long)]
    lr: Option<f64>,
    /// Adam's beta1 [default: 0.5].
    #[arg(long)]
    beta1: Option<f64>,
    /// Seed for initialisation, shuffling and dropout [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Continue from a checkpoint of an earlier run (its recipe is kept).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// 2AFC subsets to score after each epoch (e.g. `2afc/val`).
    #[arg(long, num_args = 1..)]
    val: Vec<PathBuf>,
    /// Only the first N (at least 1) triplets of each subset (training and validation),
    /// for a quick try.
    #[arg(long, value_parser = count_in(u64::MAX))]
    limit: Option<usize>,
    /// cpu, cuda, cuda:N, mps or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: TrainArgs) -> Result<(), CliError> {
    // The checkpoint folder is checked first: a bad path fails now, not after an epoch.
    crate::outputs::check_dir("--out", &args.out)?;
    if let Some(resume) = &args.resume {
        lpips::files::open_regular(resume)?;
    }
    let data = find_sets(&args.data, args.limit)?;
    let val = find_sets(&args.val, args.limit)?;
    refuse_overwriting_inputs(&args, &data, &val)?;
    let triplets: usize = data.iter().map(|s| s.len()).sum();
    if triplets == 0 {
        return Err(CliError::Usage(
            "no training triplets selected: nothing to train".to_string(),
        ));
    }
    let mut trainer = trainer(&args)?;
    let total = trainer.config().total_epochs();
    if trainer.finished() {
        eprintln!("all {total} epochs are already done; nothing to train");
    }
    while !trainer.finished() {
        epoch(&mut trainer, &args, &data, &val)?;
    }
    eprintln!(
        "heads: {} (use with --lin {0}{})",
        args.out.join("latest.safetensors").display(),
        if trainer.config().mode == TrainMode::Lin {
            ""
        } else {
            "; the file holds the trained trunk too"
        }
    );
    Ok(())
}

/// The 2AFC subsets under `dirs`, each cut to `limit` triplets.
fn find_sets(dirs: &[PathBuf], limit: Option<usize>) -> Result<Vec<TwoAfcSet>, CliError> {
    let mut sets = Vec::new();
    for dir in dirs {
        sets.extend(bapps::find_2afc_sets(dir)?);
    }
    if let Some(limit) = limit {
        sets.iter_mut().for_each(|s| s.truncate(limit));
    }
    Ok(sets)
}

/// The trainer: a new run with the recipe of the command line, or the `--resume`d one
/// (whose recipe the command line must agree with).
fn trainer(args: &TrainArgs) -> Result<Trainer, CliError> {
    let device = lpips::runtime::parse_device(&args.device)?;
    if args.trunk.is_none() && args.resume.is_none() && recipe(args).mode != TrainMode::Scratch {
        // The ImageNet trunk, fetched here (when not cached) with the download bar and its
        // Ctrl-C guard; the trainer then finds it in the cache. A failure is left for the
        // trainer to report with its full advice.
        let net = recipe(args).net;
        if lpips::weights::find_cached(net).is_err() && !lpips::weights::offline() {
            let _ = lpips::weights::fetch(net, &mut crate::terminal::download_bar());
        }
    }
    let trunk = args
        .trunk
        .clone()
        .map_or(TrunkWeights::Auto, TrunkWeights::File);
    Ok(match &args.resume {
        Some(path) => {
            let trainer = Trainer::resume(path, trunk, device)?;
            check_same_recipe(args, trainer.config())?;
            trainer
        }
        None => Trainer::new(recipe(args), trunk, device)?,
    })
}

/// Trains one epoch, saves its checkpoints, scores the validation subsets, and prints
/// the epoch's line.
fn epoch(
    trainer: &mut Trainer,
    args: &TrainArgs,
    data: &[TwoAfcSet],
    val: &[TwoAfcSet],
) -> Result<(), CliError> {
    let epoch = trainer.epochs_done() + 1;
    let total = trainer.config().total_epochs();
    let n: usize = data.iter().map(|s| s.len()).sum();
    let bar = crate::terminal::progress_bar(
        n as u64,
        args.quiet,
        "{prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}",
    );
    bar.set_prefix(format!("epoch {epoch}/{total}"));
    let stats = trainer.train_epoch(data, &mut |p| {
        bar.set_position(p.done as u64);
        bar.set_message(format!("loss {:.4}", p.loss));
    })?;
    bar.finish_and_clear();
    let latest = args.out.join("latest.safetensors");
    trainer.save(&latest)?;
    trainer.save(&args.out.join(format!("epoch_{epoch}.safetensors")))?;
    let mut line = format!(
        "epoch {epoch}/{total}  lr {:.3e}  loss {:.4}  agreement {:.2}%",
        stats.lr,
        stats.loss,
        100.0 * stats.accuracy
    );
    if !val.is_empty() {
        let mut scores = Vec::new();
        for set in val {
            let r = bapps::score_2afc(&Metric::Lpips(trainer.model()), set, 50, &mut |_| {})?;
            scores.push(r.score);
        }
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        line.push_str(&format!("  val 2AFC {:.2}%", 100.0 * mean));
    }
    line.push_str(&format!("  saved {}", latest.display()));
    outln!("{line}");
    Ok(())
}

fn recipe(args: &TrainArgs) -> TrainConfig {
    let d = TrainConfig::default();
    TrainConfig {
        net: args.net.unwrap_or(d.net),
        mode: if args.scratch {
            TrainMode::Scratch
        } else if args.tune {
            TrainMode::Tune
        } else {
            TrainMode::Lin
        },
        epochs: args.epochs.unwrap_or(d.epochs),
        decay_epochs: args.decay_epochs.unwrap_or(d.decay_epochs),
        batch_size: args.batch_size.unwrap_or(d.batch_size),
        lr: args.lr.unwrap_or(d.lr),
        beta1: args.beta1.unwrap_or(d.beta1),
        seed: args.seed.unwrap_or(d.seed),
        dropout: d.dropout,
    }
}

/// A resumed run keeps its recipe; a setting given on the command line must agree.
fn check_same_recipe(args: &TrainArgs, c: &TrainConfig) -> Result<(), CliError> {
    let mut conflicts = Vec::new();
    let mut check = |name: &str, given: Option<String>, kept: String| {
        if let Some(given) = given
            && given != kept
        {
            conflicts.push(format!("--{name} {given} (the run has {kept})"));
        }
    };
    check("net", args.net.map(|n| n.to_string()), c.net.to_string());
    check(
        "epochs",
        args.epochs.map(|v| v.to_string()),
        c.epochs.to_string(),
    );
    check(
        "decay-epochs",
        args.decay_epochs.map(|v| v.to_string()),
        c.decay_epochs.to_string(),
    );
    check(
        "batch-size",
        args.batch_size.map(|v| v.to_string()),
        c.batch_size.to_string(),
    );
    check("lr", args.lr.map(|v| v.to_string()), c.lr.to_string());
    check(
        "beta1",
        args.beta1.map(|v| v.to_string()),
        c.beta1.to_string(),
    );
    check("seed", args.seed.map(|v| v.to_string()), c.seed.to_string());
    let mode = |m: TrainMode| format!("{m:?}").to_lowercase();
    if args.tune || args.scratch {
        check("mode", Some(mode(recipe(args).mode)), mode(c.mode));
    }
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "--resume keeps the run's recipe; these settings differ: {}",
            conflicts.join(", ")
        )))
    }
}

/// Refuses a run whose checkpoints (`latest.safetensors`, `epoch_N.safetensors` in
/// `--out`) would replace a file it reads: a BAPPS file or the trunk. The `--resume`
/// checkpoint is the run being continued: `latest.safetensors` advances it on purpose.
fn refuse_overwriting_inputs(
    args: &TrainArgs,
    data: &[TwoAfcSet],
    val: &[TwoAfcSet],
) -> Result<(), CliError> {
    let files = data
        .iter()
        .chain(val)
        .flat_map(|s| [&s.refs, &s.p0, &s.p1, &s.judges])
        .flatten()
        .chain(&args.trunk);
    let inputs = crate::outputs::Inputs::new(files.map(PathBuf::as_path));
    let named = std::fs::read_dir(&args.out)
        .context(format!("--out {}", args.out.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"));
    for path in named.chain([args.out.join("latest.safetensors")]) {
        if let Some(input) = inputs.replaced_by(&path) {
            return Err(CliError::Usage(format!(
                "--out {}: the checkpoint {} would replace the input {}",
                args.out.display(),
                path.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

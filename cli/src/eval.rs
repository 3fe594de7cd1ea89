//! `lpips eval 2afc|jnd`: the paper's BAPPS scores for LPIPS and its L2/SSIM baselines.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use lpips::Lpips;
use lpips::bapps::{self, Colorspace, JndSet, Metric, TwoAfcSet};
use serde::Serialize;

use crate::args::{Format, LinArg, MAX_BATCH, ModelArgs, count_in};
use crate::error::{CliError, Context};
use crate::outputs;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// 2AFC score: how often the metric picks the distortion people judged closer.
    #[command(
        name = "2afc",
        after_help = "Examples:\n  lpips eval 2afc dataset/2afc/val                      # all six subsets\n  lpips eval 2afc dataset/2afc/val/cnn --net vgg\n  lpips eval 2afc dataset/2afc/val --metric ssim --colorspace rgb\n  lpips eval 2afc dataset/2afc/val --lin checkpoints/alex/latest.safetensors --format json"
    )]
    TwoAfc(EvalArgs),
    /// JND score: mean average precision of telling apart pairs people saw as the same.
    #[command(
        after_help = "Examples:\n  lpips eval jnd dataset/jnd/val\n  lpips eval jnd dataset/jnd/val --metric l2 --colorspace lab --limit 200"
    )]
    Jnd(EvalArgs),
}

#[derive(Args)]
pub struct EvalArgs {
    /// Subset folders (`2afc/val/cnn`) or folders of subsets (`2afc/val`).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The distance: lpips, or the paper's l2 / ssim baselines.
    #[arg(long, value_enum, default_value_t = MetricArg::Lpips)]
    metric: MetricArg,
    /// Colour space of the l2 and ssim baselines (the reference's default is lab).
    #[arg(long, value_enum, default_value_t = ColorspaceArg::Lab)]
    colorspace: ColorspaceArg,
    /// The LPIPS model (with `--metric lpips`).
    #[command(flatten)]
    model: ModelArgs,
    /// Items per model batch, 1 to 4096 (lpips; the reference's test script uses 50).
    #[arg(long, default_value_t = 50, value_parser = count_in(MAX_BATCH))]
    batch_size: usize,
    /// Only the first N (at least 1) items of each subset, for a quick look.
    #[arg(long, value_parser = count_in(u64::MAX))]
    limit: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Also list every item's distances and judgement (json only).
    #[arg(long)]
    distances: bool,
    /// Write the output to this file (written whole, then renamed) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum MetricArg {
    Lpips,
    L2,
    Ssim,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorspaceArg {
    Lab,
    Rgb,
}

#[derive(Serialize)]
struct SubsetRow {
    name: String,
    path: PathBuf,
    n: usize,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<serde_json::Value>,
}

pub fn run(command: EvalCommand) -> Result<(), CliError> {
    let (task, mut args) = match command {
        EvalCommand::TwoAfc(args) => (Task::TwoAfc, args),
        EvalCommand::Jnd(args) => (Task::Jnd, args),
    };
    // The output path and every folder are checked before any model is built or any
    // score computed.
    if args.out.as_deref().is_some_and(outputs::is_stdout) {
        args.out = None;
    }
    if let Some(out) = &args.out {
        outputs::check_file("--out", out, outputs::Stdout::Accepted)?;
    }
    let sets = find_sets(task, &args)?;
    if sets.total() == 0 {
        return Err(CliError::Usage(
            "no items selected: nothing to evaluate".to_string(),
        ));
    }
    let model: Option<Lpips> = match args.metric {
        MetricArg::Lpips => Some(args.model.build()?),
        _ => None,
    };
    let metric = match (&model, args.metric) {
        (Some(m), _) => Metric::Lpips(m),
        (None, MetricArg::L2) => Metric::L2(colorspace(&args)),
        (None, _) => Metric::Ssim(colorspace(&args)),
    };
    let scores = score(task, &metric, &sets, &args)?;
    let out = match args.format {
        Format::Text => text(task, &args, model.is_some(), &scores),
        Format::Json => json(task, &args, model.is_some(), &scores)?,
    };
    outputs::emit(args.out.as_deref(), &out)
}

fn colorspace(args: &EvalArgs) -> Colorspace {
    match args.colorspace {
        ColorspaceArg::Lab => Colorspace::Lab,
        ColorspaceArg::Rgb => Colorspace::Rgb,
    }
}

/// The subsets to score (each cut to `--limit`), one task's kind.
struct Sets {
    two_afc: Vec<TwoAfcSet>,
    jnd: Vec<JndSet>,
}

impl Sets {
    /// The items in all subsets.
    fn total(&self) -> usize {
        self.two_afc.iter().map(|s| s.len()).sum::<usize>()
            + self.jnd.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// The subsets under the folders, after checking that `--out` replaces none of their
/// files (nor the model's).
fn find_sets(task: Task, args: &EvalArgs) -> Result<Sets, CliError> {
    let mut sets = Sets {
        two_afc: Vec::new(),
        jnd: Vec::new(),
    };
    for dir in &args.dirs {
        match task {
            Task::TwoAfc => sets.two_afc.extend(bapps::find_2afc_sets(dir)?),
            Task::Jnd => sets.jnd.extend(bapps::find_jnd_sets(dir)?),
        }
    }
    if let Some(limit) = args.limit {
        sets.two_afc.iter_mut().for_each(|s| s.truncate(limit));
        sets.jnd.iter_mut().for_each(|s| s.truncate(limit));
    }
    if let Some(out) = &args.out {
        let files = sets
            .two_afc
            .iter()
            .flat_map(|s| [&s.refs, &s.p0, &s.p1, &s.judges])
            .chain(sets.jnd.iter().flat_map(|s| [&s.p0, &s.p1, &s.sames]))
            .flatten();
        outputs::Inputs::new(files.map(PathBuf::as_path))
            .with_model(&args.model)
            .refuse("--out", out)?;
    }
    Ok(sets)
}

/// Each subset's score, and the pooled score over all items.
struct Scores {
    rows: Vec<SubsetRow>,
    mean: f64,
    pooled: f64,
}

/// Scores every subset with `metric`, drawing one progress bar over them all.
fn score(
    task: Task,
    metric: &Metric<'_>,
    sets: &Sets,
    args: &EvalArgs,
) -> Result<Scores, CliError> {
    let bar = crate::terminal::progress_bar(
        sets.total() as u64,
        args.quiet,
        "{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
    );
    let mut rows = Vec::new();
    let (mut pooled_a, mut pooled_b, mut pooled_j) = (Vec::new(), Vec::new(), Vec::new());
    let mut done_before = 0u64;
    for set in &sets.two_afc {
        bar.set_message(set.name.clone());
        let r = bapps::score_2afc(metric, set, args.batch_size, &mut |done| {
            bar.set_position(done_before + done as u64)
        })?;
        done_before += set.len() as u64;
        rows.push(SubsetRow {
            name: r.name.clone(),
            path: r.root.clone(),
            n: r.judge.len(),
            score: r.score,
            items: args
                .distances
                .then(|| serde_json::json!({"d0": r.d0, "d1": r.d1, "judge": r.judge})),
        });
        pooled_a.extend(r.d0);
        pooled_b.extend(r.d1);
        pooled_j.extend(r.judge);
    }
    for set in &sets.jnd {
        bar.set_message(set.name.clone());
        let r = bapps::score_jnd(metric, set, args.batch_size, &mut |done| {
            bar.set_position(done_before + done as u64)
        })?;
        done_before += set.len() as u64;
        rows.push(SubsetRow {
            name: r.name.clone(),
            path: r.root.clone(),
            n: r.same.len(),
            score: r.map,
            items: args
                .distances
                .then(|| serde_json::json!({"d": r.d, "same": r.same})),
        });
        pooled_a.extend(r.d);
        pooled_j.extend(r.same);
    }
    bar.finish_and_clear();
    let mean = rows.iter().map(|r| r.score).sum::<f64>() / rows.len() as f64;
    let pooled = match task {
        Task::TwoAfc => bapps::two_afc_score(&pooled_a, &pooled_b, &pooled_j),
        Task::Jnd => bapps::jnd_map(&pooled_a, &pooled_j),
    };
    Ok(Scores { rows, mean, pooled })
}

/// The text output: a table of the subsets, with the mean and pooled scores.
fn text(task: Task, args: &EvalArgs, lpips: bool, scores: &Scores) -> Vec<u8> {
    let rows = &scores.rows;
    let (title, unit) = match task {
        Task::TwoAfc => ("2AFC", "score %"),
        Task::Jnd => ("JND", "mAP %"),
    };
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(28);
    let mut out = Vec::new();
    let w = &mut out;
    let _ = writeln!(w, "{title}, {}", describe(args, lpips));
    let _ = writeln!(w, "{:<width$} {:>7} {:>8}", "subset", "n", unit);
    for r in rows {
        let _ = writeln!(w, "{:<width$} {:>7} {:>8.2}", r.name, r.n, 100.0 * r.score);
    }
    let n: usize = rows.iter().map(|r| r.n).sum();
    if rows.len() > 1 {
        let label = "mean of subsets (paper's All)";
        let _ = writeln!(w, "{label:<width$} {n:>7} {:>8.2}", 100.0 * scores.mean);
        let _ = writeln!(
            w,
            "{:<width$} {n:>7} {:>8.2}",
            "pooled",
            100.0 * scores.pooled
        );
    }
    out
}

/// The JSON output.
fn json(task: Task, args: &EvalArgs, lpips: bool, scores: &Scores) -> Result<Vec<u8>, CliError> {
    let json = serde_json::json!({
        "task": match task { Task::TwoAfc => "2afc", Task::Jnd => "jnd" },
        "metric": args.metric,
        "colorspace": (!lpips).then_some(match args.colorspace {
            ColorspaceArg::Lab => "lab",
            ColorspaceArg::Rgb => "rgb",
        }),
        "net": lpips.then_some(args.model.net),
        "variant": lpips.then_some(args.model.variant),
        "lin": lpips.then_some(&args.model.lin),
        "subsets": scores.rows,
        "mean": scores.mean,
        "pooled": scores.pooled,
    });
    let mut out = serde_json::to_vec_pretty(&json).context("cannot write the output")?;
    out.push(b'\n');
    Ok(out)
}

#[derive(Clone, Copy)]
enum Task {
    TwoAfc,
    Jnd,
}

fn describe(args: &EvalArgs, lpips: bool) -> String {
    let cs = match args.colorspace {
        ColorspaceArg::Lab => "Lab",
        ColorspaceArg::Rgb => "RGB",
    };
    match (args.metric, lpips) {
        (_, true) => {
            let lin = match &args.model.lin {
                LinArg::Builtin(l) => serde_json::to_value(l)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                LinArg::File(p) => p.display().to_string(),
            };
            let metric = match args.model.variant {
                lpips::Variant::Lpips => "LPIPS",
                lpips::Variant::ShiftTolerant => "ST-LPIPS",
            };
            format!("{metric} {} (heads {lin})", args.model.net)
        }
        (MetricArg::L2, _) => format!("L2 in {cs}"),
        _ => format!("SSIM in {cs}"),
    }
}

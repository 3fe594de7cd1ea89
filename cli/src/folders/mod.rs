//! `lpips dirs`, `lpips all-pairs` and `lpips ref`: many pairs at once. Images are
//! decoded on worker threads while the trunk runs, in batches of one size; each image's
//! features are computed once, however many pairs it is in.
//!
//! `args` holds the options, `scan` finds the images and makes the pairs, `runner`
//! measures them, `output` writes the rows, `resume` keeps the partial file that an
//! interrupted run leaves and `--resume` continues from.

mod args;
mod output;
mod resume;
mod runner;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub(crate) use args::FolderArgs;
use output::Row;
use resume::Partial;
use scan::Job;
pub use scan::Mode;

use crate::args::MaskNames;
use crate::error::CliError;
use crate::outputs;

/// Finished rows by pair index.
type Rows = BTreeMap<usize, Row>;

/// Runs a folder command: checks, plans the pairs, takes up an interrupted run's rows,
/// measures the rest, writes the output. A signal stops it with
/// [`CliError::Interrupted`]; failed pairs end it with [`CliError::Failed`].
pub fn run(mode: Mode, mut args: FolderArgs) -> Result<(), CliError> {
    check_args(&mode, &mut args)?;
    let scan::Plan {
        images,
        mut jobs,
        unmatched,
    } = scan::plan(&mode, args.recursive, &args.ext)?;
    for (what, names) in &unmatched {
        for name in names {
            eprintln!("lpips: {what}: {}", name.display());
        }
    }
    let total = jobs.len();
    if let Some((i, n)) = args.shard {
        jobs.retain(|j| j.index % n == i - 1);
    }
    refuse_overwriting_inputs(&args, &images, &jobs)?;

    // Finished rows: those of an interrupted run first (kept if they hold a distance),
    // then each new one, also appended to the partial file as it comes.
    let mut rows = Rows::new();
    let mut partial = match &args.out {
        Some(out) => {
            let header = partial_header(&mode, &args, total);
            let (partial, earlier) = Partial::open(out, &header, args.resume, jobs.len())?;
            keep_earlier(&partial, earlier, &images, &jobs, &mut rows)?;
            Some(partial)
        }
        None => None,
    };
    let todo: Vec<Job> = jobs
        .into_iter()
        .filter(|j| !rows.contains_key(&j.index))
        .collect();
    if args.resume && !rows.is_empty() {
        eprintln!(
            "lpips: resuming: {} pairs kept from {}, {} to measure",
            rows.len(),
            partial
                .as_ref()
                .map_or(String::new(), |p| p.path().display().to_string()),
            todo.len()
        );
    }
    if let Some(signal) = measure(&args, &images, &todo, &mut partial, &mut rows)? {
        return Err(CliError::Interrupted {
            signal,
            kept: partial.map(|p| (rows.len(), p.path().to_path_buf())),
        });
    }
    finish(rows, &unmatched, &args, partial)
}

/// Checks the options before any work: the mask folder's naming, where the results go
/// (a bad path fails now, not after the run), the device.
fn check_args(mode: &Mode, args: &mut FolderArgs) -> Result<(), CliError> {
    name_masks(mode, args)?;
    if args.out.as_deref().is_some_and(outputs::is_stdout) {
        if args.resume {
            return Err(CliError::Usage(
                "--resume needs --out FILE: standard output keeps no partial file".into(),
            ));
        }
        args.out = None;
    }
    if let Some(out) = &args.out {
        outputs::check_file("--out", out, outputs::Stdout::Accepted)?;
    }
    if let Some(dir) = &args.spatial_dir {
        outputs::check_dir("--spatial-dir", dir)?;
    }
    args.model.device()?;
    Ok(())
}

/// With a folder of masks: how a pair's mask is named in it (dirs: the first image's
/// path in the first folder; ref: the target's file name). all-pairs takes one file.
fn name_masks(mode: &Mode, args: &mut FolderArgs) -> Result<(), CliError> {
    let Some(mask) = &args.measure.mask else {
        return Ok(());
    };
    if !mask.is_dir() {
        return Ok(());
    }
    let names = match mode {
        Mode::Dirs(d0, _) => MaskNames::RelativeTo(d0.clone()),
        Mode::Ref(..) => MaskNames::TargetName,
        Mode::AllPairs(_) => {
            return Err(CliError::Usage(format!(
                "--mask {}: a folder of masks needs one name per pair (dirs or ref); \
                 all-pairs takes one mask file",
                mask.display()
            )));
        }
    };
    args.measure.name_masks(names);
    Ok(())
}

/// The partial file's first line: what the run is, so that `--resume` continues only
/// the same run.
fn partial_header(mode: &Mode, args: &FolderArgs, total: usize) -> serde_json::Value {
    serde_json::json!({
        "lpips_partial": 1,
        "command": mode.command(),
        "net": args.model.net,
        "variant": args.model.variant,
        "lin": args.model.lin,
        "trunk": args.model.trunk,
        "model": args.model.model,
        "python_env": args.model.python_env,
        "mask": args.measure.mask,
        "pixel_range": args.measure.pixel_range,
        "map_mean": args.measure.map_mean,
        "shard": args.shard.map(|(i, n)| format!("{i}/{n}")),
        "pairs": total,
        "spatial_dir": args.spatial_dir,
        "spatial_format": args.spatial_dir.as_ref().map(|_| args.spatial_format),
    })
}

/// Takes the rows of an interrupted run into `rows`, after checking that each is a pair
/// of this run (the same files at the same index).
fn keep_earlier(
    partial: &Partial,
    earlier: Vec<Row>,
    images: &[PathBuf],
    jobs: &[Job],
    rows: &mut Rows,
) -> Result<(), CliError> {
    let by_index: BTreeMap<usize, &Job> = jobs.iter().map(|j| (j.index, j)).collect();
    let shown = partial.path().display();
    for row in earlier {
        let Some(job) = by_index.get(&row.index) else {
            return Err(CliError::Input(format!(
                "{shown}: pair {} is not in this run: delete the file to start over",
                row.index
            )));
        };
        let want = Row::new(job.index, &images[job.a], &images[job.b]);
        if !row.same_pair(&want) {
            return Err(CliError::Input(format!(
                "{shown}: pair {} is {} vs {} there but {} vs {} now: the folders changed; \
                 delete the file to start over",
                row.index, row.img0, row.img1, want.img0, want.img1
            )));
        }
        keep_row(partial.path(), row, rows);
    }
    Ok(())
}

/// Keeps an earlier row that holds a distance. An error row is measured again (the
/// failure may have been passing); so is a distance no run writes (negative or out of
/// f32's range, from an edited or damaged file), rather than being carried into the
/// results.
fn keep_row(partial: &Path, row: Row, rows: &mut Rows) {
    match (row.error.is_none(), row.distance) {
        (true, Some(d)) if d.is_finite() && d >= 0.0 => {
            rows.insert(row.index, row);
        }
        (true, Some(d)) => {
            eprintln!(
                "lpips: {}: pair {} holds the distance {d}, which no run writes: \
                 measuring it again",
                partial.display(),
                row.index
            );
            rows.remove(&row.index);
        }
        _ => {
            rows.remove(&row.index);
        }
    }
}

/// Measures the pairs of `todo` (building the model only when there are any), each row
/// appended to the partial file as it comes. Returns the signal that stopped the run
/// early, if one did.
fn measure(
    args: &FolderArgs,
    images: &[PathBuf],
    todo: &[Job],
    partial: &mut Option<Partial>,
    rows: &mut Rows,
) -> Result<Option<i32>, CliError> {
    crate::signals::install();
    runner::quiet_caught_panics();
    if todo.is_empty() {
        return Ok(None);
    }
    let model = args.measure.apply(args.model.builder()?).build()?;
    let mut sink = |row: Row| -> Result<(), CliError> {
        if let Some(p) = partial.as_mut() {
            p.append(&row)?;
        }
        rows.insert(row.index, row);
        Ok(())
    };
    runner::measure(&model, images, todo, args, &mut sink)
}

/// Writes the output, removes the partial file, and fails when any pair did.
fn finish(
    rows: Rows,
    unmatched: &BTreeMap<String, Vec<PathBuf>>,
    args: &FolderArgs,
    partial: Option<Partial>,
) -> Result<(), CliError> {
    let rows: Vec<Row> = rows.into_values().collect();
    let buf = output::render(&rows, unmatched, args)?;
    outputs::emit(args.out.as_deref(), &buf)?;
    if let Some(p) = partial {
        p.remove()?;
    }
    let failed = rows
        .iter()
        .filter(|r| r.error.is_some() || r.distance.is_none())
        .count();
    if failed > 0 {
        return Err(CliError::Failed {
            failed,
            total: rows.len(),
            what: "pairs",
        });
    }
    Ok(())
}

/// Refuses a run whose `--out`, partial file or maps would replace one of the images,
/// masks or weight files it reads.
fn refuse_overwriting_inputs(
    args: &FolderArgs,
    images: &[PathBuf],
    jobs: &[Job],
) -> Result<(), CliError> {
    // One mask file for every pair is looked at once, not once per pair.
    let masks: BTreeSet<PathBuf> = jobs
        .iter()
        .filter_map(|j| args.measure.mask_for_pair(&images[j.a], &images[j.b]))
        .collect();
    let inputs = outputs::Inputs::new(images.iter().chain(&masks).map(PathBuf::as_path))
        .with_model(&args.model);
    if let Some(out) = &args.out {
        inputs.refuse("--out", out)?;
        inputs.refuse("--out", &resume::partial_path(out))?;
    }
    if let Some(dir) = &args.spatial_dir {
        for job in jobs {
            let map = args.spatial_format.path(dir, job.index);
            outputs::check_regular("--spatial-dir", &map, outputs::Stdout::NotAccepted)?;
            if let Some(input) = inputs.replaced_by(&map) {
                return Err(CliError::Usage(format!(
                    "--spatial-dir {}: the map {} would replace the input {}",
                    dir.display(),
                    map.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

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

use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) use args::{FolderArgs, MAX_BATCH, count_in};
use output::Row;
pub(crate) use output::emit;
use resume::Partial;

/// One pair to measure; `index` is its place in the whole (unsharded) list.
pub(super) struct Job {
    pub(super) index: usize,
    pub(super) a: usize,
    pub(super) b: usize,
}

pub enum Mode {
    Dirs(PathBuf, PathBuf),
    AllPairs(PathBuf),
    Ref(PathBuf, Vec<PathBuf>),
}

impl Mode {
    fn command(&self) -> &'static str {
        match self {
            Mode::Dirs(..) => "dirs",
            Mode::AllPairs(_) => "all-pairs",
            Mode::Ref(..) => "ref",
        }
    }
}

pub fn run(mode: Mode, mut args: FolderArgs) -> Result<(), String> {
    args.measure.for_mode(&mode)?;
    if args.out.as_deref().is_some_and(crate::outputs::is_stdout) {
        if args.resume {
            return Err("--resume needs --out FILE: standard output keeps no partial file".into());
        }
        args.out = None;
    }
    // Where the results go is checked first: a bad path fails now, not after the run.
    if let Some(out) = &args.out {
        crate::outputs::check_file("--out", out, crate::outputs::Stdout::Accepted)?;
    }
    if let Some(dir) = &args.spatial_dir {
        crate::outputs::check_dir("--spatial-dir", dir)?;
    }
    args.model.device()?;
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
    let mut rows: BTreeMap<usize, Row> = BTreeMap::new();
    let mut partial = match &args.out {
        Some(out) => {
            let header = serde_json::json!({
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
            });
            let (partial, earlier) = Partial::open(out, &header, args.resume, jobs.len())?;
            let by_index: BTreeMap<usize, &Job> = jobs.iter().map(|j| (j.index, j)).collect();
            for row in earlier {
                let Some(job) = by_index.get(&row.index) else {
                    return Err(format!(
                        "{}: pair {} is not in this run: delete the file to start over",
                        partial.path().display(),
                        row.index
                    ));
                };
                let want = Row::new(job.index, &images[job.a], &images[job.b]);
                if !row.same_pair(&want) {
                    return Err(format!(
                        "{}: pair {} is {} vs {} there but {} vs {} now: the folders changed; \
                         delete the file to start over",
                        partial.path().display(),
                        row.index,
                        row.img0,
                        row.img1,
                        want.img0,
                        want.img1
                    ));
                }
                // An error row is measured again (the failure may have been passing); so
                // is a distance no run writes (negative or out of f32's range, from an
                // edited or damaged file), rather than being carried into the results.
                match (row.error.is_none(), row.distance) {
                    (true, Some(d)) if d.is_finite() && d >= 0.0 => {
                        rows.insert(row.index, row);
                    }
                    (true, Some(d)) => {
                        eprintln!(
                            "lpips: {}: pair {} holds the distance {d}, which no run writes: \
                             measuring it again",
                            partial.path().display(),
                            row.index
                        );
                        rows.remove(&row.index);
                    }
                    _ => {
                        rows.remove(&row.index);
                    }
                }
            }
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

    crate::signals::install();
    runner::quiet_caught_panics();
    let stopped = if todo.is_empty() {
        None
    } else {
        let model = args
            .measure
            .apply(args.model.builder()?)
            .build()
            .map_err(crate::cli_error)?;
        let mut sink = |row: Row| -> Result<(), String> {
            if let Some(p) = partial.as_mut() {
                p.append(&row)?;
            }
            rows.insert(row.index, row);
            Ok(())
        };
        runner::measure(&model, &images, &todo, &args, &mut sink)?
    };
    if let Some(signal) = stopped {
        let kept = match &partial {
            Some(p) => format!(
                "; the {} finished pairs are kept in {}: run the same command with --resume \
                 to continue",
                rows.len(),
                p.path().display()
            ),
            None => " (nothing kept: --out keeps finished pairs for --resume)".to_string(),
        };
        eprintln!(
            "lpips: error: stopped by {}{kept}",
            crate::signals::name(signal)
        );
        std::process::exit(128 + signal);
    }

    let rows: Vec<Row> = rows.into_values().collect();
    let buf = output::render(&rows, &unmatched, &args)?;
    emit(args.out.as_deref(), &buf)?;
    if let Some(p) = partial {
        p.remove()?;
    }
    let failed = rows
        .iter()
        .filter(|r| r.error.is_some() || r.distance.is_none())
        .count();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} pairs failed (listed above)",
            rows.len()
        ));
    }
    Ok(())
}

/// Refuses a run whose `--out`, partial file or maps would replace one of the images,
/// masks or weight files it reads.
fn refuse_overwriting_inputs(
    args: &FolderArgs,
    images: &[PathBuf],
    jobs: &[Job],
) -> Result<(), String> {
    // One mask file for every pair is looked at once, not once per pair.
    let masks: std::collections::BTreeSet<PathBuf> = jobs
        .iter()
        .filter_map(|j| args.measure.mask_for_pair(&images[j.a], &images[j.b]))
        .collect();
    let inputs = crate::outputs::Inputs::new(images.iter().chain(&masks).map(PathBuf::as_path))
        .with_model(&args.model);
    if let Some(out) = &args.out {
        inputs.refuse("--out", out)?;
        inputs.refuse("--out", &resume::partial_path(out))?;
    }
    if let Some(dir) = &args.spatial_dir {
        for job in jobs {
            let map = args.spatial_format.path(dir, job.index);
            crate::outputs::check_regular(
                "--spatial-dir",
                &map,
                crate::outputs::Stdout::NotAccepted,
            )?;
            if let Some(input) = inputs.replaced_by(&map) {
                return Err(format!(
                    "--spatial-dir {}: the map {} would replace the input {}",
                    dir.display(),
                    map.display(),
                    input.display()
                ));
            }
        }
    }
    Ok(())
}

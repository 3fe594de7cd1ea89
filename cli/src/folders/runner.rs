//! Measuring the pairs: a thin layer over the library's folder engine
//! ([`lpips::engine`]: images decoded on worker threads while the trunk runs, trunk
//! passes over same-size batches on single-threaded trunk workers for small images,
//! features kept only
//! while a pending pair needs them, a failed batch retried image by image). This side
//! turns its results into rows, writes the spatial maps, prints each failure on stderr
//! and stops the engine when a signal arrives.
//!
//! Nothing one pair does stops the others: an unreadable file, a libtorch error (out of
//! memory on a huge image), a panic in either, or a non-finite distance becomes that
//! pair's error row. At most `--batch-size` decoded images wait for a trunk pass, whatever
//! the mix of sizes: when that many are pending, the fullest size group runs under-filled.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use lpips::engine::{self, PairResult};
use lpips::ndarray::Array2;
use lpips::{Lpips, LpipsError};

use super::args::{FolderArgs, SpatialFormat};
use super::output::Row;
use super::scan::Job;
use crate::error::{CliError, Context};

/// Installs a panic hook that stays quiet for panics the engine turns into error rows.
pub(super) fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !engine::catching_panic() {
                default(info);
            }
        }));
    });
}

/// A libtorch error as one line (its C++ backtrace dropped).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_string()
}

/// Measures `jobs`, handing each finished row to `sink` as soon as it is done (in no
/// particular order). Returns the signal that stopped it early, if one did.
pub(super) fn measure(
    model: &Lpips,
    images: &[PathBuf],
    jobs: &[Job],
    args: &FolderArgs,
    sink: &mut dyn FnMut(Row) -> Result<(), CliError>,
) -> Result<Option<i32>, CliError> {
    let mut job = engine::Job::new();
    for path in images {
        job.push_image(path.as_path())?;
    }
    for j in jobs {
        job.push_pair(j.a, j.b, None)?;
    }
    let bar = crate::terminal::progress_bar(
        jobs.len() as u64,
        args.quiet,
        "{bar:40} {pos}/{len} pairs {per_sec} eta {eta}",
    );
    let cancel = Arc::new(AtomicBool::new(false));
    let options = options(args, &cancel);
    let mut weights = |k: usize| -> lpips::Result<Option<Array2<f32>>> {
        let j = &jobs[k];
        args.measure
            .weights_for_pair(&images[j.a], &images[j.b])
            .map_err(|e| LpipsError::Pair {
                reason: e.to_string(),
                image: None,
            })
    };
    // Images whose failure was reported already: once each, however many pairs use it.
    let mut reported: HashSet<usize> = HashSet::new();
    let mut sink_error: Option<CliError> = None;
    let mut on_result = |k: usize, result: lpips::Result<PairResult>| {
        if sink_error.is_some() {
            return;
        }
        let row = to_row(&jobs[k], images, args, result, &mut reported);
        if let Err(e) = sink(row) {
            sink_error = Some(e);
            cancel.store(true, Ordering::Relaxed);
        }
        bar.inc(1);
    };
    let running = AtomicBool::new(true);
    let finished = std::thread::scope(|s| {
        s.spawn(|| cancel_on_signal(&running, &cancel));
        let finished =
            engine::run_with(model, &job, &options, &mut weights, &mut on_result, |_| {});
        running.store(false, Ordering::Relaxed);
        finished
    });
    finished?;
    if let Some(e) = sink_error {
        return Err(e);
    }
    bar.finish_and_clear();
    Ok(crate::signals::received())
}

/// The engine's settings for a run with `args`, stopped by `cancel`.
fn options(args: &FolderArgs, cancel: &Arc<AtomicBool>) -> engine::Options {
    engine::Options {
        batch_size: args.batch_size.max(1),
        decode_threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        trunk_workers: None,
        spatial: args.spatial_dir.is_some(),
        map_mean: args.measure.map_mean,
        cancel: Some(cancel.clone()),
        order_by_size: true,
        describe: crate::error::describe,
    }
}

/// Signals stop the engine: its cancel flag, set within 10 ms of one, while `running`.
fn cancel_on_signal(running: &AtomicBool, cancel: &AtomicBool) {
    while running.load(Ordering::Relaxed) {
        if crate::signals::received().is_some() {
            cancel.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The row of one pair's result; a failure is also printed on stderr (an image's once).
fn to_row(
    j: &Job,
    images: &[PathBuf],
    args: &FolderArgs,
    result: lpips::Result<PairResult>,
    reported: &mut HashSet<usize>,
) -> Row {
    let (a, b) = (&images[j.a], &images[j.b]);
    let mut row = Row::new(j.index, a, b);
    let pair_failed = |reason: &str| {
        eprintln!("lpips: error: {} vs {}: {reason}", a.display(), b.display());
    };
    match result {
        Ok(r) => {
            let map = match (&args.spatial_dir, &r.map) {
                (Some(dir), Some(map)) => match write_map(dir, args.spatial_format, j.index, map) {
                    Ok(path) => Some(path),
                    Err(reason) => {
                        let (h, w) = map.dim();
                        let reason = format!(
                            "{} (images of {h}x{w}, HxW)",
                            first_line(&reason.to_string())
                        );
                        pair_failed(&reason);
                        row.error = Some(reason);
                        return row;
                    }
                },
                _ => None,
            };
            row.distance = Some(r.distance);
            row.spatial = map;
        }
        Err(LpipsError::Pair {
            reason,
            image: Some(id),
        }) => {
            if reported.insert(id) {
                eprintln!("lpips: error: {reason}");
            }
            row.error = Some(reason);
        }
        Err(e) => {
            let reason = first_line(&crate::error::worded(&e));
            pair_failed(&reason);
            row.error = Some(reason);
        }
    }
    row
}

fn write_map(
    dir: &Path,
    format: SpatialFormat,
    index: usize,
    map: &Array2<f32>,
) -> Result<String, CliError> {
    let path = format.path(dir, index);
    let written = match format {
        SpatialFormat::Png => lpips::maps::write_heatmap(&path, map, None).map(|_| ()),
        SpatialFormat::Npy => lpips::maps::write_npy(&path, map),
    };
    written.context("cannot write the distance map")?;
    Ok(path.display().to_string())
}

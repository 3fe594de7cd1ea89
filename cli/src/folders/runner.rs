//! Measuring the pairs: images decoded on worker threads while the trunk runs, trunk
//! passes over same-size batches, features kept only while a pending pair needs them.
//!
//! Nothing one pair does stops the others: an unreadable file, a libtorch error (out of
//! memory on a huge image), a panic in either, or a non-finite distance becomes that
//! pair's error row. At most `--batch-size` decoded images wait for a trunk pass, whatever
//! the mix of sizes: when that many are pending, the fullest size group runs under-filled.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use lpips::{Features, Lpips, Tensor};

use super::Job;
use super::args::{FolderArgs, SpatialFormat};
use super::output::Row;

thread_local! {
    /// Set while [`catch`] runs: a panic there is reported as an error row, so the
    /// default hook's message on stderr is not wanted.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Installs a panic hook that stays quiet for panics [`catch`] turns into error rows.
pub(super) fn quiet_caught_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into an error message (its payload's first line).
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CATCHING.with(|c| c.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let first = text.lines().next().unwrap_or("").trim();
        format!("internal error (panic): {first}")
    })
}

/// A libtorch error as one line (its C++ backtrace dropped).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).trim().to_string()
}

/// Decodes an image into a `1 x 3 x H x W` tensor, refusing what is not a regular file
/// (a FIFO would block the open) and images below the trunk's minimum.
fn decode(path: &Path, net: lpips::Net, min: i64) -> Result<Tensor, String> {
    lpips::files::open_regular(path).map_err(|e| e.to_string())?;
    let img = lpips::load_image_8bit(path).map_err(crate::cli_error)?;
    let t = catch(|| lpips::image_to_tensor(&img))
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (h, w) = (t.size()[2], t.size()[3]);
    if h < min || w < min {
        return Err(format!(
            "{} is {h}x{w} (HxW); the {net} trunk needs at least {min} px a side",
            path.display()
        ));
    }
    Ok(t)
}

/// Hands the heap's free pages back to the system. The command keeps freed memory for
/// the next batch (`lpips::tune_cpu_allocator`), which pays off when batches repeat one
/// size; with many sizes the blocks no longer fit one another and the heap only grows
/// (measured: 60 pairs of 60 sizes near 530 px, alex, peak RSS 974 MB without this, 639 MB
/// with it, 602 MB for one pair alone). So before a trunk pass on another size than the
/// last one's, the free pages go back.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Measures `jobs`, handing each finished row to `sink` as soon as it is done (in no
/// particular order). Returns the signal that stopped it early, if one did.
pub(super) fn measure(
    model: &Lpips,
    images: &[PathBuf],
    jobs: &[Job],
    args: &FolderArgs,
    sink: &mut dyn FnMut(Row) -> Result<(), String>,
) -> Result<Option<i32>, String> {
    // Which images the jobs need, in order of first use, and which jobs use each.
    let mut uses: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut order = Vec::new();
    for (k, job) in jobs.iter().enumerate() {
        for id in [job.a, job.b] {
            let list = uses.entry(id).or_default();
            if list.is_empty() {
                order.push(id);
            }
            if list.last() != Some(&k) {
                list.push(k);
            }
        }
    }
    let bar = crate::progress_bar(
        jobs.len() as u64,
        args.quiet,
        "{bar:40} {pos}/{len} pairs {per_sec} eta {eta}",
    );
    let (net, min) = (model.net(), model.min_side());
    let batch = args.batch_size.max(1);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicUsize::new(0);
    // Decoded images in flight: bounded with the batch, so memory is too.
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<Tensor, String>)>(batch);

    let run = |pool: Option<&TrunkWorkers>| {
        std::thread::scope(|s| -> Result<Option<i32>, String> {
            let mut state = State {
                model,
                pool,
                jobs,
                images,
                uses,
                feats: HashMap::new(),
                failed: HashMap::new(),
                done: vec![false; jobs.len()],
                remaining: jobs
                    .iter()
                    .map(|j| if j.a == j.b { 1 } else { 2 })
                    .collect(),
                args,
                bar: &bar,
                sink,
                last_size: None,
            };
            for _ in 0..threads {
                let tx = tx.clone();
                let (order, next) = (&order, &next);
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&id) = order.get(i) else { break };
                        if crate::signals::received().is_some() {
                            break;
                        }
                        let path = &images[id];
                        let decoded = catch(|| decode(path, net, min))
                            .map_err(|e| format!("{}: {e}", path.display()))
                            .and_then(|r| r);
                        if tx.send((id, decoded)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // Same-size groups waiting for a trunk pass, by size; `pending` images in all.
            let mut groups: BTreeMap<(i64, i64), Vec<(usize, Tensor)>> = BTreeMap::new();
            let mut pending = 0usize;
            let mut stopped = None;
            for (id, decoded) in rx.iter() {
                match decoded {
                    Err(reason) => state.fail(id, reason)?,
                    Ok(t) => {
                        let key = (t.size()[2], t.size()[3]);
                        let group = groups.entry(key).or_default();
                        group.push((id, t));
                        pending += 1;
                        let run = if group.len() >= batch {
                            Some(key)
                        } else if pending >= batch {
                            // Too many images waiting: the fullest group runs as it is.
                            groups.iter().max_by_key(|(_, g)| g.len()).map(|(k, _)| *k)
                        } else {
                            None
                        };
                        if let Some(full) = run.and_then(|k| groups.remove(&k)) {
                            pending -= full.len();
                            state.run_batch(full)?;
                        }
                    }
                }
                stopped = crate::signals::received();
                if stopped.is_some() {
                    break;
                }
            }
            drop(rx);
            if stopped.is_none() {
                for (_, group) in std::mem::take(&mut groups) {
                    state.run_batch(group)?;
                    stopped = crate::signals::received();
                    if stopped.is_some() {
                        break;
                    }
                }
            }
            Ok(stopped)
        })
    };
    // Single-threaded trunk workers on the CPU with more than one libtorch thread.
    let torch_threads = usize::try_from(lpips::tch::get_num_threads()).unwrap_or(1);
    let stopped = if model.device() == lpips::Device::Cpu && torch_threads > 1 {
        lpips::workers::with_workers(
            model,
            torch_threads,
            |m, share: Vec<Tensor>| catch(|| features(m, &share)).and_then(|r| r),
            |workers| run(Some(workers)),
        )
        .map_err(|e| e.to_string())?
    } else {
        run(None)
    }?;
    bar.finish_and_clear();
    Ok(stopped)
}

/// The features of same-size images, as one trunk pass.
fn features(model: &Lpips, tensors: &[Tensor]) -> Result<Features, String> {
    let stacked = Tensor::f_cat(tensors, 0).map_err(|e| first_line(&e.to_string()))?;
    lpips::tch::no_grad(|| model.features(&stacked)).map_err(|e| first_line(&e.to_string()))
}

/// Trunk passes on the CPU split across single-threaded workers ([`lpips::workers`]),
/// one share of a batch each. With libtorch's own threads, every operation ends at a
/// barrier where the threads that finished first spin, and on a machine busy with
/// other work they spin through the time slices the others need: `lpips dirs` on
/// 1,000 64x64 pairs took 8.1 s instead of 1.5 s with two other processes on the two
/// cores; passive waiting, which also avoids that, cost 22% on an idle machine
/// (docs/benchmarks.md, "A busy machine"). Used for batches with at least two images
/// per worker; smaller batches (a single large image) keep all of libtorch's threads.
type TrunkWorkers = lpips::workers::Workers<Vec<Tensor>, Result<Features, String>>;

/// Features of `tensors` (at least two per worker), one `Features` per share in order;
/// the first failure fails the whole batch. Shares differ by at most one image and hold
/// at least two: libtorch convolves a batch of one with other kernels than larger ones,
/// whose results differ in the last bits, and two identical images of one batch must
/// give a distance of exactly 0.
fn pooled_features(workers: &TrunkWorkers, tensors: &[Tensor]) -> Result<Vec<Features>, String> {
    let (base, extra) = (tensors.len() / workers.len(), tensors.len() % workers.len());
    let mut shares = Vec::with_capacity(workers.len());
    let mut rest = tensors;
    for k in 0..workers.len() {
        let (share, tail) = rest.split_at((base + usize::from(k < extra)).min(rest.len()));
        shares.push(share.iter().map(Tensor::shallow_clone).collect());
        rest = tail;
    }
    workers
        .run(shares)
        .ok_or_else(|| "internal error: a trunk worker stopped".to_string())?
        .into_iter()
        .collect()
}

struct State<'a> {
    model: &'a Lpips,
    /// Single-threaded trunk workers, on the CPU with more than one libtorch thread.
    pool: Option<&'a TrunkWorkers>,
    jobs: &'a [Job],
    images: &'a [PathBuf],
    uses: HashMap<usize, Vec<usize>>,
    feats: HashMap<usize, Features>,
    failed: HashMap<usize, String>,
    done: Vec<bool>,
    remaining: Vec<u8>,
    args: &'a FolderArgs,
    bar: &'a indicatif::ProgressBar,
    sink: &'a mut dyn FnMut(Row) -> Result<(), String>,
    /// The image size of the last trunk pass.
    last_size: Option<(i64, i64)>,
}

impl State<'_> {
    /// One trunk pass over same-size images. If it fails (libtorch out of memory, a
    /// panic), each image is tried alone, and one that still fails fails its pairs.
    fn run_batch(&mut self, batch: Vec<(usize, Tensor)>) -> Result<(), String> {
        let (ids, tensors): (Vec<usize>, Vec<Tensor>) = batch.into_iter().unzip();
        let size = tensors.first().map(|t| (t.size()[2], t.size()[3]));
        if self.last_size.is_some() && self.last_size != size {
            release_free_memory();
        }
        self.last_size = size;
        let model = self.model;
        let result = match self.pool {
            Some(pool) if ids.len() >= 2 * pool.len() => pooled_features(pool, &tensors),
            _ => catch(|| features(model, &tensors))
                .and_then(|r| r)
                .map(|f| vec![f]),
        };
        match result {
            Ok(shares) => {
                let mut ids = ids.into_iter();
                for feats in shares {
                    for k in 0..feats.len() {
                        let one = feats.narrow(k, 1).map_err(|e| e.to_string())?;
                        let Some(id) = ids.next() else {
                            return Err("internal error: more features than images".into());
                        };
                        self.feats.insert(id, one);
                        self.arrived(id)?;
                    }
                }
            }
            Err(_) if ids.len() > 1 => {
                drop(result);
                for (id, t) in ids.into_iter().zip(tensors) {
                    self.run_batch(vec![(id, t)])?;
                }
            }
            Err(reason) => {
                let t = &tensors[0];
                let (h, w) = (t.size()[2], t.size()[3]);
                let reason = format!(
                    "{} ({h}x{w}, HxW): the trunk failed: {reason}",
                    self.images[ids[0]].display()
                );
                drop(tensors);
                self.fail(ids[0], reason)?;
            }
        }
        Ok(())
    }

    fn fail(&mut self, id: usize, reason: String) -> Result<(), String> {
        eprintln!("lpips: error: {reason}");
        self.failed.insert(id, reason);
        self.arrived(id)
    }

    /// An image's features (or failure) are in: finish the jobs that were waiting on it.
    fn arrived(&mut self, id: usize) -> Result<(), String> {
        for k in self.uses.get(&id).cloned().unwrap_or_default() {
            self.remaining[k] = self.remaining[k].saturating_sub(1);
            if self.remaining[k] == 0 && !self.done[k] {
                self.done[k] = true;
                let row = self.finish(k);
                (self.sink)(row)?;
                self.bar.inc(1);
                for side in [self.jobs[k].a, self.jobs[k].b] {
                    self.release(side, k);
                }
            }
        }
        Ok(())
    }

    /// Drops an image's features once no pending job needs them.
    fn release(&mut self, id: usize, job: usize) {
        if let Some(list) = self.uses.get_mut(&id) {
            list.retain(|&k| k != job);
            if list.is_empty() {
                self.feats.remove(&id);
            }
        }
    }

    fn finish(&self, k: usize) -> Row {
        let job = &self.jobs[k];
        let mut row = Row::new(job.index, &self.images[job.a], &self.images[job.b]);
        if let Some(reason) = self.failed.get(&job.a).or_else(|| self.failed.get(&job.b)) {
            row.error = Some(reason.clone());
            return row;
        }
        let (fa, fb) = (&self.feats[&job.a], &self.feats[&job.b]);
        let result = if fa.image_size() != fb.image_size() {
            let ((h0, w0), (h1, w1)) = (fa.image_size(), fb.image_size());
            Err(format!(
                "images differ in size: {h0}x{w0} vs {h1}x{w1} (HxW)"
            ))
        } else {
            let (h, w) = fa.image_size();
            catch(|| self.compare(job, fa, fb))
                .and_then(|r| r)
                .map_err(|reason| format!("{reason} (images of {h}x{w}, HxW)"))
        };
        match result {
            Ok((d, spatial)) => {
                row.distance = Some(d);
                row.spatial = spatial;
            }
            Err(reason) => {
                eprintln!(
                    "lpips: error: {} vs {}: {reason}",
                    self.images[job.a].display(),
                    self.images[job.b].display()
                );
                row.error = Some(reason);
            }
        }
        row
    }

    /// The distance of one pair (finite, else an error) and its map's file.
    fn compare(
        &self,
        job: &Job,
        fa: &Features,
        fb: &Features,
    ) -> Result<(f32, Option<String>), String> {
        let index = job.index;
        let m = &self.args.measure;
        let weights = m.weights_for_pair(&self.images[job.a], &self.images[job.b])?;
        lpips::tch::no_grad(|| {
            let d = m
                .measure(self.model, fa, fb, weights.as_ref())
                .map_err(|e| first_line(&e.to_string()))?;
            if !d.is_finite() {
                return Err(format!(
                    "the distance is {d} (not finite): the model overflowed on this pair"
                ));
            }
            let spatial = match &self.args.spatial_dir {
                Some(dir) => Some(self.write_map(dir, index, fa, fb, weights.as_ref())?),
                None => None,
            };
            Ok((d, spatial))
        })
    }

    fn write_map(
        &self,
        dir: &Path,
        index: usize,
        fa: &Features,
        fb: &Features,
        weights: Option<&lpips::ndarray::Array2<f32>>,
    ) -> Result<String, String> {
        let err = |e: lpips::LpipsError| first_line(&e.to_string());
        let map = self.model.compare_features(fa, fb, true).map_err(err)?;
        let (_, _, h, w) = map.size4().map_err(|e| first_line(&e.to_string()))?;
        let (h, w) = (h as usize, w as usize);
        let flat = map
            .f_flatten(0, -1)
            .map_err(|e| first_line(&e.to_string()))?;
        let values = Vec::<f32>::try_from(flat).map_err(|e| e.to_string())?;
        let mut map = lpips::ndarray::Array2::from_shape_vec((h, w), values)
            .map_err(|e| format!("distance map: {e}"))?;
        if let Some(weights) = weights {
            lpips::mask_map(&mut map, weights).map_err(err)?;
        }
        let path = self.args.spatial_format.path(dir, index);
        let written = match self.args.spatial_format {
            SpatialFormat::Png => lpips::write_heatmap(&path, &map, None).map(|_| ()),
            SpatialFormat::Npy => lpips::write_npy(&path, &map),
        };
        written.map_err(|e| format!("cannot write the distance map: {}", err(e)))?;
        Ok(path.display().to_string())
    }
}

//! The folder engine: many pairs of images measured at once, as `lpips dirs`,
//! `lpips all-pairs` and `lpips ref` do, for benchmark harnesses written in Rust.
//!
//! A [`Job`] holds the images (files or decoded images, [`Source`]) and the pairs to
//! measure; [`Job::dirs`], [`Job::all_pairs`] and [`Job::reference`] make the command
//! line's pairings from folders. [`run`] measures them against a model:
//!
//! - images are decoded on [`Options::decode_threads`] threads while the trunk runs;
//! - same-size images go through the trunk together, in batches of up to
//!   [`Options::batch_size`] (at most that many decoded images wait, whatever the mix of
//!   sizes: when that many are pending, the fullest size group runs under-filled);
//! - on the CPU with more than one libtorch thread, a batch of images up to 128x128 is
//!   split across single-threaded trunk workers ([`crate::workers`]), which keeps a busy
//!   machine fast; larger images go in one pass on libtorch's threads;
//! - each image's features are computed once, however many pairs it is in, and dropped
//!   as soon as no pending pair needs them;
//! - a batch whose trunk pass fails (libtorch out of memory on a huge image) is retried
//!   image by image; an image that still fails fails its pairs only;
//! - masks (pixel weights, [`Pair::mask`]), spatial maps ([`Options::spatial`]) and the
//!   model's memory budget ([`crate::LpipsBuilder::max_memory`]: larger images are
//!   evaluated in tiles with the same result) apply as for a single pair.
//!
//! Results stream to a callback as `(pair index, Result<PairResult>)` in the order they
//! finish. Nothing one pair does ends the job: an unreadable file, a size mismatch, a
//! failed trunk pass, a panic or a non-finite distance is that pair's
//! [`LpipsError::Pair`]. An [`Options::cancel`] flag stops the job promptly (no result
//! is reported after the flag is seen), and [`run`] says how many pairs were reported.
//!
//! ```no_run
//! use lpips::engine::{self, Job, Options, Scan};
//!
//! let model = lpips::Lpips::builder().build()?;
//! let job = Job::dirs("restored".as_ref(), "ground_truth".as_ref(), &Scan::default())?;
//! let mut total = 0.0;
//! let done = engine::run(&model, &job, &Options::default(), |index, result| match result {
//!     Ok(r) => total += f64::from(r.distance),
//!     Err(e) => eprintln!("{}: {e}", job.pair_name(index)),
//! }, |_| {})?;
//! println!("mean {:.4} over {} pairs", total / done.reported as f64, done.reported);
//! # Ok::<(), lpips::LpipsError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use image::DynamicImage;
use ndarray::Array2;

use crate::error::{LpipsError, Result};
use crate::model::{Features, Lpips};
use crate::{Device, Net, Tensor};

/// Where an image comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file, read as the reference reads it (8 bits a channel, `cv2.imread`'s pixels).
    Path(PathBuf),
    /// An image decoded already.
    Image(DynamicImage),
}

impl Source {
    /// The file's path, or `<image N>` for a decoded image (N its index in the job).
    fn name(&self, index: usize) -> String {
        match self {
            Source::Path(p) => p.display().to_string(),
            Source::Image(_) => format!("<image {index}>"),
        }
    }
}

impl From<PathBuf> for Source {
    fn from(p: PathBuf) -> Self {
        Source::Path(p)
    }
}

impl From<&Path> for Source {
    fn from(p: &Path) -> Self {
        Source::Path(p.to_path_buf())
    }
}

impl From<&str> for Source {
    fn from(p: &str) -> Self {
        Source::Path(PathBuf::from(p))
    }
}

impl From<DynamicImage> for Source {
    fn from(img: DynamicImage) -> Self {
        Source::Image(img)
    }
}

/// One pair of a [`Job`]: two of its images, by index, and optional pixel weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The first image (`img0`).
    pub a: usize,
    /// The second image (`img1`).
    pub b: usize,
    /// A mask file ([`crate::maps::load_mask`]: 8- or 16-bit greyscale of the images' size)
    /// whose weights the distance is averaged with.
    pub mask: Option<PathBuf>,
}

/// How folders are listed by [`Job::dirs`], [`Job::all_pairs`] and [`Job::reference`].
#[derive(Clone, Debug)]
pub struct Scan {
    /// Descend into sub-folders (symlinked folders are followed once each).
    pub recursive: bool,
    /// File extensions taken as images, compared without case.
    pub extensions: Vec<String>,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            recursive: false,
            extensions: ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// Images and the pairs to measure among them.
#[derive(Clone, Debug, Default)]
#[must_use = "a job does nothing until `engine::run` runs it"]
pub struct Job {
    images: Vec<Source>,
    pairs: Vec<Pair>,
    unmatched: BTreeMap<String, Vec<PathBuf>>,
    warnings: Vec<String>,
}

/// The most pairs or images one job holds (each costs a few dozen bytes).
pub const MAX_PAIRS: usize = 1 << 30;

fn too_many(what: &str) -> LpipsError {
    pair_err(format!("more than {MAX_PAIRS} {what} in one job"))
}

fn reserve<T>(v: &mut Vec<T>, extra: usize, what: &str) -> Result<()> {
    if v.len().saturating_add(extra) > MAX_PAIRS {
        return Err(too_many(what));
    }
    v.try_reserve(extra).map_err(|_| too_many(what))
}

impl Job {
    /// An empty job.
    pub fn new() -> Self {
        Job::default()
    }

    /// Adds an image and returns its index.
    pub fn push_image(&mut self, source: impl Into<Source>) -> Result<usize> {
        reserve(&mut self.images, 1, "images")?;
        self.images.push(source.into());
        Ok(self.images.len() - 1)
    }

    /// Adds the pair of images `a` and `b` (indices from [`push_image`](Self::push_image))
    /// and returns its index.
    pub fn push_pair(&mut self, a: usize, b: usize, mask: Option<PathBuf>) -> Result<usize> {
        let n = self.images.len();
        if a >= n || b >= n {
            return Err(pair_err(format!(
                "pair ({a}, {b}): the job holds {n} images"
            )));
        }
        reserve(&mut self.pairs, 1, "pairs")?;
        self.pairs.push(Pair { a, b, mask });
        Ok(self.pairs.len() - 1)
    }

    /// A job of the given pairs, each with images of its own.
    pub fn from_pairs<A: Into<Source>, B: Into<Source>>(
        pairs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Job> {
        let mut job = Job::new();
        for (a, b) in pairs {
            let a = job.push_image(a)?;
            let b = job.push_image(b)?;
            job.push_pair(a, b, None)?;
        }
        Ok(job)
    }

    /// `lpips dirs`: each image of `d0` with the image of the same relative path in
    /// `d1`, in byte order of the names. Names on one side only are listed in
    /// [`unmatched`](Self::unmatched). No common name is an error.
    pub fn dirs(d0: &Path, d1: &Path, scan: &Scan) -> Result<Job> {
        let mut job = Job::new();
        let l0 = job.list(d0, scan)?;
        let l1 = job.list(d1, scan)?;
        let right: HashMap<&Path, &PathBuf> = l1.iter().map(|(r, p)| (r.as_path(), p)).collect();
        let left: HashMap<&Path, &PathBuf> = l0.iter().map(|(r, p)| (r.as_path(), p)).collect();
        for (rel, p0) in &l0 {
            match right.get(rel.as_path()) {
                Some(p1) => {
                    let a = job.push_image(p0.clone())?;
                    let b = job.push_image((*p1).clone())?;
                    job.push_pair(a, b, None)?;
                }
                None => job
                    .unmatched
                    .entry(format!("only in {}", d0.display()))
                    .or_default()
                    .push(rel.clone()),
            }
        }
        for (rel, _) in l1.iter().filter(|(r, _)| !left.contains_key(r.as_path())) {
            job.unmatched
                .entry(format!("only in {}", d1.display()))
                .or_default()
                .push(rel.clone());
        }
        if job.pairs.is_empty() {
            return Err(pair_err(format!(
                "no file name is in both {} and {}",
                d0.display(),
                d1.display()
            )));
        }
        Ok(job)
    }

    /// `lpips all-pairs`: every unordered pair of the images in `dir` (i < j, in byte
    /// order of the names). Fewer than two images is an error.
    pub fn all_pairs(dir: &Path, scan: &Scan) -> Result<Job> {
        let mut job = Job::new();
        for (_, p) in job.list(dir, scan)? {
            job.push_image(p)?;
        }
        let n = job.images.len();
        if n < 2 {
            return Err(pair_err(format!(
                "{} holds fewer than two images",
                dir.display()
            )));
        }
        reserve(&mut job.pairs, n.saturating_mul(n - 1) / 2, "pairs")?;
        for a in 0..n {
            for b in a + 1..n {
                job.push_pair(a, b, None)?;
            }
        }
        Ok(job)
    }

    /// `lpips ref`: `reference` with each target, in the order given; a target that is
    /// a folder stands for its images.
    pub fn reference(reference: &Path, targets: &[PathBuf], scan: &Scan) -> Result<Job> {
        let mut job = Job::new();
        let r = job.push_image(reference)?;
        for t in targets {
            if t.is_dir() {
                for (_, p) in job.list(t, scan)? {
                    let b = job.push_image(p)?;
                    job.push_pair(r, b, None)?;
                }
            } else {
                let b = job.push_image(t.as_path())?;
                job.push_pair(r, b, None)?;
            }
        }
        Ok(job)
    }

    /// Weighs every pair with the one mask file `mask`.
    pub fn mask_all(mut self, mask: &Path) -> Self {
        for p in &mut self.pairs {
            p.mask = Some(mask.to_path_buf());
        }
        self
    }

    /// Sets pair `index`'s mask (no-op for an index out of range).
    pub fn set_mask(&mut self, index: usize, mask: Option<PathBuf>) {
        if let Some(p) = self.pairs.get_mut(index) {
            p.mask = mask;
        }
    }

    /// The images.
    pub fn images(&self) -> &[Source] {
        &self.images
    }

    /// The pairs, by index.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// `dirs`: the names found on one side only, by `"only in DIR"`.
    pub fn unmatched(&self) -> &BTreeMap<String, Vec<PathBuf>> {
        &self.unmatched
    }

    /// What listing the folders skipped (a symlinked folder reached twice), one line each.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `"IMG0 vs IMG1"` for pair `index`, for messages.
    pub fn pair_name(&self, index: usize) -> String {
        match self.pairs.get(index) {
            Some(p) => format!("{} vs {}", self.image_name(p.a), self.image_name(p.b)),
            None => format!("<pair {index}>"),
        }
    }

    /// The file's path, or `<image N>` for a decoded image.
    pub fn image_name(&self, id: usize) -> String {
        self.images
            .get(id)
            .map_or_else(|| format!("<image {id}>"), |s| s.name(id))
    }

    fn list(&mut self, dir: &Path, scan: &Scan) -> Result<Vec<(PathBuf, PathBuf)>> {
        list_images(dir, scan, &mut self.warnings)
    }
}

fn list_error(path: &Path, e: impl std::fmt::Display) -> LpipsError {
    pair_err(format!("{}: {e}", path.display()))
}

/// Image files under `dir` with one of the extensions, as (path relative to `dir`,
/// path), sorted by the names' bytes. Symlinked folders are followed once each.
fn list_images(
    dir: &Path,
    scan: &Scan,
    warnings: &mut Vec<String>,
) -> Result<Vec<(PathBuf, PathBuf)>> {
    use std::os::unix::fs::MetadataExt;
    let bytes = |p: &Path| -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        p.as_os_str().as_bytes().to_vec()
    };
    let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
    let root = std::fs::metadata(dir).map_err(|e| list_error(dir, e))?;
    if !root.is_dir() {
        return Err(list_error(dir, "not a folder"));
    }
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    seen.insert((root.dev(), root.ino()), dir.to_path_buf());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| pair_err(format!("cannot read folder {}: {e}", d.display())))?;
        for entry in entries {
            let path = entry.map_err(|e| list_error(&d, e))?.path();
            let meta = std::fs::metadata(&path).ok();
            if let Some(meta) = meta.as_ref().filter(|m| m.is_dir()) {
                if scan.recursive {
                    let id = (meta.dev(), meta.ino());
                    match seen.get(&id) {
                        Some(first) => {
                            let what = if path.starts_with(first) {
                                "a symlink loop"
                            } else {
                                "listed already"
                            };
                            reserve(warnings, 1, "warnings")?;
                            warnings.push(format!(
                                "skipped {}: it is the folder {} ({what})",
                                path.display(),
                                first.display()
                            ));
                        }
                        None => {
                            seen.insert(id, path.clone());
                            stack.push(path);
                        }
                    }
                }
                continue;
            }
            let ext = path
                .extension()
                .and_then(OsStr::to_str)
                .map(str::to_ascii_lowercase);
            if ext.is_some_and(|e| scan.extensions.iter().any(|x| x.eq_ignore_ascii_case(&e))) {
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
                reserve(&mut out, 1, "images")?;
                out.push((rel, path));
            }
        }
    }
    out.sort_by_cached_key(|a| bytes(&a.0));
    if out.is_empty() {
        return Err(pair_err(format!(
            "no images in {} (extensions {}{})",
            dir.display(),
            scan.extensions.join(","),
            if scan.recursive {
                ""
            } else {
                "; recursive listing descends into sub-folders"
            }
        )));
    }
    Ok(out)
}

/// How [`run`] measures a job.
#[derive(Clone, Debug)]
pub struct Options {
    /// Images that go through the trunk together (same size), and the most decoded
    /// images that wait for a pass. Default 32.
    pub batch_size: usize,
    /// Threads decoding images. Default: the machine's cores.
    pub decode_threads: usize,
    /// Single-threaded trunk workers on the CPU, for batches of images up to 128x128;
    /// `None` (default): libtorch's thread count (`tch::get_num_threads`), 0 or 1: no
    /// workers (libtorch's own threads).
    pub trunk_workers: Option<usize>,
    /// Also return each pair's spatial map ([`PairResult::map`], image-sized, masked
    /// pixels set to 0 as [`crate::maps::mask_map`] does).
    pub spatial: bool,
    /// Report the mean of the spatial map instead of the distance (per-frame video
    /// LPIPS); ignored for pairs with a mask.
    pub map_mean: bool,
    /// Stops the job when set: no result is reported after it is seen.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Decode the images in the order of their sizes (read from the files' headers,
    /// on `decode_threads` threads before the run), so that same-size images arrive together
    /// and fill whole batches; otherwise in the pairs' order. Default true. Without it,
    /// folders of many sizes ran in under-filled batches: at most `batch_size` decoded
    /// images wait, so with more sizes than that, most trunk passes held one or two
    /// images (`scripts/bench_engine.py`).
    pub order_by_size: bool,
    /// Words the error of an image file that cannot be read (or a mask file that
    /// cannot be loaded) for the pair's message. Default: its `Display` text.
    pub describe: fn(LpipsError) -> String,
}

fn display(e: LpipsError) -> String {
    e.to_string()
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_size: 32,
            decode_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            trunk_workers: None,
            spatial: false,
            map_mean: false,
            cancel: None,
            order_by_size: true,
            describe: display,
        }
    }
}

/// One pair's result.
#[derive(Clone, Debug)]
pub struct PairResult {
    /// The distance (finite; the map's mean with [`Options::map_mean`]).
    pub distance: f32,
    /// The spatial map, with [`Options::spatial`].
    pub map: Option<Array2<f32>>,
}

/// Where [`run`] is: pairs reported so far, of how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Pairs reported (successes and errors).
    pub done: usize,
    /// Pairs in the job.
    pub total: usize,
}

/// How a [`run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Pairs reported to the callback.
    pub reported: usize,
    /// Whether [`Options::cancel`] stopped it before every pair was reported.
    pub cancelled: bool,
}

thread_local! {
    /// Set while [`catch`] runs on this thread.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside the engine's guard that turns a panic into that
/// pair's error: a panic hook can stay quiet for those (the command line's does).
pub fn catching_panic() -> bool {
    CATCHING.with(std::cell::Cell::get)
}

/// Runs `f`, turning a panic into an error message (its payload's first line).
fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let was = CATCHING.with(|c| c.replace(true));
    let caught = std::panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    match caught {
        Ok(r) => r,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            let first = text.lines().next().unwrap_or("").trim().to_string();
            Err(pair_err(format!("internal error (panic): {first}")))
        }
    }
}

fn pair_err(reason: String) -> LpipsError {
    LpipsError::Pair {
        reason,
        image: None,
    }
}

/// Decodes an image into a `1 x 3 x H x W` tensor, refusing what is not a regular file
/// (a FIFO would block the open) and images below the trunk's minimum.
fn decode(
    source: &Source,
    id: usize,
    net: Net,
    min: i64,
    describe: fn(LpipsError) -> String,
) -> Result<Tensor> {
    let name = source.name(id);
    let t = match source {
        Source::Path(path) => {
            crate::files::open_regular(path).map_err(|e| pair_err(describe(e)))?;
            let img = crate::load_image_8bit(path).map_err(|e| pair_err(describe(e)))?;
            crate::image_to_tensor(&img).map_err(|e| pair_err(format!("{name}: {e}")))?
        }
        Source::Image(img) => {
            crate::image_to_tensor(img).map_err(|e| pair_err(format!("{name}: {e}")))?
        }
    };
    let (h, w) = hw(&t);
    if h < min || w < min {
        return Err(pair_err(format!(
            "{name} is {h}x{w} (HxW); the {net} trunk needs at least {min} px a side"
        )));
    }
    Ok(t)
}

fn hw(t: &Tensor) -> (i64, i64) {
    let s = t.size();
    (
        s.get(2).copied().unwrap_or(0),
        s.get(3).copied().unwrap_or(0),
    )
}

/// Images (height x width) above which a batch goes through the trunk as one pass on
/// libtorch's threads rather than split among the single-threaded workers: there the
/// per-operation overhead the split saves is small, and one pass runs the Winograd
/// convolutions on every core (vgg, 256x256 photographs, batch 8: docs/benchmarks.md).
const POOL_MAX_PIXELS: i64 = 128 * 128;

fn large_pass(size: Option<(i64, i64)>) -> bool {
    size.is_some_and(|(h, w)| h.saturating_mul(w) > POOL_MAX_PIXELS)
}

/// Images of at least this many pixels (256 x 256) trim the heap before their trunk
/// pass when the last pass was of another size ([`release_free_memory`]).
const TRIM_FROM_PIXELS: i64 = 256 * 256;

/// Hands the heap's free pages back to the system before a trunk pass on another size
/// than the last one's: with many sizes the freed blocks no longer fit one another and
/// the heap only grows (measured by the CLI: 60 pairs of 60 sizes near 530 px, alex, peak
/// RSS 974 MB without this, 639 MB with it).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

type TrunkWorkers = crate::workers::Workers<Vec<Tensor>, Result<Features>>;

/// The features of same-size images, as one trunk pass.
fn features(model: &Lpips, tensors: &[Tensor]) -> Result<Features> {
    let stacked = Tensor::f_cat(tensors, 0)?;
    tch::no_grad(|| model.features(&stacked))
}

/// Features of `tensors` split across the workers; shares differ by at most one image
/// and hold at least two (libtorch convolves a batch of one with other kernels, whose
/// results differ in the last bits: two identical images must give exactly 0).
fn pooled_features(workers: &TrunkWorkers, tensors: &[Tensor]) -> Result<Vec<Features>> {
    let n = workers.len().max(1);
    let (base, extra) = (tensors.len() / n, tensors.len() % n);
    let mut shares = Vec::with_capacity(n);
    let mut rest = tensors;
    for k in 0..n {
        let (share, tail) = rest.split_at((base + usize::from(k < extra)).min(rest.len()));
        shares.push(share.iter().map(Tensor::shallow_clone).collect());
        rest = tail;
    }
    workers
        .run(shares)
        .ok_or_else(|| pair_err("internal error: a trunk worker stopped".to_string()))?
        .into_iter()
        .collect()
}

/// The pairs in the order their images are decoded: by the size of their first image
/// (height, width, from the file's header; decoded images as they are; unknown sizes
/// first) with [`Options::order_by_size`], else as they are.
fn pair_order(job: &Job, options: &Options) -> Result<Vec<usize>> {
    let n = job.pairs.len();
    let mut order: Vec<usize> = Vec::new();
    reserve(&mut order, n, "pairs")?;
    order.extend(0..n);
    if !options.order_by_size || n < 2 {
        return Ok(order);
    }
    let size_of = |k: usize| -> Option<(u32, u32)> {
        let p = job.pairs.get(k)?;
        match job.images.get(p.a)? {
            // Only regular files: opening a FIFO would block.
            Source::Path(path) => {
                if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
                    return None;
                }
                image::image_dimensions(path).ok().map(|(w, h)| (h, w))
            }
            Source::Image(img) => Some((img.height(), img.width())),
        }
    };
    let threads = options.decode_threads.clamp(1, 64);
    let chunk = n.div_ceil(threads).max(1);
    let mut sizes: Vec<Option<(u32, u32)>> = Vec::new();
    reserve(&mut sizes, n, "pairs")?;
    std::thread::scope(|s| {
        let handles: Vec<_> = order
            .chunks(chunk)
            .map(|part| {
                std::thread::Builder::new()
                    .name("lpips-headers".to_string())
                    .spawn_scoped(s, move || part.iter().map(|&k| size_of(k)).collect())
            })
            .collect();
        for (part, handle) in order.chunks(chunk).zip(handles) {
            let found: Vec<Option<(u32, u32)>> = match handle {
                Ok(h) => h.join().unwrap_or_default(),
                Err(_) => part.iter().map(|&k| size_of(k)).collect(),
            };
            sizes.extend(found);
        }
    });
    if sizes.len() == n {
        order.sort_by_key(|&k| sizes.get(k).copied().flatten());
    }
    Ok(order)
}

/// Measures the pairs of `job` with `model`, handing each pair's result to `on_result`
/// as soon as it is done (in no particular order) and the count so far to `on_progress`
/// after each. Per-pair failures are results ([`LpipsError::Pair`] and others), never
/// the end of the job; `Err` is returned only when the job cannot run at all (trunk
/// workers that do not start). With [`Options::cancel`] set, it returns promptly with
/// [`Finished::cancelled`].
pub fn run(
    model: &Lpips,
    job: &Job,
    options: &Options,
    on_result: impl FnMut(usize, Result<PairResult>),
    on_progress: impl FnMut(Progress),
) -> Result<Finished> {
    let describe = options.describe;
    let mut weights = |k: usize| -> Result<Option<Array2<f32>>> {
        match job.pairs.get(k).and_then(|p| p.mask.as_ref()) {
            Some(path) => crate::maps::load_mask(path)
                .map(Some)
                .map_err(|e| pair_err(describe(e))),
            None => Ok(None),
        }
    };
    run_with(model, job, options, &mut weights, on_result, on_progress)
}

/// [`run`] with the pixel weights of each pair (by index) from `weights`, called on the
/// calling thread just before the pair is compared (after both images are measured),
/// instead of from [`Pair::mask`]. Its error becomes the pair's.
pub fn run_with(
    model: &Lpips,
    job: &Job,
    options: &Options,
    weights: &mut dyn FnMut(usize) -> Result<Option<Array2<f32>>>,
    mut on_result: impl FnMut(usize, Result<PairResult>),
    mut on_progress: impl FnMut(Progress),
) -> Result<Finished> {
    let pairs = &job.pairs;
    let n = pairs.len();
    // Which images the pairs need, in order of first use, and which pairs use each.
    let mut uses: HashMap<usize, Vec<usize>> = HashMap::new();
    uses.try_reserve(n.min(job.images.len()))
        .map_err(|_| too_many("images"))?;
    let mut order: Vec<usize> = Vec::new();
    for k in pair_order(job, options)? {
        let Some(p) = pairs.get(k) else { continue };
        for id in [p.a, p.b] {
            let list = uses.entry(id).or_default();
            if list.is_empty() {
                reserve(&mut order, 1, "images")?;
                order.push(id);
            }
            if list.last() != Some(&k) {
                reserve(list, 1, "pairs")?;
                list.push(k);
            }
        }
    }
    let mut remaining: Vec<u8> = Vec::new();
    reserve(&mut remaining, n, "pairs")?;
    remaining.extend(pairs.iter().map(|p| if p.a == p.b { 1 } else { 2 }));
    let mut done: Vec<bool> = Vec::new();
    reserve(&mut done, n, "pairs")?;
    done.resize(n, false);

    let cancelled = || {
        options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    };
    let (net, min) = (model.net(), model.min_side());
    let batch = options.batch_size.max(1);
    let threads = options.decode_threads.max(1);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<Tensor>)>(batch);
    let on_result: &mut dyn FnMut(usize, Result<PairResult>) = &mut on_result;
    let on_progress: &mut dyn FnMut(Progress) = &mut on_progress;

    let body = |pool: Option<&TrunkWorkers>| -> Result<Finished> {
        std::thread::scope(|s| {
            let mut state = State {
                model,
                pool,
                job,
                options,
                uses,
                feats: HashMap::new(),
                failed: HashMap::new(),
                done,
                remaining,
                reported: 0,
                on_result,
                on_progress,
                weights,
                last_size: None,
                cancel: options.cancel.clone(),
            };
            let mut started_threads = 0usize;
            for _ in 0..threads {
                let tx = tx.clone();
                let (order, next) = (&order, &next);
                let started = std::thread::Builder::new()
                    .name("lpips-decode".to_string())
                    .spawn_scoped(s, move || {
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&id) = order.get(i) else { break };
                            if cancelled() {
                                break;
                            }
                            let decoded = match job.images.get(id) {
                                Some(src) => catch(|| decode(src, id, net, min, options.describe)),
                                None => Err(pair_err(format!("no image {id}"))),
                            };
                            if tx.send((id, decoded)).is_err() {
                                break;
                            }
                        }
                    });
                match started {
                    Ok(_) => started_threads = started_threads.saturating_add(1),
                    // The threads started so far do the decoding.
                    Err(_) if started_threads > 0 => break,
                    Err(e) => {
                        return Err(LpipsError::Workers {
                            threads,
                            reason: format!("cannot start a decode thread: {e}"),
                        });
                    }
                }
            }
            drop(tx);
            let mut groups: BTreeMap<(i64, i64), Vec<(usize, Tensor)>> = BTreeMap::new();
            let mut pending = 0usize;
            for (id, decoded) in rx.iter() {
                if state.stopped() {
                    break;
                }
                match decoded {
                    Err(e) => state.fail(id, e),
                    Ok(t) => {
                        let key = hw(&t);
                        let group = groups.entry(key).or_default();
                        group.push((id, t));
                        pending += 1;
                        let ready = if group.len() >= batch {
                            Some(key)
                        } else if pending >= batch {
                            groups.iter().max_by_key(|(_, g)| g.len()).map(|(k, _)| *k)
                        } else {
                            None
                        };
                        if let Some(full) = ready.and_then(|k| groups.remove(&k)) {
                            pending -= full.len();
                            state.run_batch(full);
                        }
                    }
                }
            }
            drop(rx);
            for (_, group) in std::mem::take(&mut groups) {
                if state.stopped() {
                    break;
                }
                state.run_batch(group);
            }
            Ok(Finished {
                reported: state.reported,
                cancelled: state.stopped() && state.reported < n,
            })
        })
    };
    let workers = match options.trunk_workers {
        Some(w) => w,
        None => usize::try_from(tch::get_num_threads()).unwrap_or(1),
    };
    if model.device() == Device::Cpu && workers > 1 {
        crate::workers::with_workers(
            model,
            workers,
            |m, share: Vec<Tensor>| catch(|| features(m, &share)),
            |pool| body(Some(pool)),
        )?
    } else {
        body(None)
    }
}

struct State<'a> {
    model: &'a Lpips,
    pool: Option<&'a TrunkWorkers>,
    job: &'a Job,
    options: &'a Options,
    uses: HashMap<usize, Vec<usize>>,
    feats: HashMap<usize, Features>,
    failed: HashMap<usize, String>,
    done: Vec<bool>,
    remaining: Vec<u8>,
    reported: usize,
    on_result: &'a mut dyn FnMut(usize, Result<PairResult>),
    on_progress: &'a mut dyn FnMut(Progress),
    weights: &'a mut dyn FnMut(usize) -> Result<Option<Array2<f32>>>,
    last_size: Option<(i64, i64)>,
    cancel: Option<Arc<AtomicBool>>,
}

impl State<'_> {
    fn stopped(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// One trunk pass over same-size images. If it fails, each image is tried alone,
    /// and one that still fails fails its pairs.
    fn run_batch(&mut self, batch: Vec<(usize, Tensor)>) {
        let (ids, tensors): (Vec<usize>, Vec<Tensor>) = batch.into_iter().unzip();
        let size = tensors.first().map(hw);
        // Only before large images: for small ones the heap grows little, and a trim
        // before every pass of another size cost a third of the run (200 pairs of 200
        // sizes from 64 to 160 px: 1.88 s with, 1.33 s without; scripts/bench_engine.py).
        let large = size.is_some_and(|(h, w)| h.saturating_mul(w) >= TRIM_FROM_PIXELS);
        if large && self.last_size.is_some() && self.last_size != size {
            release_free_memory();
        }
        self.last_size = size;
        let model = self.model;
        let result = match self.pool {
            Some(pool) if ids.len() >= 2 * pool.len() && !large_pass(size) => {
                pooled_features(pool, &tensors)
            }
            _ => catch(|| features(model, &tensors)).map(|f| vec![f]),
        };
        match result {
            Ok(shares) => {
                let mut ids = ids.into_iter();
                for feats in shares {
                    for k in 0..feats.len() {
                        let Some(id) = ids.next() else { return };
                        match feats.narrow(k, 1) {
                            Ok(one) => {
                                self.feats.insert(id, one);
                                self.arrived(id);
                            }
                            Err(e) => self.fail(id, e),
                        }
                    }
                }
            }
            Err(_) if ids.len() > 1 => {
                drop(result);
                for (id, t) in ids.into_iter().zip(tensors) {
                    if self.stopped() {
                        return;
                    }
                    self.run_batch(vec![(id, t)]);
                }
            }
            Err(reason) => {
                let (h, w) = tensors.first().map_or((0, 0), hw);
                let id = ids.first().copied().unwrap_or(0);
                let reason = pair_err(format!(
                    "{} ({h}x{w}, HxW): the trunk failed: {reason}",
                    self.job.image_name(id)
                ));
                drop(tensors);
                self.fail(id, reason);
            }
        }
    }

    fn fail(&mut self, id: usize, reason: LpipsError) {
        self.failed.insert(id, reason.to_string());
        self.arrived(id);
    }

    /// An image's features (or failure) are in: finish the pairs waiting on it.
    fn arrived(&mut self, id: usize) {
        let waiting = self.uses.get(&id).cloned().unwrap_or_default();
        for k in waiting {
            if self.stopped() {
                return;
            }
            let Some(left) = self.remaining.get_mut(k) else {
                continue;
            };
            *left = left.saturating_sub(1);
            if *left == 0 && !self.done[k] {
                self.done[k] = true;
                let result = self.finish(k);
                if self.stopped() {
                    return;
                }
                (self.on_result)(k, result);
                self.reported += 1;
                (self.on_progress)(Progress {
                    done: self.reported,
                    total: self.job.pairs.len(),
                });
                let p = &self.job.pairs[k];
                for side in [p.a, p.b] {
                    self.release(side, k);
                }
            }
        }
    }

    /// Drops an image's features once no pending pair needs them.
    fn release(&mut self, id: usize, pair: usize) {
        if let Some(list) = self.uses.get_mut(&id) {
            list.retain(|&k| k != pair);
            if list.is_empty() {
                self.feats.remove(&id);
            }
        }
    }

    fn finish(&mut self, k: usize) -> Result<PairResult> {
        let job = self.job;
        let p = &job.pairs[k];
        for id in [p.a, p.b] {
            if let Some(reason) = self.failed.get(&id) {
                return Err(LpipsError::Pair {
                    reason: reason.clone(),
                    image: Some(id),
                });
            }
        }
        let sizes = |feats: &HashMap<usize, Features>| match (feats.get(&p.a), feats.get(&p.b)) {
            (Some(fa), Some(fb)) => Ok((fa.image_size(), fb.image_size())),
            _ => Err(pair_err("internal error: features missing".to_string())),
        };
        let ((h0, w0), (h1, w1)) = sizes(&self.feats)?;
        if (h0, w0) != (h1, w1) {
            return Err(pair_err(format!(
                "images differ in size: {h0}x{w0} vs {h1}x{w1} (HxW)"
            )));
        }
        let (h, w) = (h0, w0);
        let weights = &mut *self.weights;
        catch(|| weights(k))
            .and_then(|weights| {
                catch(|| match (self.feats.get(&p.a), self.feats.get(&p.b)) {
                    (Some(fa), Some(fb)) => self.compare(fa, fb, weights.as_ref()),
                    _ => Err(pair_err("internal error: features missing".to_string())),
                })
            })
            .map_err(|e| pair_err(format!("{e} (images of {h}x{w}, HxW)")))
    }

    /// The distance of one pair (finite, else an error) and its map.
    fn compare(
        &self,
        fa: &Features,
        fb: &Features,
        weights: Option<&Array2<f32>>,
    ) -> Result<PairResult> {
        let model = self.model;
        tch::no_grad(|| {
            let t = match (weights, self.options.map_mean) {
                (Some(w), _) => model.compare_features_weighted(fa, fb, w)?,
                (None, true) => model
                    .compare_features(fa, fb, true)?
                    .f_mean(crate::Kind::Float)?,
                (None, false) => model.compare_features(fa, fb, false)?,
            };
            let d = t.f_flatten(0, -1)?.f_double_value(&[0])? as f32;
            if !d.is_finite() {
                return Err(pair_err(format!(
                    "the distance is {d} (not finite): the model overflowed on this pair"
                )));
            }
            let map = if self.options.spatial {
                Some(self.map(fa, fb, weights)?)
            } else {
                None
            };
            Ok(PairResult { distance: d, map })
        })
    }

    fn map(
        &self,
        fa: &Features,
        fb: &Features,
        weights: Option<&Array2<f32>>,
    ) -> Result<Array2<f32>> {
        let map = self.model.compare_features(fa, fb, true)?;
        let (_, _, h, w) = map.size4()?;
        let (h, w) = (
            usize::try_from(h).unwrap_or(0),
            usize::try_from(w).unwrap_or(0),
        );
        let values = Vec::<f32>::try_from(map.f_flatten(0, -1)?)?;
        let mut map = Array2::from_shape_vec((h, w), values)
            .map_err(|e| pair_err(format!("distance map: {e}")))?;
        if let Some(weights) = weights {
            crate::maps::mask_map(&mut map, weights)?;
        }
        Ok(map)
    }
}

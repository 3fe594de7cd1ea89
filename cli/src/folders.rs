//! `lpips dirs`, `lpips all-pairs` and `lpips ref`: many pairs at once. Images are
//! decoded on worker threads while the trunk runs, in batches of one size; each image's
//! features are computed once, however many pairs it is in.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use clap::ValueEnum;
use lpips::{Features, Lpips, Tensor};
use serde::Serialize;

const DEFAULT_EXTS: &str =
    "png,jpg,jpeg,bmp,webp,tif,tiff,gif,tga,ppm,pgm,pnm,qoi,exr,hdr,ico,avif";

#[derive(clap::Args)]
pub struct FolderArgs {
    #[command(flatten)]
    model: crate::ModelArgs,
    #[command(flatten)]
    measure: crate::measure::MeasureArgs,
    /// Images per trunk pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Descend into sub-folders.
    #[arg(long, short)]
    recursive: bool,
    /// File extensions to take, comma-separated (case-insensitive).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_EXTS)]
    ext: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    format: ListFormat,
    /// Write the output to this file (atomically) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a distance map per pair into this folder (`pair_NNNNNN.png` or `.npy`).
    #[arg(long)]
    spatial_dir: Option<PathBuf>,
    /// Format of the maps in --spatial-dir.
    #[arg(long, value_enum, default_value_t = SpatialFormat::Png)]
    spatial_format: SpatialFormat,
    /// Only this part of the pairs: I/N (1 <= I <= N) takes every pair whose index is
    /// I - 1 modulo N, so N runs together cover every pair exactly once.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Decoding threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Text,
    Csv,
    Json,
    Jsonl,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SpatialFormat {
    Png,
    Npy,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)));
    match parsed {
        Some((i, n)) if 1 <= i && i <= n => Ok((i, n)),
        _ => Err(format!("`{s}`: expected I/N with 1 <= I <= N, e.g. 2/8")),
    }
}

/// One pair to measure; `index` is its place in the whole (unsharded) list.
struct Job {
    index: usize,
    a: usize,
    b: usize,
}

#[derive(Serialize)]
struct Row {
    index: usize,
    img0: String,
    img1: String,
    distance: Option<f32>,
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spatial: Option<String>,
}

#[derive(Serialize)]
struct Summary {
    count: usize,
    failed: usize,
    mean: Option<f64>,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

fn summarize(rows: &[Row]) -> Summary {
    let mut d: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.distance)
        .map(f64::from)
        .collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let median = match n {
        0 => None,
        _ if n % 2 == 1 => Some(d[n / 2]),
        _ => Some((d[n / 2 - 1] + d[n / 2]) / 2.0),
    };
    Summary {
        count: n,
        failed: rows.len() - n,
        mean: (n > 0).then(|| d.iter().sum::<f64>() / n as f64),
        median,
        min: d.first().copied(),
        max: d.last().copied(),
    }
}

/// Image files under `dir` with one of `exts`, by path relative to `dir`, sorted.
fn list_images(
    dir: &Path,
    recursive: bool,
    exts: &[String],
) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| format!("cannot read folder {}: {e}", d.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if path.is_dir() {
                if recursive {
                    stack.push(path);
                }
                continue;
            }
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if ext.is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(&e))) {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(format!(
            "no images in {} (extensions {}{})",
            dir.display(),
            exts.join(","),
            if recursive {
                ""
            } else {
                "; --recursive descends into sub-folders"
            }
        ));
    }
    Ok(out)
}

pub enum Mode {
    Dirs(PathBuf, PathBuf),
    AllPairs(PathBuf),
    Ref(PathBuf, Vec<PathBuf>),
}

pub fn run(mode: Mode, mut args: FolderArgs) -> Result<(), String> {
    args.measure.for_mode(&mode)?;
    let mut images: Vec<PathBuf> = Vec::new();
    let mut jobs = Vec::new();
    let mut unmatched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    match &mode {
        Mode::Dirs(d0, d1) => {
            let (l0, l1) = (
                list_images(d0, args.recursive, &args.ext)?,
                list_images(d1, args.recursive, &args.ext)?,
            );
            let right: HashMap<&str, &PathBuf> = l1.iter().map(|(r, p)| (r.as_str(), p)).collect();
            let left: HashMap<&str, &PathBuf> = l0.iter().map(|(r, p)| (r.as_str(), p)).collect();
            for (rel, p0) in &l0 {
                match right.get(rel.as_str()) {
                    Some(p1) => {
                        images.push(p0.clone());
                        images.push((*p1).clone());
                        jobs.push(Job {
                            index: jobs.len(),
                            a: images.len() - 2,
                            b: images.len() - 1,
                        });
                    }
                    None => unmatched
                        .entry(format!("only in {}", d0.display()))
                        .or_default()
                        .push(rel.clone()),
                }
            }
            for (rel, _) in l1.iter().filter(|(r, _)| !left.contains_key(r.as_str())) {
                unmatched
                    .entry(format!("only in {}", d1.display()))
                    .or_default()
                    .push(rel.clone());
            }
            if jobs.is_empty() {
                return Err(format!(
                    "no file name is in both {} and {}",
                    d0.display(),
                    d1.display()
                ));
            }
        }
        Mode::AllPairs(dir) => {
            images = list_images(dir, args.recursive, &args.ext)?
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            if images.len() < 2 {
                return Err(format!("{} holds fewer than two images", dir.display()));
            }
            for a in 0..images.len() {
                for b in a + 1..images.len() {
                    jobs.push(Job {
                        index: jobs.len(),
                        a,
                        b,
                    });
                }
            }
        }
        Mode::Ref(reference, targets) => {
            images.push(reference.clone());
            for t in targets {
                if t.is_dir() {
                    images.extend(
                        list_images(t, args.recursive, &args.ext)?
                            .into_iter()
                            .map(|(_, p)| p),
                    );
                } else {
                    images.push(t.clone());
                }
            }
            jobs = (1..images.len())
                .map(|b| Job {
                    index: b - 1,
                    a: 0,
                    b,
                })
                .collect();
        }
    }
    for (what, names) in &unmatched {
        for name in names {
            eprintln!("lpips: {what}: {name}");
        }
    }
    if let Some((i, n)) = args.shard {
        jobs.retain(|j| j.index % n == i - 1);
    }

    let model = (args.measure.apply(args.model.builder()?).build()).map_err(crate::cli_error)?;
    if let Some(dir) = &args.spatial_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let rows = measure(&model, &images, &jobs, &args)?;
    write_output(&rows, &unmatched, &args)?;
    let failed = rows.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        return Err(format!(
            "{failed} of {} pairs failed (listed above)",
            rows.len()
        ));
    }
    Ok(())
}

/// Runs every job: decoding on worker threads, trunk passes in same-size batches,
/// features kept only while a pending pair needs them.
fn measure(
    model: &Lpips,
    images: &[PathBuf],
    jobs: &[Job],
    args: &FolderArgs,
) -> Result<Vec<Row>, String> {
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
    let (net, min) = (model.net(), model.net().min_side());
    let batch = args.batch_size.max(1);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, Result<Tensor, String>)>(2 * batch);

    let mut state = State {
        model,
        jobs,
        images,
        uses,
        feats: HashMap::new(),
        failed: HashMap::new(),
        done: vec![false; jobs.len()],
        rows: BTreeMap::new(),
        remaining: vec![0; jobs.len()],
        args,
        bar: &bar,
    };
    for (k, job) in jobs.iter().enumerate() {
        state.remaining[k] = if job.a == job.b { 1 } else { 2 };
    }
    std::thread::scope(|s| -> Result<(), String> {
        for _ in 0..threads {
            let tx = tx.clone();
            let (order, next) = (&order, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&id) = order.get(i) else { break };
                    let decoded = lpips::load_image(&images[id])
                        .and_then(|img| lpips::image_to_tensor(&img))
                        .map_err(|e| e.to_string());
                    let decoded = decoded.and_then(|t| {
                        let (h, w) = (t.size()[2], t.size()[3]);
                        if h < min || w < min {
                            Err(format!(
                                "{} is {h}x{w} (HxW); the {} trunk needs at least {min} px a side",
                                images[id].display(),
                                net
                            ))
                        } else {
                            Ok(t)
                        }
                    });
                    if tx.send((id, decoded)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Same-size buckets waiting for a trunk pass.
        let mut buckets: HashMap<(i64, i64), Vec<(usize, Tensor)>> = HashMap::new();
        for (id, decoded) in rx {
            match decoded {
                Err(reason) => state.fail(id, reason),
                Ok(t) => {
                    let key = (t.size()[2], t.size()[3]);
                    let bucket = buckets.entry(key).or_default();
                    bucket.push((id, t));
                    if bucket.len() >= batch {
                        let full = std::mem::take(bucket);
                        state.run_batch(full)?;
                    }
                }
            }
        }
        for (_, bucket) in buckets {
            if !bucket.is_empty() {
                state.run_batch(bucket)?;
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok(state.rows.into_values().collect())
}

struct State<'a> {
    model: &'a Lpips,
    jobs: &'a [Job],
    images: &'a [PathBuf],
    uses: HashMap<usize, Vec<usize>>,
    feats: HashMap<usize, Features>,
    failed: HashMap<usize, String>,
    done: Vec<bool>,
    rows: BTreeMap<usize, Row>,
    remaining: Vec<u8>,
    args: &'a FolderArgs,
    bar: &'a indicatif::ProgressBar,
}

impl State<'_> {
    fn run_batch(&mut self, batch: Vec<(usize, Tensor)>) -> Result<(), String> {
        let ids: Vec<usize> = batch.iter().map(|(id, _)| *id).collect();
        let stacked = Tensor::cat(&batch.into_iter().map(|(_, t)| t).collect::<Vec<_>>(), 0);
        let feats =
            lpips::tch::no_grad(|| self.model.features(&stacked)).map_err(|e| e.to_string())?;
        for (k, id) in ids.into_iter().enumerate() {
            self.feats
                .insert(id, feats.narrow(k as i64, 1).map_err(|e| e.to_string())?);
            self.arrived(id);
        }
        Ok(())
    }

    fn fail(&mut self, id: usize, reason: String) {
        eprintln!("lpips: error: {reason}");
        self.failed.insert(id, reason);
        self.arrived(id);
    }

    /// An image's features (or failure) are in: finish the jobs that were waiting on it.
    fn arrived(&mut self, id: usize) {
        for k in self.uses.get(&id).cloned().unwrap_or_default() {
            self.remaining[k] = self.remaining[k].saturating_sub(1);
            if self.remaining[k] == 0 && !self.done[k] {
                self.done[k] = true;
                let row = self.finish(k);
                self.rows.insert(row.index, row);
                self.bar.inc(1);
                for side in [self.jobs[k].a, self.jobs[k].b] {
                    self.release(side, k);
                }
            }
        }
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
        let mut row = Row {
            index: job.index,
            img0: self.images[job.a].display().to_string(),
            img1: self.images[job.b].display().to_string(),
            distance: None,
            error: None,
            spatial: None,
        };
        if let Some(reason) = self.failed.get(&job.a).or_else(|| self.failed.get(&job.b)) {
            row.error = Some(reason.clone());
            return row;
        }
        let (fa, fb) = (&self.feats[&job.a], &self.feats[&job.b]);
        if fa.image_size() != fb.image_size() {
            let ((h0, w0), (h1, w1)) = (fa.image_size(), fb.image_size());
            let reason = format!("images differ in size: {h0}x{w0} vs {h1}x{w1} (HxW)");
            eprintln!("lpips: error: {} vs {}: {reason}", row.img0, row.img1);
            row.error = Some(reason);
            return row;
        }
        let m = &self.args.measure;
        let weights = match m.weights_for_pair(&self.images[job.a], &self.images[job.b]) {
            Ok(w) => w,
            Err(e) => {
                eprintln!("lpips: error: {} vs {}: {e}", row.img0, row.img1);
                row.error = Some(e);
                return row;
            }
        };
        let result = lpips::tch::no_grad(|| -> lpips::Result<(f32, Option<String>)> {
            let d = m.measure(self.model, fa, fb, weights.as_ref())?;
            let spatial = match &self.args.spatial_dir {
                Some(dir) => Some(self.write_map(dir, job.index, fa, fb, weights.as_ref())?),
                None => None,
            };
            Ok((d, spatial))
        });
        match result {
            Ok((d, spatial)) => {
                row.distance = Some(d);
                row.spatial = spatial;
            }
            Err(e) => {
                eprintln!("lpips: error: {} vs {}: {e}", row.img0, row.img1);
                row.error = Some(e.to_string());
            }
        }
        row
    }

    fn write_map(
        &self,
        dir: &Path,
        index: usize,
        fa: &Features,
        fb: &Features,
        weights: Option<&lpips::ndarray::Array2<f32>>,
    ) -> lpips::Result<String> {
        let map = self.model.compare_features(fa, fb, true)?;
        let (h, w) = (map.size()[2] as usize, map.size()[3] as usize);
        let values = Vec::<f32>::try_from(map.flatten(0, -1))?;
        let mut map = lpips::ndarray::Array2::from_shape_vec((h, w), values).expect("H x W values");
        if let Some(weights) = weights {
            lpips::mask_map(&mut map, weights)?;
        }
        let path = match self.args.spatial_format {
            SpatialFormat::Png => dir.join(format!("pair_{index:06}.png")),
            SpatialFormat::Npy => dir.join(format!("pair_{index:06}.npy")),
        };
        match self.args.spatial_format {
            SpatialFormat::Png => lpips::write_heatmap(&path, &map, None).map(|_| ())?,
            SpatialFormat::Npy => lpips::write_npy(&path, &map)?,
        }
        Ok(path.display().to_string())
    }
}

fn write_output(
    rows: &[Row],
    unmatched: &BTreeMap<String, Vec<String>>,
    args: &FolderArgs,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    let summary = summarize(rows);
    let io = |e: std::io::Error| e.to_string();
    match args.format {
        ListFormat::Text => {
            for r in rows.iter().filter(|r| r.distance.is_some()) {
                writeln!(
                    buf,
                    "{:.6}\t{}\t{}",
                    r.distance.unwrap_or(f32::NAN),
                    r.img0,
                    r.img1
                )
                .map_err(io)?;
            }
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.6}"));
            writeln!(
                buf,
                "# count {} failed {} mean {} median {} min {} max {}",
                summary.count,
                summary.failed,
                f(summary.mean),
                f(summary.median),
                f(summary.min),
                f(summary.max)
            )
            .map_err(io)?;
        }
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut buf);
            w.write_record(["index", "img0", "img1", "distance", "error", "spatial"])
                .map_err(|e| e.to_string())?;
            for r in rows {
                w.write_record([
                    r.index.to_string(),
                    r.img0.clone(),
                    r.img1.clone(),
                    r.distance.map(|d| d.to_string()).unwrap_or_default(),
                    r.error.clone().unwrap_or_default(),
                    r.spatial.clone().unwrap_or_default(),
                ])
                .map_err(|e| e.to_string())?;
            }
            w.flush().map_err(io)?;
        }
        ListFormat::Json => {
            let out = serde_json::json!({
                "net": args.model.net,
                "lin": args.model.lin,
                "shard": args.shard.map(|(i, n)| format!("{i}/{n}")),
                "results": rows,
                "summary": summary,
                "unmatched": unmatched,
            });
            serde_json::to_writer_pretty(&mut buf, &out).map_err(|e| e.to_string())?;
            buf.push(b'\n');
        }
        ListFormat::Jsonl => {
            for r in rows {
                serde_json::to_writer(&mut buf, r).map_err(|e| e.to_string())?;
                buf.push(b'\n');
            }
        }
    }
    emit(args.out.as_deref(), &buf)
}

/// Writes a command's output to stdout, or whole to a file (a temporary file renamed
/// into place, so a reader never sees half of it).
pub(crate) fn emit(out: Option<&Path>, buf: &[u8]) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match out {
        None => std::io::stdout().write_all(buf).map_err(io),
        Some(path) => {
            lpips::files::write_atomic(path, |f| f.write_all(buf)).map_err(|e| e.to_string())
        }
    }
}

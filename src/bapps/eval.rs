//! Scoring a distance on BAPPS subsets, as the reference's `score_2afc_dataset` and
//! `score_jnd_dataset` do (how the patches are decoded beside the model: `batches.rs`).

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::{Array3, Axis};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::batches::Loading;
use super::dataset::{JndSet, TwoAfcSet};
use super::{Colorspace, dssim, jnd_map, l2, load_patch, read_judgement, two_afc_score};
use crate::config::InputRange;
use crate::error::{LpipsError, Result};
use crate::input::Ranged;
use crate::model::Lpips;

/// The distance being scored: the paper's LPIPS or one of its baselines.
#[derive(Debug)]
pub enum Metric<'a> {
    /// An LPIPS model (any trunk and heads).
    Lpips(&'a Lpips),
    /// The reference's `L2` (mean squared difference, in RGB on [-1, 1] values or in Lab).
    L2(Colorspace),
    /// The reference's `DSSIM`: `(1 - SSIM) / 2`, in RGB (0..255) or Lab.
    Ssim(Colorspace),
}

// Decoded patches of a batch (per item: the images of a triplet or pair) and judgements.
type Loaded<const K: usize> = (Vec<[Array3<f32>; K]>, Vec<f64>);

/// The patch side the reference's loaders resize to (`load_size`).
pub const LOAD_SIZE: u32 = 64;

/// One subset's 2AFC result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoAfcResult {
    /// The subset's name.
    pub name: String,
    /// Its folder.
    pub root: PathBuf,
    /// The 2AFC score in [0, 1]: how often the metric agrees with people (ties count half).
    pub score: f64,
    /// Distances reference-p0, one per triplet.
    pub d0: Vec<f64>,
    /// Distances reference-p1.
    pub d1: Vec<f64>,
    /// Judgements (fraction preferring p1).
    pub judge: Vec<f64>,
}

/// One subset's JND result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JndResult {
    /// The subset's name.
    pub name: String,
    /// Its folder.
    pub root: PathBuf,
    /// Mean average precision of detecting "same" pairs by small distance, in [0, 1].
    pub map: f64,
    /// Distances p0-p1, one per pair.
    pub d: Vec<f64>,
    /// Judgements (fraction answering "same").
    pub same: Vec<f64>,
}

/// Scores a 2AFC subset; `batch` triplets go through the model at a time (the reference
/// uses 50; the baselines work one at a time either way). `progress` is told how many
/// triplets are done.
pub fn score_2afc(
    metric: &Metric,
    set: &TwoAfcSet,
    batch: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<TwoAfcResult> {
    let images = [set.refs.as_slice(), &set.p0, &set.p1];
    let (d, judge) = distances(metric, &set.root, images, &set.judges, batch, progress)?;
    let [d0, d1] = per_image(d, &set.root)?;
    Ok(TwoAfcResult {
        name: set.name.clone(),
        root: set.root.clone(),
        score: two_afc_score(&d0, &d1, &judge),
        d0,
        d1,
        judge,
    })
}

/// Scores a JND subset (see [`score_2afc`] for `batch` and `progress`).
///
/// The reference's `score_jnd_dataset` collects an LPIPS model's `N x 1 x 1 x 1` output
/// without flattening it, so its sort runs along a length-1 axis and its LPIPS mAP is
/// not meaningful; its 2AFC loop and its baselines (1-D outputs) flatten. Here distances
/// are always flat, which equals the reference for the baselines and for LPIPS with a
/// flattening distance function.
pub fn score_jnd(
    metric: &Metric,
    set: &JndSet,
    batch: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<JndResult> {
    let images = [set.p0.as_slice(), &set.p1];
    let (d, same) = distances(metric, &set.root, images, &set.sames, batch, progress)?;
    let [d] = per_image(d, &set.root)?;
    Ok(JndResult {
        name: set.name.clone(),
        root: set.root.clone(),
        map: jnd_map(&d, &same),
        d,
        same,
    })
}

/// Distances from each item's first image to each of its others (`K - 1` lists), and
/// the judgements. With LPIPS, every image of a batch goes through the trunk once.
fn distances<const K: usize>(
    metric: &Metric,
    root: &Path,
    images: [&[PathBuf]; K],
    judges: &[PathBuf],
    batch: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let mut d = vec![Vec::new(); K - 1];
    let mut judge = Vec::new();
    let n = judges.len();
    // The sets' fields are public: lists of another length would index out of bounds.
    if let Some(list) = images.iter().find(|list| list.len() != n) {
        return Err(dataset_error(
            root,
            format!(
                "{} judgements but a patch list of {}; the lists must pair up",
                n,
                list.len()
            ),
        ));
    }
    let batch = batch.max(1);
    let load_item = |i: usize| -> Result<[Array3<f32>; K]> {
        let mut item = Vec::with_capacity(K);
        for list in images {
            item.push(load_patch(&list[i], LOAD_SIZE)?);
        }
        // `images` has K lists, so `item` has K patches.
        item.try_into()
            .map_err(|_| dataset_error(root, "a patch list is missing".to_string()))
    };
    if let Metric::Lpips(model) = metric {
        let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1);
        if model.device() == Device::Cpu && threads > 1 {
            let compute = |m: &Lpips, range: Range<usize>| -> Result<Vec<Vec<f64>>> {
                let patches = range.map(load_item).collect::<Result<Vec<_>>>()?;
                lpips_distances(m, &patches, root)
            };
            let mut push = |part: Vec<Vec<f64>>, range: Range<usize>| -> Result<()> {
                for (list, values) in d.iter_mut().zip(part) {
                    list.extend(values);
                }
                for p in &judges[range] {
                    judge.push(read_judgement(p)?);
                }
                progress(judge.len());
                Ok(())
            };
            on_cpu_workers(model, threads, n, batch, &compute, &mut push)?;
            return Ok((d, judge));
        }
    }
    let loading = Loading::for_device(match metric {
        Metric::Lpips(model) => Some(model.device()),
        _ => None,
    });
    let load = |start: usize| -> Result<Loaded<K>> {
        let range = start..(start + batch).min(n);
        let patches = loading.map(range.clone(), load_item)?;
        let judges = judges[range]
            .iter()
            .map(|p| read_judgement(p))
            .collect::<Result<_>>()?;
        Ok((patches, judges))
    };
    loading.run(n, batch, load, |(patches, judges)| {
        match metric {
            Metric::Lpips(model) => {
                let _guard = tch::no_grad_guard();
                for (list, values) in d.iter_mut().zip(lpips_distances(model, &patches, root)?) {
                    list.extend(values);
                }
            }
            Metric::L2(cs) | Metric::Ssim(cs) => {
                let f = if matches!(metric, Metric::L2(_)) {
                    l2
                } else {
                    dssim
                };
                for item in &patches {
                    for (j, list) in d.iter_mut().enumerate() {
                        same_size(&item[0], &item[j + 1], root)?;
                        list.push(f64::from(f(item[0].view(), item[j + 1].view(), *cs)));
                    }
                }
            }
        }
        judge.extend(judges);
        progress(judge.len());
        Ok(())
    })?;
    Ok((d, judge))
}

/// A share of a batch's items (decoded, through the trunk, compared) on one worker.
type ShareDistances<'a> = dyn Fn(&Lpips, Range<usize>) -> Result<Vec<Vec<f64>>> + Sync + 'a;

/// LPIPS from each item's first patch to its others (`K - 1` lists); every patch goes
/// through the trunk once, in one batch.
fn lpips_distances<const K: usize>(
    model: &Lpips,
    patches: &[[Array3<f32>; K]],
    root: &Path,
) -> Result<Vec<Vec<f64>>> {
    let k = patches.len() as i64;
    let all: Vec<&Array3<f32>> = (0..K)
        .flat_map(|j| patches.iter().map(move |t| &t[j]))
        .collect();
    let x = stack(&all, root)?;
    let f = model.features(Ranged(&x, InputRange::MinusOneToOne))?;
    let first = f.narrow(0, k)?;
    (1..K as i64)
        .map(|j| values(&model.compare_features(&first, &f.narrow(j * k, k)?, false)?))
        .collect()
}

/// Batches of items on the CPU, each split across `threads` single-threaded workers
/// ([`crate::workers`]) that decode their share and run trunk and comparison on it.
/// With libtorch's own threads and a decoding thread beside them instead, the decoding
/// took a core from the trunk while the other threads waited at a barrier (3,000
/// triplets: 4.4 s against 3.9 s; docs/benchmarks.md). `compute` gives one share's
/// distance lists, `push` takes them in item order.
fn on_cpu_workers(
    model: &Lpips,
    threads: usize,
    n: usize,
    batch: usize,
    compute: &ShareDistances<'_>,
    push: &mut dyn FnMut(Vec<Vec<f64>>, Range<usize>) -> Result<()>,
) -> Result<()> {
    crate::workers::with_workers(model, threads, compute, |workers| {
        for start in (0..n).step_by(batch) {
            let end = (start + batch).min(n);
            let share = (end - start).div_ceil(workers.len());
            let ranges: Vec<Range<usize>> = (start..end)
                .step_by(share)
                .map(|a| a..(a + share).min(end))
                .collect();
            // Only a panic ends a worker early; it is raised again after this.
            let parts = workers
                .run(ranges.clone())
                .ok_or_else(|| tch::TchError::Torch("a scoring worker stopped".to_string()))?;
            for (part, range) in parts.into_iter().zip(ranges) {
                push(part?, range)?;
            }
        }
        Ok(())
    })?
}

/// The `N` distance lists of [`distances`] as an array (`N = K - 1`, so never wrong).
fn per_image<const N: usize>(d: Vec<Vec<f64>>, root: &Path) -> Result<[Vec<f64>; N]> {
    d.try_into()
        .map_err(|_| dataset_error(root, "distance lists missing".to_string()))
}

fn dataset_error(path: &Path, reason: String) -> LpipsError {
    LpipsError::Dataset {
        path: path.to_path_buf(),
        reason,
    }
}

/// Patches of one size as an `N x 3 x H x W` tensor.
pub(crate) fn stack(patches: &[&Array3<f32>], context: &Path) -> Result<Tensor> {
    let views: Vec<_> = patches.iter().map(|p| p.view()).collect();
    let Some(first) = views.first() else {
        return Err(dataset_error(context, "no patches to stack".to_string()));
    };
    let shape = first.shape().to_vec();
    if let Some(other) = views.iter().find(|v| v.shape() != shape.as_slice()) {
        return Err(LpipsError::Dataset {
            path: context.to_path_buf(),
            reason: format!(
                "patches differ in size ({:?} vs {:?}); BAPPS patches share one size",
                &shape[1..],
                &other.shape()[1..]
            ),
        });
    }
    let stacked = ndarray::stack(Axis(0), &views)
        .map_err(|e| dataset_error(context, format!("cannot stack the patches ({e})")))?;
    let dims: Vec<i64> = stacked.shape().iter().map(|&d| d as i64).collect();
    // `stack` returns a new array in standard layout: `as_slice` finds it contiguous.
    let data = stacked.as_standard_layout();
    let data = data
        .as_slice()
        .ok_or_else(|| dataset_error(context, "stacked patches not contiguous".to_string()))?;
    Ok(Tensor::f_from_slice(data)?.f_view(dims.as_slice())?)
}

fn same_size(a: &Array3<f32>, b: &Array3<f32>, context: &Path) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(LpipsError::Dataset {
            path: context.to_path_buf(),
            reason: format!(
                "patches differ in size ({:?} vs {:?})",
                &a.shape()[1..],
                &b.shape()[1..]
            ),
        });
    }
    Ok(())
}

fn values(t: &Tensor) -> Result<Vec<f64>> {
    let v = Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_flatten(0, -1)?)?;
    Ok(v.into_iter().map(f64::from).collect())
}

//! Scoring a distance on BAPPS subsets, as the reference's `score_2afc_dataset` and
//! `score_jnd_dataset` do, with the patches decoded on a second thread while the model
//! runs.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use ndarray::{Array3, Axis};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

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
    let load = |start: usize| -> Result<Loaded<K>> {
        let end = (start + batch).min(n);
        let mut patches = Vec::with_capacity(end - start);
        for i in start..end {
            let mut item = Vec::with_capacity(K);
            for list in images {
                item.push(load_patch(&list[i], LOAD_SIZE)?);
            }
            // `images` has K lists, so `item` has K patches.
            let item: [Array3<f32>; K] = item
                .try_into()
                .map_err(|_| dataset_error(root, "a patch list is missing".to_string()))?;
            patches.push(item);
        }
        let judges = judges[start..end]
            .iter()
            .map(|p| read_judgement(p))
            .collect::<Result<_>>()?;
        Ok((patches, judges))
    };
    prefetched(n, batch, load, |(patches, judges)| {
        match metric {
            Metric::Lpips(model) => {
                let k = patches.len() as i64;
                let all: Vec<&Array3<f32>> = (0..K)
                    .flat_map(|j| patches.iter().map(move |t| &t[j]))
                    .collect();
                let x = stack(&all, root)?;
                let _guard = tch::no_grad_guard();
                let f = model.features(Ranged(&x, InputRange::MinusOneToOne))?;
                let first = f.narrow(0, k)?;
                for (j, list) in d.iter_mut().enumerate() {
                    let other = f.narrow((j as i64 + 1) * k, k)?;
                    list.extend(values(&model.compare_features(&first, &other, false)?)?);
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

/// Runs `consume` on batches `load`ed on another thread, one batch ahead.
pub(crate) fn prefetched<T: Send>(
    n: usize,
    batch: usize,
    load: impl Fn(usize) -> Result<T> + Sync,
    mut consume: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel(1);
        let load = &load;
        s.spawn(move || {
            for start in (0..n).step_by(batch) {
                let item = load(start);
                let failed = item.is_err();
                if tx.send(item).is_err() || failed {
                    break;
                }
            }
        });
        for item in rx {
            consume(item?)?;
        }
        Ok(())
    })
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

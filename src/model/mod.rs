//! The LPIPS model: inputs -> [`ScalingLayer`](scaling) -> trunk ->
//! [`normalize_tensor`](features) -> [`NetLinLayers`](heads) (squared
//! differences, linear heads) -> [pooling](pooling) -> sum over layers.

mod builder;
mod features;
mod fused_heads;
mod heads;
mod mask;
mod pooling;
mod prepare;
mod scaling;
mod tiling;

use ndarray::Array2;
use tch::{Device, Kind, Tensor};

pub use builder::LpipsBuilder;
use prepare::single;

use crate::config::{
    FeedRange, Heads, InputRange, ModelId, Net, Precision, Resize, Variant, Version,
};
use crate::error::{LpipsError, Result};
use crate::input::ImageInput;
use crate::layers::Trunk;
use crate::trunk::TrunkSpec;
pub use features::Features;
use features::normalize_tensor;
use heads::NetLinLayers;
use mask::weight_tensor;
use pooling::{pool_map, weighted_average};
use scaling::ScalingLayer;

// More pixels (N x H x W) than memory could hold: 2^44 f32 values are 64 TiB.
const MAX_PIXELS: i64 = 1 << 44;

/// LPIPS distances of a batch: the total and each tapped layer's contribution.
#[derive(Debug)]
pub struct LayerDistances {
    /// Sum over layers: `N x 1 x 1 x 1`, or `N x 1 x H x W` for a spatial model.
    pub total: Tensor,
    /// One tensor per tap, shaped like `total`.
    pub layers: Vec<Tensor>,
}

impl LayerDistances {
    /// One distance per image, as numbers (a spatial map's mean over its pixels).
    pub fn total_values(&self) -> Result<Vec<f32>> {
        per_image(&self.total)
    }

    /// Each tapped layer's contribution, one number per image (a map's mean); the
    /// layers' values sum to [`total_values`](Self::total_values) up to rounding.
    pub fn layer_values(&self) -> Result<Vec<Vec<f32>>> {
        self.layers.iter().map(per_image).collect()
    }
}

/// One number per image of an `N x 1 x h x w` result: its mean over the map.
fn per_image(t: &Tensor) -> Result<Vec<f32>> {
    let _guard = tch::no_grad_guard();
    to_vec(
        &t.f_detach()?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_mean_dim([1, 2, 3].as_slice(), false, None::<Kind>)?,
    )
}

/// The LPIPS metric with its weights loaded, ready to compare images.
///
/// Weights are frozen: gradients flow to the inputs of [`Lpips::forward`] only, so the
/// model can serve as a training loss.
///
/// `Lpips` is `Send` but not `Sync` (tch tensors are not): to compute from several
/// threads, give each thread its own handle with [`Lpips::share`], which shares the
/// weights without copying them.
#[derive(Debug)]
pub struct Lpips {
    net: Net,
    variant: Variant,
    spec: &'static TrunkSpec,
    version: Version,
    spatial: bool,
    range: InputRange,
    feed: FeedRange,
    /// Bytes a comparison may use, and where that limit comes from.
    memory_budget: Option<(u64, &'static str)>,
    tile: Option<i64>,
    check_range: bool,
    resize: Resize,
    precision: Precision,
    device: Device,
    scaling: Option<ScalingLayer>,
    trunk: Trunk,
    lins: NetLinLayers,
}

impl Lpips {
    /// A builder with the reference's defaults: alex, v0.1, learned heads, scalar output,
    /// inputs in [-1, 1], CPU, trunk from the torch hub cache.
    pub fn builder() -> LpipsBuilder {
        LpipsBuilder::default()
    }

    /// The trunk.
    pub fn net(&self) -> Net {
        self.net
    }

    /// Plain LPIPS or ST-LPIPS.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The smallest height and width this model's trunk accepts, from its layers.
    pub fn min_side(&self) -> i64 {
        self.spec.min_side()
    }

    /// The release.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Whether some convolutions of the trunk run as Winograd's F(4x4, 3x3) where it pays
    /// ([`LpipsBuilder::winograd`]).
    pub fn winograd(&self) -> bool {
        self.trunk.has_winograd()
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Another handle on the same model for another thread; the weights are shared,
    /// not copied.
    pub fn share(&self) -> Lpips {
        Lpips {
            scaling: self.scaling.as_ref().map(ScalingLayer::share),
            trunk: self.trunk.share(),
            lins: self.lins.share(),
            ..*self
        }
    }

    /// Every weight tensor (trunk and heads), as handles on the model's own.
    pub fn weights(&self) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = self
            .trunk
            .tensors()
            .into_iter()
            .map(Tensor::shallow_clone)
            .collect();
        if let Some(heads) = &self.lins.heads {
            out.extend(heads.iter().map(Tensor::shallow_clone));
        }
        out
    }

    /// Distances between two batches `N x 3 x H x W` in the model's input range (one
    /// side may have N = 1: it is compared with each image of the other); keeps
    /// autograd, so it can be used as a loss. Returns `N x 1 x 1 x 1`, or `N x 1 x H x W`
    /// when the model is spatial. A non-finite result is an error.
    pub fn forward(&self, in0: &Tensor, in1: &Tensor) -> Result<Tensor> {
        Ok(self.forward_layers(in0, in1)?.total)
    }

    /// Like [`Lpips::forward`], with each layer's contribution as well.
    pub fn forward_layers(&self, in0: &Tensor, in1: &Tensor) -> Result<LayerDistances> {
        let (a, b) = self.canonical_pair(in0, in1)?;
        let out = self.compute(&a, &b, self.spatial)?;
        finite(&out.total)?;
        Ok(out)
    }

    /// Scalar distances between any two inputs ([`ImageInput`]: images, paths, arrays,
    /// tensors), one per pair (or per image of the larger side when the other holds
    /// one), without autograd.
    pub fn distances(&self, a: impl ImageInput, b: impl ImageInput) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        finite_vec(to_vec(&self.evaluate(&a, &b, false)?)?)
    }

    /// The distance between two images (8-bit images are read as the reference reads
    /// them); each side must hold one image.
    pub fn distance(&self, a: impl ImageInput, b: impl ImageInput) -> Result<f32> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        single(&a, &b)?;
        let d = finite_vec(to_vec(&self.evaluate(&a, &b, false)?)?)?;
        Ok(d[0])
    }

    /// The per-pixel distance map (`H x W`) between two images; its mean over pixels
    /// equals [`Lpips::distance`] up to rounding.
    pub fn distance_map(&self, a: impl ImageInput, b: impl ImageInput) -> Result<Array2<f32>> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        single(&a, &b)?;
        map_array(&self.evaluate(&a, &b, true)?)
    }

    /// The distance between two images with pixel weights (`H x W`, the images' size,
    /// finite and non-negative, not all zero; e.g. from [`load_mask`](crate::maps::load_mask)):
    /// each tap's head map `d_l` is averaged with the weights area-averaged to its grid,
    /// `w_l` (torch's `interpolate(mode="area")`), and the layers summed:
    /// `sum_l sum(w_l * d_l) / sum(w_l)`. Weights of ones give [`Lpips::distance`].
    pub fn distance_weighted(
        &self,
        a: impl ImageInput,
        b: impl ImageInput,
        weights: &Array2<f32>,
    ) -> Result<f32> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        single(&a, &b)?;
        let w = weight_tensor(weights, a.size()[2], a.size()[3], self.device)?;
        let maps = self.head_maps(&a, &b)?;
        let d = finite_vec(to_vec(&weighted_total(&maps, &w)?)?)?;
        Ok(d[0])
    }

    /// Weighted distances ([`Lpips::distance_weighted`]) between two sets of features
    /// (one side may hold a single image), `N x 1 x 1 x 1`; keeps autograd.
    pub fn compare_features_weighted(
        &self,
        a: &Features,
        b: &Features,
        weights: &Array2<f32>,
    ) -> Result<Tensor> {
        self.check_pair(a, b)?;
        let w = weight_tensor(weights, a.height, a.width, self.device)?;
        let maps = match deferred_pair(a, b)? {
            Some((x, y)) => self.head_maps(&x, &y)?,
            None => self.lins.head_maps(a, b)?,
        };
        let total = weighted_total(&maps, &w)?;
        finite(&total)?;
        Ok(total)
    }

    /// Each tap's head map (`N x 1 x h_l x w_l`) for canonical inputs, in one pass or
    /// in tiles as memory requires.
    fn head_maps(&self, a: &Tensor, b: &Tensor) -> Result<Vec<Tensor>> {
        if let Some(core) = self.tile_core(a, b, false)? {
            return self.tiled_head_maps(a, b, core);
        }
        let (ra, rb) = (self.trunk_canonical(a)?, self.trunk_canonical(b)?);
        ra.iter()
            .zip(&rb)
            .enumerate()
            .map(|(k, (fa, fb))| self.raw_head_map(k, fa, fb))
            .collect()
    }

    /// One tap's head map of two raw trunk outputs: in one pass (`fused_heads`) where
    /// the model's CPU kernels are on (see [`LpipsBuilder::winograd`]) and no gradient
    /// is wanted, else `normalize_tensor` and the head as libtorch operations.
    fn raw_head_map(&self, k: usize, fa: &Tensor, fb: &Tensor) -> Result<Tensor> {
        if let Some(map) = self.fused_head_map(k, fa, fb)? {
            return Ok(map);
        }
        self.lins
            .head_map(k, &normalize_tensor(fa)?, &normalize_tensor(fb)?)
    }

    /// [`Lpips::raw_head_map`]'s fused pass, or None where it does not apply.
    fn fused_head_map(&self, k: usize, fa: &Tensor, fb: &Tensor) -> Result<Option<Tensor>> {
        if !self.trunk.has_winograd() || self.lins.train_dropout.is_some() {
            return Ok(None);
        }
        let head = self.lins.heads.as_ref().and_then(|h| h.get(k));
        if self.lins.heads.is_some() && head.is_none() {
            return Ok(None);
        }
        fused_heads::head_map(fa, fb, head)
    }

    /// Distances (`N x 1 x 1 x 1`) or maps (`N x 1 x H x W`) of canonical inputs without
    /// autograd, in one pass or in tiles as memory requires.
    fn evaluate(&self, a: &Tensor, b: &Tensor, spatial: bool) -> Result<Tensor> {
        let Some(core) = self.tile_core(a, b, spatial)? else {
            return Ok(self.compute(a, b, spatial)?.total);
        };
        let (h, w) = (a.size()[2], a.size()[3]);
        let mut total: Option<Tensor> = None;
        for d in self.tiled_head_maps(a, b, core)? {
            let v = pool_map(&d, spatial, h, w)?;
            total = Some(match total {
                Some(t) => t.f_add(&v)?,
                None => v,
            });
        }
        total.ok_or(LpipsError::EmptyBatch)
    }

    /// The core size of tiles for this pair, or None for one pass: forced by
    /// [`LpipsBuilder::tile`], else chosen when one pass would not fit in
    /// [`LpipsBuilder::max_memory`] (default: the memory the machine has available).
    fn tile_core(&self, a: &Tensor, b: &Tensor, spatial: bool) -> Result<Option<i64>> {
        let n = a.size()[0].max(b.size()[0]);
        self.tile_size(n, a.size()[2], a.size()[3], spatial)
    }

    /// The side of the tiles' cores (pixels) that comparing `n` pairs of `h x w` images
    /// would use, or None for one pass: the [`LpipsBuilder::tile`] setting, else what
    /// [`LpipsBuilder::max_memory`] (default: 90% of the memory the machine had
    /// available when the model was built) requires; an error when not even the smallest
    /// tiles would fit.
    pub fn tile_size(&self, n: i64, h: i64, w: i64, spatial: bool) -> Result<Option<i64>> {
        if let Some(core) = self.tile {
            let grid = self.spec.geometry().grid;
            return Ok(Some((core + grid - 1) / grid * grid));
        }
        if n < 1 || h < 1 || w < 1 {
            return Err(LpipsError::InvalidArgument {
                argument: "Lpips::tile_size(n, h, w)",
                value: format!("({n}, {h}, {w})"),
                expected: "at least 1 each",
            });
        }
        // No image this large can exist; the memory estimates would overflow.
        if n.saturating_mul(h).saturating_mul(w) > MAX_PIXELS {
            return Err(LpipsError::MemoryBudget {
                height: h,
                width: w,
                needed: u64::MAX,
                allowed: self.memory_budget.map_or(u64::MAX, |(b, _)| b),
                why: "more pixels than any machine holds",
            });
        }
        let spec = self.spec;
        let fixed = tiling::fixed_bytes(spec, n, h, w, spatial);
        let one_pass = tiling::pass_bytes(spec, n, h, w)
            .unwrap_or(u64::MAX)
            .saturating_add(fixed);
        let Some((budget, why)) = self.memory_budget else {
            return Ok(None);
        };
        if one_pass <= budget {
            return Ok(None);
        }
        let geom = spec.geometry();
        match tiling::largest_core(self.net, self.spec, &geom, (n, h, w), budget, fixed) {
            Ok(core) => Ok(Some(core)),
            Err(needed) => Err(LpipsError::MemoryBudget {
                height: h,
                width: w,
                needed,
                allowed: budget,
                why,
            }),
        }
    }

    /// Each tap's head map of the whole image, computed tile by tile (src/model/tiling.rs).
    fn tiled_head_maps(&self, a: &Tensor, b: &Tensor, core: i64) -> Result<Vec<Tensor>> {
        let (h, w) = (a.size()[2], a.size()[3]);
        let n = a.size()[0].max(b.size()[0]);
        let spec = self.spec;
        let geom = spec.geometry();
        let rows = tiling::plan_axis(self.net, self.spec, &geom, h, core)?;
        let cols = tiling::plan_axis(self.net, self.spec, &geom, w, core)?;
        let too_small = || LpipsError::TooSmall {
            net: self.net,
            min: spec.min_side(),
            height: h,
            width: w,
        };
        let (hs, ws) = (
            spec.tap_sides(h).ok_or_else(too_small)?,
            spec.tap_sides(w).ok_or_else(too_small)?,
        );
        let acc = hs
            .iter()
            .zip(&ws)
            .map(|(&th, &tw)| Tensor::f_zeros([n, 1, th, tw], (Kind::Float, self.device)))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in &rows {
            for c in &cols {
                let crop = |x: &Tensor| -> Result<Tensor> {
                    Ok(x.f_narrow(2, r.x0, r.x1 - r.x0)?
                        .f_narrow(3, c.x0, c.x1 - c.x0)?)
                };
                let fa = self.trunk_canonical(&crop(a)?)?;
                let fb = self.trunk_canonical(&crop(b)?)?;
                for (l, tap) in geom.taps.iter().enumerate() {
                    let (ro, co) = (r.outs[l], c.outs[l]);
                    if ro.0 >= ro.1 || co.0 >= co.1 {
                        continue;
                    }
                    let d = self.raw_head_map(l, &fa[l], &fb[l])?;
                    tiling::stitch(&acc[l], &d, tap.stride, (r, ro), (c, co))?;
                }
            }
        }
        Ok(acc)
    }

    /// Unit-normalised features of a batch, to compare many times without running the
    /// trunk again. Keeps autograd.
    pub fn features(&self, images: impl ImageInput) -> Result<Features> {
        let x = self.canonical(&images, "input")?;
        self.check_size(&x)?;
        let (h, w) = (x.size()[2], x.size()[3]);
        // Decided per image, so that two sets of one size always agree.
        if self.tile_size(1, h, w, false)?.is_some() {
            return Ok(Features {
                layers: Vec::new(),
                deferred: Some(x),
                height: h,
                width: w,
                model: self.id(),
            });
        }
        self.features_canonical(&x)
    }

    /// Distances between two sets of features (one side may hold a single image),
    /// spatial or not as the model is configured; keeps autograd.
    pub fn distance_from_features(&self, a: &Features, b: &Features) -> Result<Tensor> {
        self.compare_features(a, b, self.spatial)
    }

    /// Like [`Lpips::distance_from_features`], choosing per call between `N x 1 x 1 x 1`
    /// distances and `N x 1 x H x W` maps. A non-finite result is an error.
    pub fn compare_features(&self, a: &Features, b: &Features, spatial: bool) -> Result<Tensor> {
        let total = self.compare(a, b, spatial, false)?.total;
        finite(&total)?;
        Ok(total)
    }

    /// The symmetric `N x N` matrix of distances between all images of a set (zero
    /// diagonal). Each image's features are computed once per block of `batch_size`
    /// images, and at most two blocks' features are held at a time, so memory stays
    /// bounded for large N (at the price of recomputing blocks when N > `batch_size`).
    /// A `batch_size` of 0 is an [`LpipsError::InvalidArgument`].
    pub fn distance_matrix(
        &self,
        images: impl ImageInput,
        batch_size: usize,
    ) -> Result<Array2<f32>> {
        if batch_size == 0 {
            return Err(LpipsError::InvalidArgument {
                argument: "Lpips::distance_matrix(batch_size)",
                value: "0".into(),
                expected: "at least 1 image per block",
            });
        }
        let _guard = tch::no_grad_guard();
        let x = self.canonical(&images, "input")?;
        self.check_size(&x)?;
        let n = x.size()[0];
        let block = batch_size.clamp(1, n as usize) as i64;
        let mut out = Array2::<f32>::zeros((n as usize, n as usize));
        for i0 in (0..n).step_by(block as usize) {
            let bi = block.min(n - i0);
            let fi = self.features_canonical(&x.f_narrow(0, i0, bi)?)?;
            for j0 in (i0..n).step_by(block as usize) {
                let bj = block.min(n - j0);
                let fj = if j0 == i0 {
                    None
                } else {
                    Some(self.features_canonical(&x.f_narrow(0, j0, bj)?)?)
                };
                for a in 0..bi {
                    // Within the diagonal block, only the images after `a`.
                    let (fb, start) = match &fj {
                        Some(fj) => (fj.narrow(0, bj)?, j0),
                        None if a + 1 < bi => (fi.narrow(a + 1, bi - a - 1)?, i0 + a + 1),
                        None => continue,
                    };
                    let total = self.compare(&fi.narrow(a, 1)?, &fb, false, false)?.total;
                    for (k, v) in finite_vec(to_vec(&total)?)?.into_iter().enumerate() {
                        let (r, c) = ((i0 + a) as usize, start as usize + k);
                        out[[r, c]] = v;
                        out[[c, r]] = v;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Trunk features of canonical inputs, unit-normalised in f32.
    fn features_canonical(&self, x: &Tensor) -> Result<Features> {
        let layers = self
            .trunk_canonical(x)?
            .iter()
            .map(normalize_tensor)
            .collect::<Result<Vec<_>>>()?;
        Ok(Features {
            layers,
            deferred: None,
            height: x.size()[2],
            width: x.size()[3],
            model: self.id(),
        })
    }

    /// The trunk's raw features (before `normalize_tensor`) at each tap, in f32.
    fn trunk_canonical(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let x = match &self.scaling {
            Some(scaling) => scaling.forward(x)?,
            None => x.shallow_clone(),
        };
        let x = match self.precision {
            Precision::F32 => x,
            other => x.f_to_kind(other.kind())?,
        };
        self.trunk
            .forward(&x)?
            .iter()
            .map(|f| Ok(f.f_to_kind(Kind::Float)?))
            .collect()
    }

    fn compute(&self, a: &Tensor, b: &Tensor, spatial: bool) -> Result<LayerDistances> {
        let (n, h, w) = (a.size()[0], a.size()[2], a.size()[3]);
        // Small inputs go through the trunk as one batch (`TrunkSpec::joint_pass_pixels`).
        let (ra, rb) = if a.size() == b.size() && n * h * w <= self.spec.joint_pass_pixels {
            let both = self.trunk_canonical(&Tensor::f_cat(&[a, b], 0)?)?;
            let half = |start| {
                both.iter()
                    .map(|f| Ok(f.f_narrow(0, start, n)?))
                    .collect::<Result<Vec<_>>>()
            };
            (half(0)?, half(n)?)
        } else {
            (self.trunk_canonical(a)?, self.trunk_canonical(b)?)
        };
        if let Some(out) = self.fused(&ra, &rb, spatial, h, w)? {
            return Ok(out);
        }
        let features = |layers: Vec<Tensor>| -> Result<Features> {
            Ok(Features {
                layers: layers.iter().map(normalize_tensor).collect::<Result<_>>()?,
                deferred: None,
                height: h,
                width: w,
                model: self.id(),
            })
        };
        self.compare(&features(ra)?, &features(rb)?, spatial, true)
    }

    /// [`Lpips::compute`]'s comparison in one pass per tap over the raw features
    /// (`fused_heads`), where the model's CPU kernels are on (see
    /// [`LpipsBuilder::winograd`]) and the features need no gradient; None otherwise.
    fn fused(
        &self,
        a: &[Tensor],
        b: &[Tensor],
        spatial: bool,
        h: i64,
        w: i64,
    ) -> Result<Option<LayerDistances>> {
        let mut layers = Vec::with_capacity(a.len());
        for (k, (fa, fb)) in a.iter().zip(b).enumerate() {
            let Some(map) = self.fused_head_map(k, fa, fb)? else {
                return Ok(None);
            };
            layers.push(pool_map(&map, spatial, h, w)?);
        }
        let total = layer_sum(&layers)?;
        Ok(Some(LayerDistances { total, layers }))
    }

    /// The settings that [`Features`] record.
    fn id(&self) -> ModelId {
        ModelId {
            net: self.net,
            variant: self.variant,
            version: self.version,
            heads: if self.lins.heads.is_some() {
                Heads::Learned
            } else {
                Heads::None
            },
            spatial: self.spatial,
        }
    }

    fn check_pair(&self, a: &Features, b: &Features) -> Result<()> {
        let model = self.id();
        for f in [a, b] {
            if !f.model.same_features(&model) {
                return Err(LpipsError::FeaturesMismatch {
                    features: f.model,
                    model,
                });
            }
        }
        let (na, nb) = (a.len(), b.len());
        if a.image_size() != b.image_size() || (na != nb && na != 1 && nb != 1) {
            let shape = |f: &Features| vec![f.len(), 3, f.height, f.width];
            return Err(LpipsError::ShapeMismatch {
                a: shape(a),
                b: shape(b),
            });
        }
        Ok(())
    }

    fn compare(
        &self,
        a: &Features,
        b: &Features,
        spatial: bool,
        keep_layers: bool,
    ) -> Result<LayerDistances> {
        self.check_pair(a, b)?;
        if let Some((x, y)) = deferred_pair(a, b)? {
            return Ok(LayerDistances {
                total: self.evaluate(&x, &y, spatial)?,
                layers: Vec::new(),
            });
        }
        let layers = self.lins.per_layer(a, b, spatial)?;
        let total = layer_sum(&layers)?;
        Ok(LayerDistances {
            total,
            layers: if keep_layers { layers } else { Vec::new() },
        })
    }
}

/// Training's access to the model's parts (the BAPPS trainer).
impl Lpips {
    /// Replaces the linear heads.
    pub(crate) fn set_heads(&mut self, heads: Vec<Tensor>) {
        self.lins.heads = Some(heads);
    }

    /// The linear heads, if the model has any.
    pub(crate) fn heads(&self) -> Option<&[Tensor]> {
        self.lins.heads.as_deref()
    }

    /// Makes every convolution use the trunk's one weight copy that an optimiser
    /// updates (see `Trunk::single_layout`); for training the trunk.
    pub(crate) fn prepare_trunk_training(&mut self) {
        self.trunk = self.trunk.single_layout();
    }

    /// The trunk's weights under torchvision's names, as handles on the model's own.
    pub(crate) fn trunk_tensors(&self) -> Vec<(String, Tensor)> {
        self.trunk
            .named_tensors()
            .into_iter()
            .map(|(n, t)| (n, t.shallow_clone()))
            .collect()
    }

    /// Dropout probability applied to the squared differences before the heads, for
    /// training; `None` (the default) for measuring.
    pub(crate) fn set_train_dropout(&mut self, p: Option<f64>) {
        self.lins.train_dropout = p;
    }

    /// Features of a canonical batch (`N x 3 x H x W`, [-1, 1], on the model's device)
    /// without checks; keeps autograd.
    pub(crate) fn features_unchecked(&self, x: &Tensor) -> Result<Features> {
        self.features_canonical(x)
    }
}

/// The images of two feature sets kept for tiled evaluation; an error when only one
/// side was (a set made under another memory setting).
fn deferred_pair(a: &Features, b: &Features) -> Result<Option<(Tensor, Tensor)>> {
    match (&a.deferred, &b.deferred) {
        (None, None) => Ok(None),
        (Some(x), Some(y)) => Ok(Some((x.shallow_clone(), y.shallow_clone()))),
        _ => Err(LpipsError::MemoryMismatch),
    }
}

/// Sum over taps of each head map's weighted average.
fn weighted_total(maps: &[Tensor], weights: &Tensor) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for d in maps {
        let v = weighted_average(d, weights)?;
        total = Some(match total {
            Some(t) => t.f_add(&v)?,
            None => v,
        });
    }
    total.ok_or(LpipsError::EmptyBatch)
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(
        t.f_to_kind(Kind::Float)?.f_flatten(0, -1)?,
    )?)
}

fn map_array(map: &Tensor) -> Result<Array2<f32>> {
    let (h, w) = (map.size()[2] as usize, map.size()[3] as usize);
    let values = finite_vec(to_vec(map)?)?;
    Array2::from_shape_vec((h, w), values)
        .map_err(|e| LpipsError::Internal(format!("a distance map of shape {:?}: {e}", map.size())))
}

/// A distance that is NaN or infinite (e.g. from overflowing weights) is an error.
fn finite_vec(values: Vec<f32>) -> Result<Vec<f32>> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(LpipsError::NonFiniteDistance {
            index: index as i64,
        }),
        None => Ok(values),
    }
}

/// The sum of the taps' contributions, in the taps' order (the reference's).
fn layer_sum(layers: &[Tensor]) -> Result<Tensor> {
    let (first, rest) = layers.split_first().ok_or(LpipsError::EmptyBatch)?;
    rest.iter()
        .try_fold(first.shallow_clone(), |t, d| Ok(t.f_add(d)?))
}

fn finite(t: &Tensor) -> Result<()> {
    let ok = tch::no_grad(|| -> Result<bool> { Ok(bool::try_from(t.f_isfinite()?.f_all()?)?) })?;
    if ok {
        return Ok(());
    }
    let bad = tch::no_grad(|| -> Result<Vec<f32>> { to_vec(&t.f_isfinite()?.f_logical_not()?) })?;
    Err(LpipsError::NonFiniteDistance {
        index: bad.iter().position(|&v| v != 0.0).unwrap_or(0) as i64,
    })
}

/// The distance between two images with the reference's defaults: AlexNet trunk from the
/// torch hub cache (else downloaded), v0.1 heads, CPU. Builds the model on each call:
/// keep an [`Lpips`] to compare many images.
pub fn distance(a: impl ImageInput, b: impl ImageInput) -> Result<f32> {
    Lpips::builder().build()?.distance(a, b)
}

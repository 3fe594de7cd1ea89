//! The LPIPS model: trunk, unit-normalised features, squared differences, linear heads,
//! spatial average or upsampled map, sum over layers.

use ndarray::Array2;
use tch::{Device, Kind, Tensor, nn};

use crate::config::{Heads, InputRange, Lin, Net, Precision, Resize, Version};
use crate::error::{LpipsError, Result};
use crate::input::ImageInput;
use crate::trunk::Trunk;
use crate::weights::{self, TensorMap, TrunkWeights};

// The reference's scaling layer (v0.1): (x - SHIFT) / SCALE per channel.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
// The reference's epsilon in unit normalisation.
const EPS: f64 = 1e-10;
// Sums of squares below this are raised to it before the square root, so that an
// all-zero feature vector has a finite (zero) gradient instead of the reference's NaN.
// Values are unchanged: such vectors normalise to zero either way.
const MIN_SQUARED_NORM: f64 = 1e-30;
// Batch x height x width up to which both inputs share one trunk pass (benches/trunks.rs).
const JOINT_PASS_MAX_PIXELS: i64 = 64 * 64 * 8;
// Values may stray this far outside their declared range (a tenth of its width) before
// the range check refuses them.
const RANGE_SLACK: f64 = 0.1;

/// LPIPS distances of a batch: the total and each tapped layer's contribution.
#[derive(Debug)]
pub struct LayerDistances {
    /// Sum over layers: `N x 1 x 1 x 1`, or `N x 1 x H x W` for a spatial model.
    pub total: Tensor,
    /// One tensor per tap, shaped like `total`.
    pub layers: Vec<Tensor>,
}

/// A batch of images' unit-normalised features at each tap: computed once with
/// [`Lpips::features`], compared many times with [`Lpips::distance_from_features`].
#[derive(Debug)]
pub struct Features {
    layers: Vec<Tensor>,
    height: i64,
    width: i64,
}

impl Features {
    /// Number of images.
    pub fn len(&self) -> i64 {
        self.layers[0].size()[0]
    }

    /// Whether there are no images (never, for features the model made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Height and width of the images they came from.
    pub fn image_size(&self) -> (i64, i64) {
        (self.height, self.width)
    }

    /// The features of images `start..start + len`.
    pub fn narrow(&self, start: i64, len: i64) -> Features {
        Features {
            layers: self
                .layers
                .iter()
                .map(|l| l.narrow(0, start, len))
                .collect(),
            height: self.height,
            width: self.width,
        }
    }

    /// The normalised feature maps, one `N x C x h x w` tensor per tap.
    pub fn layers(&self) -> &[Tensor] {
        &self.layers
    }
}

/// Builds an [`Lpips`] model; see [`Lpips::builder`].
#[derive(Debug, Default)]
pub struct LpipsBuilder {
    net: Net,
    version: Version,
    heads: Heads,
    spatial: bool,
    range: InputRange,
    no_range_check: bool,
    resize: Resize,
    precision: Precision,
    device: Option<Device>,
    trunk: TrunkWeights,
    heads_file: Option<std::path::PathBuf>,
    progress: Option<weights::ProgressFn>,
}

impl LpipsBuilder {
    /// The trunk (default [`Net::Alex`]).
    pub fn net(mut self, net: Net) -> Self {
        self.net = net;
        self
    }

    /// The release: input scaling and which heads (default [`Version::V0_1`]).
    pub fn version(mut self, version: Version) -> Self {
        self.version = version;
        self
    }

    /// Learned heads or the uncalibrated baseline (default [`Heads::Learned`]).
    pub fn heads(mut self, heads: Heads) -> Self {
        self.heads = heads;
        self
    }

    /// Version and heads at once, as the CLI's `--lin v0.1|v0.0|none`.
    pub fn lin(self, lin: Lin) -> Self {
        let (version, heads) = lin.split();
        self.version(version).heads(heads)
    }

    /// Whether [`Lpips::forward`] returns an `N x 1 x H x W` map instead of
    /// `N x 1 x 1 x 1` (default false).
    pub fn spatial(mut self, spatial: bool) -> Self {
        self.spatial = spatial;
        self
    }

    /// The range of bare tensors given to the model (default [-1, 1]); the reference's
    /// `normalize=True` is [`InputRange::ZeroToOne`].
    pub fn input_range(mut self, range: InputRange) -> Self {
        self.range = range;
        self
    }

    /// Whether inputs clearly outside their declared range are refused with
    /// [`LpipsError::OutOfRange`] (default true).
    pub fn check_range(mut self, check: bool) -> Self {
        self.no_range_check = !check;
        self
    }

    /// What to do with pairs of different sizes (default: an error).
    pub fn resize(mut self, resize: Resize) -> Self {
        self.resize = resize;
        self
    }

    /// Precision of the trunk (default f32). f16 and bf16 are for GPUs mostly; their
    /// error against f32 is measured in `tests/precision.rs` and the README.
    pub fn precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Device to run on (default CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// Where the trunk's weights come from (default: the torch hub cache, else a
    /// verified download).
    pub fn trunk(mut self, trunk: TrunkWeights) -> Self {
        self.trunk = trunk;
        self
    }

    /// Linear heads from a file instead of the embedded ones: a safetensors file written
    /// by `lpips train` (or any file with `lin{k}.model.1.weight` tensors of shape
    /// `(1, C, 1, 1)`), or a checkpoint from the reference's own training
    /// (`torch.save`d `lpips.LPIPS` state dict). As the reference's `model_path` does,
    /// a trunk stored in the same file (a `--tune` or `--scratch` run) is used too, unless
    /// [`LpipsBuilder::trunk`] chose another source. The input scaling stays the chosen
    /// [`Version`]'s (v0.1, as the reference trains with, by default).
    pub fn heads_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.heads_file = Some(path.into());
        self.heads = Heads::Learned;
        self
    }

    /// Hears how a download of the trunk's weights goes ([`TrunkWeights::Auto`] with no
    /// cached file), e.g. to draw a progress bar; by default nothing is reported.
    pub fn download_progress(
        mut self,
        f: impl FnMut(weights::Progress<'_>) + Send + 'static,
    ) -> Self {
        self.progress = Some(weights::ProgressFn(Box::new(f)));
        self
    }

    /// Shorthand for `trunk(TrunkWeights::File(path))`.
    pub fn trunk_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.trunk(TrunkWeights::File(path.into()))
    }

    /// Builds the model, loading and checking every weight.
    pub fn build(mut self) -> Result<Lpips> {
        let device = crate::config::check_device(self.device.unwrap_or(Device::Cpu))?;
        let net = self.net;
        let vs = nn::VarStore::new(device);
        let trunk = Trunk::new(&vs.root(), net);
        let mut heads_map = match &self.heads_file {
            Some(path) => {
                let mut map = weights::read_trunk_file(path)?;
                map.alias_reference_trunk();
                Some(map)
            }
            None => None,
        };
        let trunk_in_heads_file = heads_map
            .as_ref()
            .is_some_and(|m| m.contains("features.0.weight"));
        let source = match self.trunk {
            TrunkWeights::Auto if trunk_in_heads_file => heads_map.take(),
            TrunkWeights::Auto => {
                let mut ignore = |_: weights::Progress<'_>| {};
                let progress: &mut dyn FnMut(weights::Progress<'_>) = match self.progress {
                    Some(ref mut f) => &mut *f.0,
                    None => &mut ignore,
                };
                Some(weights::read_trunk_file(&weights::find_trunk(
                    net, progress,
                )?)?)
            }
            TrunkWeights::File(path) => Some(weights::read_trunk_file(&path)?),
            TrunkWeights::Tensors(tensors) => {
                Some(TensorMap::from_tensors(tensors, "the given tensors"))
            }
            TrunkWeights::RandomInit => None,
        };
        let _guard = tch::no_grad_guard();
        let mut source = source;
        if let Some(source) = source.as_mut() {
            let mut vars = vs.variables();
            for (name, loaded) in weights::trunk_tensors(&vars, source)? {
                let var = vars.get_mut(&name).expect("same trunk, same names");
                var.f_copy_(&loaded)?;
            }
        }
        // Frozen: gradients reach the inputs only.
        let trunk = match self.precision {
            Precision::F32 => trunk,
            other => trunk.to_kind(other.kind()),
        };
        // Channels-last weights and activations: oneDNN then convolves and pools without
        // reordering; measured 1.2x (alex) to 1.8x (squeeze) faster at 256x256 on CPU.
        let trunk = trunk.to_channels_last();
        for t in trunk.tensors() {
            let _ = t.set_requires_grad(false);
        }
        if trunk_in_heads_file && heads_map.is_none() {
            heads_map = source.take();
        }
        let lins = match self.heads {
            Heads::Learned if heads_map.is_some() => Some(
                weights::heads_from(net, heads_map.as_mut().expect("checked"))?
                    .into_iter()
                    .map(|w| w.to_device(device).set_requires_grad(false))
                    .collect(),
            ),
            Heads::Learned => Some(
                weights::linear_heads(net, self.version)?
                    .into_iter()
                    .map(|w| w.to_device(device).set_requires_grad(false))
                    .collect(),
            ),
            Heads::None => None,
        };
        let scaling = (self.version == Version::V0_1).then(|| {
            let shape = [1, 3, 1, 1];
            (
                Tensor::from_slice(&SHIFT).view(shape).to_device(device),
                Tensor::from_slice(&SCALE).view(shape).to_device(device),
            )
        });
        Ok(Lpips {
            net,
            version: self.version,
            spatial: self.spatial,
            range: self.range,
            check_range: !self.no_range_check,
            resize: self.resize,
            precision: self.precision,
            device,
            trunk,
            lins,
            scaling,
            train_dropout: None,
        })
    }
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
    version: Version,
    spatial: bool,
    range: InputRange,
    check_range: bool,
    resize: Resize,
    precision: Precision,
    device: Device,
    trunk: Trunk,
    lins: Option<Vec<Tensor>>,
    scaling: Option<(Tensor, Tensor)>,
    // Dropout before the heads while training them (the reference's `use_dropout`).
    train_dropout: Option<f64>,
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

    /// The release.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Another handle on the same model for another thread; the weights are shared,
    /// not copied.
    pub fn share(&self) -> Lpips {
        Lpips {
            trunk: self.trunk.share(),
            lins: self
                .lins
                .as_ref()
                .map(|l| l.iter().map(Tensor::shallow_clone).collect()),
            scaling: self
                .scaling
                .as_ref()
                .map(|(a, b)| (a.shallow_clone(), b.shallow_clone())),
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
        if let Some(lins) = &self.lins {
            out.extend(lins.iter().map(Tensor::shallow_clone));
        }
        out
    }

    /// Replaces the linear heads (training).
    pub(crate) fn set_heads(&mut self, heads: Vec<Tensor>) {
        self.lins = Some(heads);
    }

    /// The linear heads, if the model has any.
    pub(crate) fn heads(&self) -> Option<&[Tensor]> {
        self.lins.as_deref()
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
        self.train_dropout = p;
    }

    /// Features of a canonical batch (`N x 3 x H x W`, [-1, 1], on the model's device)
    /// without checks; keeps autograd.
    pub(crate) fn features_unchecked(&self, x: &Tensor) -> Features {
        self.features_canonical(x)
    }

    /// Distances between two batches `N x 3 x H x W` in the model's input range (one
    /// side may have N = 1: it is compared with each image of the other); keeps
    /// autograd, so it can be used as a loss. Returns `N x 1 x 1 x 1`, or `N x 1 x H x W`
    /// when the model is spatial.
    pub fn forward(&self, in0: &Tensor, in1: &Tensor) -> Result<Tensor> {
        Ok(self.forward_layers(in0, in1)?.total)
    }

    /// Like [`Lpips::forward`], with each layer's contribution as well.
    pub fn forward_layers(&self, in0: &Tensor, in1: &Tensor) -> Result<LayerDistances> {
        let (a, b) = self.canonical_pair(in0, in1)?;
        self.compute(&a, &b, self.spatial)
    }

    /// Scalar distances between any two inputs ([`ImageInput`]: images, paths, arrays,
    /// tensors), one per pair (or per image of the larger side when the other holds
    /// one), without autograd.
    pub fn distances(&self, a: impl ImageInput, b: impl ImageInput) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        let total = self.compute(&a, &b, false)?.total;
        to_vec(&total)
    }

    /// The distance between two images (8-bit images are read as the reference reads
    /// them); each side must hold one image.
    pub fn distance(&self, a: impl ImageInput, b: impl ImageInput) -> Result<f32> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        single(&a, &b)?;
        let total = self.compute(&a, &b, false)?.total;
        Ok(total.double_value(&[0, 0, 0, 0]) as f32)
    }

    /// The per-pixel distance map (`H x W`) between two images; its mean over pixels
    /// equals [`Lpips::distance`] up to rounding.
    pub fn distance_map(&self, a: impl ImageInput, b: impl ImageInput) -> Result<Array2<f32>> {
        let _guard = tch::no_grad_guard();
        let (a, b) = self.canonical_pair(a, b)?;
        single(&a, &b)?;
        let map = self.compute(&a, &b, true)?.total;
        let (h, w) = (map.size()[2] as usize, map.size()[3] as usize);
        Ok(Array2::from_shape_vec((h, w), to_vec(&map)?).expect("map has H x W values"))
    }

    /// Unit-normalised features of a batch, to compare many times without running the
    /// trunk again. Keeps autograd.
    pub fn features(&self, images: impl ImageInput) -> Result<Features> {
        let x = self.canonical(&images, "input")?;
        self.check_size(&x)?;
        Ok(self.features_canonical(&x))
    }

    /// Distances between two sets of features (one side may hold a single image),
    /// spatial or not as the model is configured; keeps autograd.
    pub fn distance_from_features(&self, a: &Features, b: &Features) -> Result<Tensor> {
        self.compare_features(a, b, self.spatial)
    }

    /// Like [`Lpips::distance_from_features`], choosing per call between `N x 1 x 1 x 1`
    /// distances and `N x 1 x H x W` maps.
    pub fn compare_features(&self, a: &Features, b: &Features, spatial: bool) -> Result<Tensor> {
        Ok(self.compare(a, b, spatial, false)?.total)
    }

    /// The symmetric `N x N` matrix of distances between all images of a set (zero
    /// diagonal). Each image's features are computed once per block of `batch_size`
    /// images, and at most two blocks' features are held at a time, so memory stays
    /// bounded for large N (at the price of recomputing blocks when N > `batch_size`).
    pub fn distance_matrix(
        &self,
        images: impl ImageInput,
        batch_size: usize,
    ) -> Result<Array2<f32>> {
        let _guard = tch::no_grad_guard();
        let x = self.canonical(&images, "input")?;
        self.check_size(&x)?;
        let n = x.size()[0];
        let block = batch_size.max(1) as i64;
        let mut out = Array2::<f32>::zeros((n as usize, n as usize));
        for i0 in (0..n).step_by(block as usize) {
            let bi = block.min(n - i0);
            let fi = self.features_canonical(&x.narrow(0, i0, bi));
            for j0 in (i0..n).step_by(block as usize) {
                let bj = block.min(n - j0);
                let fj = if j0 == i0 {
                    None
                } else {
                    Some(self.features_canonical(&x.narrow(0, j0, bj)))
                };
                for a in 0..bi {
                    // Within the diagonal block, only the images after `a`.
                    let (fb, start) = match &fj {
                        Some(fj) => (fj.narrow(0, bj), j0),
                        None if a + 1 < bi => (fi.narrow(a + 1, bi - a - 1), i0 + a + 1),
                        None => continue,
                    };
                    let d = to_vec(&self.compare(&fi.narrow(a, 1), &fb, false, false)?.total)?;
                    for (k, v) in d.into_iter().enumerate() {
                        let (r, c) = ((i0 + a) as usize, start as usize + k);
                        out[[r, c]] = v;
                        out[[c, r]] = v;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Converts, checks and moves an input to the device: `N x 3 x H x W` f32 in [-1, 1].
    fn canonical(&self, input: &impl ImageInput, which: &'static str) -> Result<Tensor> {
        let (x, declared) = input.to_canonical(self.range)?;
        let shape = x.size();
        if shape.len() != 4 || shape[1] != 3 {
            return Err(LpipsError::BadShape { which, shape });
        }
        if shape[0] == 0 {
            return Err(LpipsError::EmptyBatch);
        }
        // One pass for both bounds; NaN propagates into them.
        let (lo, hi) = tch::no_grad(|| {
            let (lo, hi) = x.aminmax(None, false);
            (lo.double_value(&[]), hi.double_value(&[]))
        });
        if !lo.is_finite() || !hi.is_finite() {
            return Err(LpipsError::NonFinite { which });
        }
        let slack = 2.0 * RANGE_SLACK;
        if self.check_range && (lo < -1.0 - slack || hi > 1.0 + slack) {
            let (dlo, dhi) = declared.bounds();
            let back = |v: f64| dlo + (v + 1.0) / 2.0 * (dhi - dlo);
            return Err(LpipsError::OutOfRange {
                which,
                declared,
                lo: dlo,
                hi: dhi,
                min: back(lo),
                max: back(hi),
            });
        }
        Ok(x.to_device(self.device))
    }

    fn canonical_pair(&self, a: impl ImageInput, b: impl ImageInput) -> Result<(Tensor, Tensor)> {
        let a = self.canonical(&a, "in0")?;
        let b = self.canonical(&b, "in1")?;
        let (sa, sb) = (a.size(), b.size());
        let b = if sa[2..] != sb[2..] {
            match self.resize {
                Resize::Error => return Err(LpipsError::ShapeMismatch { a: sa, b: sb }),
                Resize::SecondToFirst => {
                    let shrinking = sb[2] > sa[2] || sb[3] > sa[3];
                    if shrinking {
                        b.internal_upsample_bilinear2d_aa([sa[2], sa[3]], false, None, None)
                    } else {
                        b.upsample_bilinear2d([sa[2], sa[3]], false, None, None)
                    }
                }
            }
        } else {
            b
        };
        let (na, nb) = (sa[0], sb[0]);
        if na != nb && na != 1 && nb != 1 {
            return Err(LpipsError::ShapeMismatch { a: sa, b: sb });
        }
        self.check_size(&a)?;
        Ok((a, b))
    }

    fn check_size(&self, x: &Tensor) -> Result<()> {
        let (h, w) = (x.size()[2], x.size()[3]);
        let min = self.net.min_side();
        if h < min || w < min {
            return Err(LpipsError::TooSmall {
                net: self.net,
                min,
                height: h,
                width: w,
            });
        }
        Ok(())
    }

    /// Trunk features of canonical inputs, unit-normalised in f32.
    fn features_canonical(&self, x: &Tensor) -> Features {
        let x = match &self.scaling {
            Some((shift, scale)) => (x - shift) / scale,
            None => x.shallow_clone(),
        };
        let x = match self.precision {
            Precision::F32 => x,
            other => x.to_kind(other.kind()),
        };
        let layers = self
            .trunk
            .forward(&x)
            .iter()
            .map(|f| normalize(&f.to_kind(Kind::Float)))
            .collect();
        Features {
            layers,
            height: x.size()[2],
            width: x.size()[3],
        }
    }

    fn compute(&self, a: &Tensor, b: &Tensor, spatial: bool) -> Result<LayerDistances> {
        let (n, h, w) = (a.size()[0], a.size()[2], a.size()[3]);
        // Small inputs go through the trunk as one batch, which halves per-op overhead;
        // large ones separately, which measured faster on CPU (activations stay in cache).
        let (fa, fb) = if a.size() == b.size() && n * h * w <= JOINT_PASS_MAX_PIXELS {
            let both = self.features_canonical(&Tensor::cat(&[a, b], 0));
            (both.narrow(0, n), both.narrow(n, n))
        } else {
            (self.features_canonical(a), self.features_canonical(b))
        };
        self.compare(&fa, &fb, spatial, true)
    }

    fn compare(
        &self,
        a: &Features,
        b: &Features,
        spatial: bool,
        keep_layers: bool,
    ) -> Result<LayerDistances> {
        let (na, nb) = (a.len(), b.len());
        if a.image_size() != b.image_size() || (na != nb && na != 1 && nb != 1) {
            let shape = |f: &Features| vec![f.len(), 3, f.height, f.width];
            return Err(LpipsError::ShapeMismatch {
                a: shape(a),
                b: shape(b),
            });
        }
        let mut total: Option<Tensor> = None;
        let mut layers = Vec::new();
        for (k, (fa, fb)) in a.layers.iter().zip(&b.layers).enumerate() {
            let diff = (fa - fb).square();
            let diff = match self.train_dropout {
                Some(p) if self.lins.is_some() => diff.dropout(p, true),
                _ => diff,
            };
            let d = if spatial {
                let d = match &self.lins {
                    Some(lins) => diff.conv2d(&lins[k], None::<Tensor>, [1, 1], [0, 0], [1, 1], 1),
                    None => diff.sum_dim_intlist(1, true, None::<Kind>),
                };
                d.upsample_bilinear2d([a.height, a.width], false, None, None)
            } else {
                // Averaging over space before the 1x1 head (both linear, so they commute)
                // leaves the head a (N, C) x (C, 1) product instead of a pass over the map.
                let m = diff.mean_dim([2, 3].as_slice(), false, None::<Kind>);
                let d = match &self.lins {
                    Some(lins) => m.matmul(&lins[k].view([-1, 1])),
                    None => m.sum_dim_intlist(1, true, None::<Kind>),
                };
                d.view([-1, 1, 1, 1])
            };
            total = Some(match total {
                Some(t) => t + &d,
                None => d.shallow_clone(),
            });
            if keep_layers {
                layers.push(d);
            }
        }
        Ok(LayerDistances {
            total: total.expect("every trunk has taps"),
            layers,
        })
    }
}

fn single(a: &Tensor, b: &Tensor) -> Result<()> {
    let (na, nb) = (a.size()[0], b.size()[0]);
    if na != 1 || nb != 1 {
        return Err(LpipsError::NotSingle { a: na, b: nb });
    }
    Ok(())
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.to_kind(Kind::Float).flatten(0, -1))?)
}

/// Unit length along channels, with the reference's epsilon.
fn normalize(x: &Tensor) -> Tensor {
    let norm = x
        .square()
        .sum_dim_intlist(1, true, None::<Kind>)
        .clamp_min(MIN_SQUARED_NORM)
        .sqrt();
    x / (norm + EPS)
}

/// The distance between two images with the reference's defaults: AlexNet trunk from the
/// torch hub cache (else downloaded), v0.1 heads, CPU. Builds the model on each call:
/// keep an [`Lpips`] to compare many images.
pub fn distance(a: impl ImageInput, b: impl ImageInput) -> Result<f32> {
    Lpips::builder().build()?.distance(a, b)
}

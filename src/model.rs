//! The LPIPS model: trunk, unit-normalised features, squared differences, linear heads,
//! spatial average or upsampled map, sum over layers.

use image::DynamicImage;
use ndarray::Array2;
use tch::{Device, Kind, Tensor, nn};

use crate::config::{Heads, InputRange, Lin, Net, Version};
use crate::error::{LpipsError, Result};
use crate::image_io::image_to_tensor;
use crate::trunk::Trunk;
use crate::weights::{self, TensorMap, TrunkWeights};

// The reference's scaling layer (v0.1): (x - SHIFT) / SCALE per channel.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
// The reference's epsilon in unit normalisation.
const EPS: f64 = 1e-10;
// Batch x height x width up to which both inputs share one trunk pass (benches/trunks.rs).
const JOINT_PASS_MAX_PIXELS: i64 = 64 * 64 * 4;

/// LPIPS distances of a batch: the total and each tapped layer's contribution.
#[derive(Debug)]
pub struct LayerDistances {
    /// Sum over layers: `N x 1 x 1 x 1`, or `N x 1 x H x W` for a spatial model.
    pub total: Tensor,
    /// One tensor per tap, shaped like `total`.
    pub layers: Vec<Tensor>,
}

/// Builds an [`Lpips`] model; see [`Lpips::builder`].
#[derive(Debug, Default)]
pub struct LpipsBuilder {
    net: Net,
    version: Version,
    heads: Heads,
    spatial: bool,
    range: InputRange,
    device: Option<Device>,
    trunk: TrunkWeights,
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

    /// The range of tensors given to [`Lpips::forward`] (default [-1, 1]).
    pub fn input_range(mut self, range: InputRange) -> Self {
        self.range = range;
        self
    }

    /// Device to run on (default CPU).
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// Where the trunk's weights come from (default: the torch hub cache).
    pub fn trunk(mut self, trunk: TrunkWeights) -> Self {
        self.trunk = trunk;
        self
    }

    /// Shorthand for `trunk(TrunkWeights::File(path))`.
    pub fn trunk_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.trunk(TrunkWeights::File(path.into()))
    }

    /// Builds the model, loading and checking every weight.
    pub fn build(self) -> Result<Lpips> {
        let device = self.device.unwrap_or(Device::Cpu);
        let net = self.net;
        let mut vs = nn::VarStore::new(device);
        let trunk = Trunk::new(&vs.root(), net);
        let source = match self.trunk {
            TrunkWeights::Auto => Some(weights::read_trunk_file(&weights::find_trunk(net)?)?),
            TrunkWeights::File(path) => Some(weights::read_trunk_file(&path)?),
            TrunkWeights::Tensors(tensors) => {
                Some(TensorMap::from_tensors(tensors, "the given tensors"))
            }
            TrunkWeights::RandomInit => None,
        };
        if let Some(mut source) = source {
            let _guard = tch::no_grad_guard();
            let mut vars = vs.variables();
            for (name, loaded) in weights::trunk_tensors(net, &mut source)? {
                let var = vars.get_mut(&name).expect("same trunk, same names");
                var.f_copy_(&loaded)?;
            }
        }
        vs.freeze();
        let lins = match self.heads {
            Heads::Learned => Some(
                weights::linear_heads(net, self.version)?
                    .into_iter()
                    .map(|w| w.to_device(device))
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
            device,
            _vs: vs,
            trunk,
            lins,
            scaling,
        })
    }
}

/// The LPIPS metric with its weights loaded, ready to compare images.
///
/// Weights are frozen: gradients flow to the inputs of [`Lpips::forward`] only, so the
/// model can serve as a training loss.
#[derive(Debug)]
pub struct Lpips {
    net: Net,
    version: Version,
    spatial: bool,
    range: InputRange,
    device: Device,
    // Owns the trunk's variables.
    _vs: nn::VarStore,
    trunk: Trunk,
    lins: Option<Vec<Tensor>>,
    scaling: Option<(Tensor, Tensor)>,
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

    /// Distances between two batches `N x 3 x H x W` in the model's input range; keeps
    /// autograd, so it can be used as a loss. Returns `N x 1 x 1 x 1`, or `N x 1 x H x W`
    /// when the model is spatial.
    pub fn forward(&self, in0: &Tensor, in1: &Tensor) -> Result<Tensor> {
        Ok(self.compute(in0, in1, self.spatial, false)?.total)
    }

    /// Like [`Lpips::forward`], with each layer's contribution as well.
    pub fn forward_layers(&self, in0: &Tensor, in1: &Tensor) -> Result<LayerDistances> {
        self.compute(in0, in1, self.spatial, true)
    }

    /// Scalar distances of a batch, one per pair, without autograd.
    pub fn distance_batch(&self, in0: &Tensor, in1: &Tensor) -> Result<Vec<f32>> {
        let _guard = tch::no_grad_guard();
        let total = self.compute(in0, in1, false, false)?.total;
        Ok(Vec::<f32>::try_from(
            total.to_kind(Kind::Float).flatten(0, -1),
        )?)
    }

    /// The distance between two images (8-bit RGB as the reference reads them).
    pub fn distance(&self, a: &DynamicImage, b: &DynamicImage) -> Result<f32> {
        let (a, b) = self.image_pair(a, b)?;
        let _guard = tch::no_grad_guard();
        let total = self.compute(&a, &b, false, false)?.total;
        Ok(total.to_kind(Kind::Float).double_value(&[0, 0, 0, 0]) as f32)
    }

    /// The per-pixel distance map (`H x W`) between two images; its mean over pixels
    /// equals [`Lpips::distance`] up to rounding.
    pub fn distance_map(&self, a: &DynamicImage, b: &DynamicImage) -> Result<Array2<f32>> {
        let (a, b) = self.image_pair(a, b)?;
        let _guard = tch::no_grad_guard();
        let map = self.compute(&a, &b, true, false)?.total;
        let (h, w) = (map.size()[2] as usize, map.size()[3] as usize);
        let values = Vec::<f32>::try_from(map.to_kind(Kind::Float).flatten(0, -1))?;
        Ok(Array2::from_shape_vec((h, w), values).expect("map has H x W values"))
    }

    fn image_pair(&self, a: &DynamicImage, b: &DynamicImage) -> Result<(Tensor, Tensor)> {
        let (a, b) = (image_to_tensor(a), image_to_tensor(b));
        // Images are always [-1, 1]; undo the model's [0, 1] mapping for them.
        Ok(match self.range {
            InputRange::MinusOneToOne => (a, b),
            InputRange::ZeroToOne => ((a + 1.0) / 2.0, (b + 1.0) / 2.0),
        })
    }

    fn check(&self, in0: &Tensor, in1: &Tensor) -> Result<()> {
        for (which, t) in [("in0", in0), ("in1", in1)] {
            let shape = t.size();
            if shape.len() != 4 || shape[1] != 3 {
                return Err(LpipsError::BadShape { which, shape });
            }
        }
        let (a, b) = (in0.size(), in1.size());
        if a != b {
            return Err(LpipsError::ShapeMismatch { a, b });
        }
        if a[0] == 0 {
            return Err(LpipsError::EmptyBatch);
        }
        let min = self.net.min_side();
        if a[2] < min || a[3] < min {
            return Err(LpipsError::TooSmall {
                net: self.net,
                min,
                height: a[2],
                width: a[3],
            });
        }
        for (which, t) in [("in0", in0), ("in1", in1)] {
            let finite = tch::no_grad(|| t.isfinite().all());
            if !bool::try_from(finite)? {
                return Err(LpipsError::NonFinite { which });
            }
        }
        Ok(())
    }

    fn prepare(&self, x: &Tensor) -> Tensor {
        let x = x.to_device(self.device).to_kind(Kind::Float);
        let x = match self.range {
            InputRange::MinusOneToOne => x,
            InputRange::ZeroToOne => x * 2.0 - 1.0,
        };
        match &self.scaling {
            Some((shift, scale)) => (x - shift) / scale,
            None => x,
        }
    }

    fn compute(
        &self,
        in0: &Tensor,
        in1: &Tensor,
        spatial: bool,
        keep_layers: bool,
    ) -> Result<LayerDistances> {
        self.check(in0, in1)?;
        let n = in0.size()[0];
        let (h, w) = (in0.size()[2], in0.size()[3]);
        let (x0, x1) = (self.prepare(in0), self.prepare(in1));
        // Small inputs go through the trunk as one batch, which halves per-op overhead;
        // large ones separately, which measured faster on CPU (activations stay in cache).
        let feats: Vec<(Tensor, Tensor)> = if n * h * w <= JOINT_PASS_MAX_PIXELS {
            let both = self.trunk.forward(&Tensor::cat(&[x0, x1], 0));
            both.iter()
                .map(|f| (f.narrow(0, 0, n), f.narrow(0, n, n)))
                .collect()
        } else {
            let (f0, f1) = (self.trunk.forward(&x0), self.trunk.forward(&x1));
            f0.into_iter().zip(f1).collect()
        };
        let mut total: Option<Tensor> = None;
        let mut layers = Vec::new();
        for (k, (f0, f1)) in feats.iter().enumerate() {
            let diff = (normalize(f0) - normalize(f1)).square();
            let d = match &self.lins {
                Some(lins) => diff.conv2d(&lins[k], None::<Tensor>, [1, 1], [0, 0], [1, 1], 1),
                None => diff.sum_dim_intlist(1, true, None::<Kind>),
            };
            let d = if spatial {
                d.upsample_bilinear2d([h, w], false, None, None)
            } else {
                d.mean_dim([2, 3].as_slice(), true, None::<Kind>)
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

/// Unit length along channels, with the reference's epsilon.
fn normalize(x: &Tensor) -> Tensor {
    let norm = x.square().sum_dim_intlist(1, true, None::<Kind>).sqrt();
    x / (norm + EPS)
}

/// The distance between two images with the reference's defaults: AlexNet trunk from the
/// torch hub cache, v0.1 heads, CPU. Builds the model on each call: keep an [`Lpips`]
/// to compare many images.
pub fn distance(a: &DynamicImage, b: &DynamicImage) -> Result<f32> {
    Lpips::builder().build()?.distance(a, b)
}

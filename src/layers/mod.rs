//! A trunk's layers with their weights, built from its [`TrunkSpec`] under
//! torchvision's variable names (`features.{i}.weight`), and run up to each tap.

use tch::{Kind, Tensor, nn};

pub(crate) mod team;
mod winograd;

use crate::config::{Net, Variant};
use crate::error::{LpipsError, Result};
use crate::trunk::{LayerSpec, TrunkSpec};
use winograd::LazyWinograd;

// Below this many pixels on the shorter side, a convolution runs on NCHW input with NCHW
// weights: oneDNN's channels-last kernels were about twice as slow on AlexNet's 3x3 and
// 7x7 maps at 64x64 input (while max-pooling stays much faster channels-last).
const SMALL_MAP: i64 = 12;

/// The trunk of a variant ([`crate::trunk::spec`]), or [`LpipsError::NoSuchVariant`].
pub(crate) fn spec(net: Net, variant: Variant) -> Result<&'static TrunkSpec> {
    crate::trunk::spec(net, variant).ok_or(LpipsError::NoSuchVariant { net, variant })
}

impl Net {
    /// The smallest height and width the trunk of a [`Variant`] accepts, computed from its
    /// layers (shift-tolerant: alex 21, vgg 18); an error for a variant without this trunk.
    pub fn min_side_of(self, variant: Variant) -> Result<i64> {
        Ok(spec(self, variant)?.min_side())
    }
}

/// A 3x3 stride-1 convolution with padding 1 as the trunks run it with Winograd's
/// F(4x4, 3x3) on the CPU, for benchmarks and tests outside the crate
/// (`examples/conv_layers.rs`); not a stable interface.
#[doc(hidden)]
#[derive(Debug)]
pub struct WinogradConv(winograd::Winograd);

impl WinogradConv {
    /// Transforms `weight` (`Cout x Cin x 3 x 3`, CPU) once; `bias` has `Cout` values.
    pub fn new(weight: &tch::Tensor, bias: &tch::Tensor) -> Result<WinogradConv> {
        Ok(WinogradConv(winograd::Winograd::new(weight, bias)?))
    }

    /// The convolution of `x` (`N x Cin x H x W`, f32, CPU); channels-last result.
    pub fn forward(&self, x: &tch::Tensor) -> Result<tch::Tensor> {
        self.0.forward(x)
    }
}

/// A convolution with its weights, which handles can share (see [`Trunk::share`]).
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    // The same weights in NCHW layout when `weight` is channels-last, for small maps;
    // dropped when the trunk is trained (two copies could not both follow the optimiser).
    weight_nchw: Option<Tensor>,
    // The filters in Winograd form, for 3x3 stride-1 layers on the CPU in f32 (see
    // `winograd/` and `winograd_pays`); passes that need gradients never use it.
    wino: Option<LazyWinograd>,
    // Whether `wino` serves every size (tests of its exactness), not only where it pays.
    wino_everywhere: bool,
    bias: Tensor,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(
        p: &nn::Path,
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    ) -> Result<Conv> {
        // The path names the variables (`features.{i}.weight`); tch's defaults for a
        // convolution (what `nn::conv2d` makes, which panics on error), in its order (bias
        // first, so that seeded draws stay the same), serve `TrunkWeights::RandomInit`.
        let bias = p.f_var("bias", &[cout], nn::Init::Const(0.))?;
        let weight = p.f_var(
            "weight",
            &[cout, cin, kernel, kernel],
            nn::init::DEFAULT_KAIMING_UNIFORM,
        )?;
        Ok(Conv {
            weight,
            weight_nchw: None,
            wino: None,
            wino_everywhere: false,
            bias,
            stride,
            padding,
        })
    }

    /// Whether this is a 3x3 stride-1 convolution with padding 1 (Winograd's F(4x4, 3x3)
    /// computes exactly those).
    fn is_3x3_same(&self) -> bool {
        self.stride == 1 && self.padding == 1 && self.weight.size().get(2..) == Some(&[3, 3][..])
    }

    /// `small_maps_nchw`: whether small maps may take the NCHW path (not inside fire
    /// modules, where the layout changes cost more than they saved).
    fn forward(&self, x: &Tensor, small_maps_nchw: bool) -> Result<Tensor> {
        Ok(self.forward_then(x, small_maps_nchw, false)?.0)
    }

    /// [`Conv::forward`], and whether a ReLU was applied too: the Winograd path does it
    /// as it writes the outputs when `relu` asks (a pass over the map saved); libtorch's
    /// convolution leaves it to the caller.
    fn forward_then(
        &self,
        x: &Tensor,
        small_maps_nchw: bool,
        relu: bool,
    ) -> Result<(Tensor, bool)> {
        let size = x.size();
        if let (Some(wino), &[n, cin, h, w]) = (&self.wino, &size[..]) {
            if !x.requires_grad()
                && x.f_kind().ok() == Some(Kind::Float)
                && x.device() == tch::Device::Cpu
                && (self.wino_everywhere
                    || winograd_pays(n, cin, self.bias.size().first().copied().unwrap_or(0), h, w))
            {
                if let Some(wino) = wino.get() {
                    return Ok((wino.forward_then(x, relu)?, relu));
                }
            }
        }
        let (x, weight) = match &self.weight_nchw {
            Some(w) if small_maps_nchw && size[2].min(size[3]) < SMALL_MAP => {
                (x.f_contiguous()?, w)
            }
            Some(_) => (channels_last(x)?, &self.weight),
            None => (x.shallow_clone(), &self.weight),
        };
        let y = x.f_conv2d(
            weight,
            Some(&self.bias),
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            1,
        )?;
        Ok((y, false))
    }

    fn share(&self) -> Conv {
        Conv {
            weight: self.weight.shallow_clone(),
            weight_nchw: self.weight_nchw.as_ref().map(Tensor::shallow_clone),
            wino: self.wino.clone(),
            bias: self.bias.shallow_clone(),
            ..*self
        }
    }

    fn to_kind(&self, kind: Kind) -> Result<Conv> {
        Ok(Conv {
            weight: self.weight.f_to_kind(kind)?,
            weight_nchw: match &self.weight_nchw {
                Some(w) => Some(w.f_to_kind(kind)?),
                None => None,
            },
            // The transformed filters serve f32 only.
            wino: match &self.wino {
                Some(w) if kind == Kind::Float => Some(w.clone()),
                _ => None,
            },
            bias: self.bias.f_to_kind(kind)?,
            ..*self
        })
    }

    fn tensors(&self) -> [&Tensor; 2] {
        [&self.weight, &self.bias]
    }
}

/// One layer of a torchvision `features` stack.
#[derive(Debug)]
pub(crate) enum Layer {
    Conv(Conv),
    Relu,
    MaxPool {
        kernel: i64,
        stride: i64,
        ceil: bool,
    },
    Fire(Box<Fire>),
    BlurPool(BlurPool),
}

/// Blur-pooling: reflection padding, then a per-channel blur at a stride.
#[derive(Debug)]
pub(crate) struct BlurPool {
    /// `(channels, 1, k, k)`, one filter per channel (a grouped convolution).
    filt: Tensor,
    stride: i64,
    pad: i64,
}

impl BlurPool {
    fn new(p: &nn::Path, channels: i64, filter: i64, stride: i64, pad: i64) -> Result<BlurPool> {
        // Pascal's triangle's row `filter - 1`, outer product with itself, summing to one.
        let mut row = vec![1f64];
        for _ in 1..filter {
            let mut next = vec![1f64; row.len() + 1];
            for i in 1..row.len() {
                next[i] = row[i - 1] + row[i];
            }
            row = next;
        }
        let total: f64 = row.iter().sum::<f64>().powi(2);
        let values: Vec<f32> = row
            .iter()
            .flat_map(|a| row.iter().map(move |b| (a * b / total) as f32))
            .collect();
        // A buffer, not a trained weight; whole-model files store it, so it loads as such.
        let mut filt = p.f_zeros_no_train("filt", &[channels, 1, filter, filter])?;
        tch::no_grad(|| -> Result<()> {
            let blur = Tensor::f_from_slice(&values)?.f_view([1, 1, filter, filter])?;
            filt.f_copy_(&blur.f_expand([channels, 1, filter, filter], false)?)?;
            Ok(())
        })?;
        Ok(BlurPool { filt, stride, pad })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let channels =
            *self.filt.size().first().ok_or_else(|| {
                tch::TchError::Shape("a blur filter without dimensions".to_string())
            })?;
        Ok(x.f_reflection_pad2d([self.pad; 4])?.f_conv2d(
            &self.filt,
            None::<Tensor>,
            [self.stride; 2],
            [0, 0],
            [1, 1],
            channels,
        )?)
    }

    fn map<E>(
        &self,
        f: impl Fn(&Tensor) -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<BlurPool, E> {
        Ok(BlurPool {
            filt: f(&self.filt)?,
            ..*self
        })
    }
}

/// SqueezeNet's fire module: squeeze 1x1, then expand 1x1 and 3x3 side by side.
#[derive(Debug)]
pub(crate) struct Fire {
    squeeze: Conv,
    expand1x1: Conv,
    expand3x3: Conv,
}

#[derive(Debug)]
pub(crate) struct Trunk {
    layers: Vec<Layer>,
    taps: &'static [usize],
}

// `nn::Path::sub` (and `/`) panics only on a name with a dot; the names here have none.
fn fire(p: &nn::Path, cin: i64, squeeze: i64, expand: i64) -> Result<Layer> {
    Ok(Layer::Fire(Box::new(Fire {
        squeeze: Conv::new(&p.sub("squeeze"), cin, squeeze, 1, 1, 0)?,
        expand1x1: Conv::new(&p.sub("expand1x1"), squeeze, expand, 1, 1, 0)?,
        expand3x3: Conv::new(&p.sub("expand3x3"), squeeze, expand, 3, 1, 1)?,
    })))
}

impl Layer {
    /// The layer at torchvision index `index` of `features`, variables under `p`.
    fn new(p: &nn::Path, index: usize, spec: LayerSpec) -> Result<Layer> {
        let p = p.sub(index);
        Ok(match spec {
            LayerSpec::Conv {
                cin,
                cout,
                kernel,
                stride,
                padding,
            } => Layer::Conv(Conv::new(&p, cin, cout, kernel, stride, padding)?),
            LayerSpec::Relu => Layer::Relu,
            LayerSpec::MaxPool {
                kernel,
                stride,
                ceil,
            } => Layer::MaxPool {
                kernel,
                stride,
                ceil,
            },
            LayerSpec::Fire {
                cin,
                squeeze,
                expand,
            } => fire(&p, cin, squeeze, expand)?,
            LayerSpec::BlurPool {
                channels,
                filter,
                stride,
                pad,
            } => Layer::BlurPool(BlurPool::new(&p, channels, filter, stride, pad)?),
        })
    }

    /// The layer's output. `in_place` lets a ReLU overwrite its input: allowed when nothing
    /// else holds it (not a tap), as torchvision's `ReLU(inplace=True)`; it saves a pass
    /// over memory. `relu`: the ReLU that follows a convolution may be applied there, where
    /// its path can (then the second value is true and the caller skips that ReLU).
    fn forward_then(&self, x: Tensor, in_place: bool, relu: bool) -> Result<(Tensor, bool)> {
        Ok(match self {
            Layer::Conv(conv) => conv.forward_then(&x, true, relu)?,
            other => (other.forward_alone(x, in_place)?, false),
        })
    }

    /// Each layer on its own (see [`Layer::forward_then`]).
    fn forward_alone(&self, x: Tensor, in_place: bool) -> Result<Tensor> {
        Ok(match self {
            Layer::Conv(conv) => conv.forward(&x, true)?,
            Layer::Relu if in_place => {
                let mut x = x;
                let _ = x.f_relu_()?;
                x
            }
            Layer::Relu => x.f_relu()?,
            Layer::MaxPool {
                kernel,
                stride,
                ceil,
            } => channels_last(&x)?.f_max_pool2d(
                [*kernel; 2],
                [*stride; 2],
                [0, 0],
                [1, 1],
                *ceil,
            )?,
            Layer::Fire(f) => {
                let mut s = f.squeeze.forward(&x, false)?;
                let _ = s.f_relu_()?;
                let mut e1 = f.expand1x1.forward(&s, false)?;
                let (mut e3, done) = f.expand3x3.forward_then(&s, false, true)?;
                let _ = e1.f_relu_()?;
                if !done {
                    let _ = e3.f_relu_()?;
                }
                Tensor::f_cat(&[e1, e3], 1)?
            }
            Layer::BlurPool(b) => b.forward(&x)?,
        })
    }
}

impl Trunk {
    /// Builds the trunk's variables under `p` (libtorch's default initialisation until
    /// loaded; blur filters as the architecture defines them).
    pub(crate) fn try_new(p: &nn::Path, spec: &'static TrunkSpec) -> Result<Trunk> {
        let features = p.sub("features");
        let layers = spec
            .layers
            .iter()
            .enumerate()
            .map(|(i, &layer)| Layer::new(&features, i, layer))
            .collect::<Result<_>>()?;
        Ok(Trunk {
            layers,
            taps: spec.taps,
        })
    }

    /// Features at each tap, in order.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut outs = Vec::with_capacity(self.taps.len());
        // Weights are channels-last (see `to_channels_last`); so are the activations.
        let mut h = channels_last(x)?;
        let mut start = 0;
        for &end in self.taps {
            let slice = &self.layers[start..end];
            let mut skip_relu = false;
            for (i, layer) in slice.iter().enumerate() {
                if std::mem::take(&mut skip_relu) && matches!(layer, Layer::Relu) {
                    continue;
                }
                // The first layer of a slice reads the previous tap: never in place.
                let relu_next = matches!(slice.get(i + 1), Some(Layer::Relu));
                (h, skip_relu) = layer.forward_then(h, i > 0, relu_next)?;
            }
            outs.push(h.shallow_clone());
            start = end;
        }
        Ok(outs)
    }

    /// Another handle on the same weights (no copy), for another thread.
    pub(crate) fn share(&self) -> Trunk {
        infallible(self.map(|c| Ok(c.share()), |t| Ok(t.shallow_clone())))
    }

    /// A copy with weights in another precision.
    pub(crate) fn to_kind(&self, kind: Kind) -> Result<Trunk> {
        self.map(|c| c.to_kind(kind), |t| Ok(t.f_to_kind(kind)?))
    }

    /// The same layers with each convolution passed through `f` and each blur filter
    /// through `g`.
    fn map<E>(
        &self,
        f: impl Fn(&Conv) -> std::result::Result<Conv, E>,
        g: impl Fn(&Tensor) -> std::result::Result<Tensor, E>,
    ) -> std::result::Result<Trunk, E> {
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                Ok(match layer {
                    Layer::Conv(c) => Layer::Conv(f(c)?),
                    Layer::Relu => Layer::Relu,
                    Layer::MaxPool {
                        kernel,
                        stride,
                        ceil,
                    } => Layer::MaxPool {
                        kernel: *kernel,
                        stride: *stride,
                        ceil: *ceil,
                    },
                    Layer::Fire(fire) => Layer::Fire(Box::new(Fire {
                        squeeze: f(&fire.squeeze)?,
                        expand1x1: f(&fire.expand1x1)?,
                        expand3x3: f(&fire.expand3x3)?,
                    })),
                    Layer::BlurPool(b) => Layer::BlurPool(b.map(&g)?),
                })
            })
            .collect::<std::result::Result<Vec<Layer>, E>>()?;
        Ok(Trunk {
            layers,
            taps: self.taps,
        })
    }

    /// A copy with weights in channels-last layout (and kept in NCHW for small maps).
    pub(crate) fn to_channels_last(&self) -> Result<Trunk> {
        self.map(
            |c| {
                // Detached from the variables they were loaded into (which require
                // gradients): where a layout change is a view (1x1 filters, NCHW
                // copies), autograd would otherwise track the frozen weights and build
                // a graph through the trunk on every pass.
                let weight = c.weight.f_detach()?;
                Ok(Conv {
                    weight: channels_last(&weight)?,
                    weight_nchw: Some(weight.f_contiguous()?),
                    wino: c.wino.clone(),
                    bias: c.bias.f_detach()?,
                    ..*c
                })
            },
            |t| Ok(t.shallow_clone()),
        )
    }

    /// A copy whose 3x3 stride-1 convolutions also hold their filters in Winograd form
    /// (transformed at the first pass that takes the path, once per model:
    /// `winograd/lazy.rs`), used by passes without gradients on the CPU in f32 where
    /// [`winograd_pays`] (or, `everywhere`, on every size and channel count: for tests);
    /// weights on another device or kind are left as they are.
    pub(crate) fn with_winograd(&self, everywhere: bool) -> Result<Trunk> {
        self.map(
            |c| {
                // Only where `winograd_pays` can hold (from 64 input channels): the
                // transformed filters take 4 times the memory of the 3x3 weights.
                let wino = if c.is_3x3_same()
                    && c.weight
                        .size()
                        .get(1)
                        .is_some_and(|&cin| everywhere || cin >= WINOGRAD_MIN_CIN)
                    && c.weight.device() == tch::Device::Cpu
                    && c.weight.f_kind().ok() == Some(Kind::Float)
                {
                    Some(LazyWinograd::new(&c.weight, &c.bias))
                } else {
                    None
                };
                Ok(Conv {
                    weight: c.weight.shallow_clone(),
                    weight_nchw: c.weight_nchw.as_ref().map(Tensor::shallow_clone),
                    wino,
                    wino_everywhere: everywhere,
                    bias: c.bias.shallow_clone(),
                    ..*c
                })
            },
            |t| Ok(t.shallow_clone()),
        )
    }

    /// Whether any convolution holds Winograd filters.
    pub(crate) fn has_winograd(&self) -> bool {
        self.layers.iter().any(|layer| match layer {
            Layer::Conv(c) => c.wino.is_some(),
            Layer::Fire(f) => f.expand3x3.wino.is_some(),
            _ => false,
        })
    }

    /// Drops the NCHW copies of channels-last weights, so that every convolution uses the
    /// one copy an optimiser updates (training the trunk).
    pub(crate) fn single_layout(&self) -> Trunk {
        infallible(self.map(
            |c| {
                Ok(Conv {
                    weight: c.weight.shallow_clone(),
                    weight_nchw: None,
                    // Trained weights change: transformed copies would not follow them.
                    wino: None,
                    bias: c.bias.shallow_clone(),
                    ..*c
                })
            },
            |t| Ok(t.shallow_clone()),
        ))
    }

    /// Every weight tensor.
    pub(crate) fn tensors(&self) -> Vec<&Tensor> {
        let mut out = Vec::new();
        for layer in &self.layers {
            match layer {
                Layer::Conv(c) => out.extend(c.tensors()),
                Layer::Fire(f) => {
                    for c in [&f.squeeze, &f.expand1x1, &f.expand3x3] {
                        out.extend(c.tensors());
                    }
                }
                Layer::BlurPool(b) => out.push(&b.filt),
                Layer::Relu | Layer::MaxPool { .. } => {}
            }
        }
        out
    }

    /// Every weight tensor with its torchvision name (`features.{i}.weight`, and
    /// `features.{i}.squeeze.weight` etc. inside SqueezeNet's fire modules).
    pub(crate) fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut convs: Vec<(String, &Conv)> = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            match layer {
                Layer::Conv(c) => convs.push((format!("features.{i}"), c)),
                Layer::Fire(f) => {
                    convs.push((format!("features.{i}.squeeze"), &f.squeeze));
                    convs.push((format!("features.{i}.expand1x1"), &f.expand1x1));
                    convs.push((format!("features.{i}.expand3x3"), &f.expand3x3));
                }
                // Blur filters are fixed buffers, not trained weights.
                Layer::Relu | Layer::MaxPool { .. } | Layer::BlurPool(_) => {}
            }
        }
        convs
            .into_iter()
            .flat_map(|(prefix, c)| {
                [
                    (format!("{prefix}.weight"), &c.weight),
                    (format!("{prefix}.bias"), &c.bias),
                ]
            })
            .collect()
    }
}

fn infallible<T>(r: std::result::Result<T, std::convert::Infallible>) -> T {
    match r {
        Ok(t) => t,
        Err(never) => match never {},
    }
}

/// Input channels from which the Winograd path can pay (see `winograd_pays`).
const WINOGRAD_MIN_CIN: i64 = 64;

/// Multiply-adds of direct convolution per tap (`N H W Cin Cout`) from which a call is
/// large enough for the Winograd path to pay (see `winograd_pays`).
const WINOGRAD_MIN_WORK: i64 = 200_000_000;

/// Whether the Winograd path is faster than oneDNN's direct convolution for a 3x3 layer
/// of this shape (batch, channels in and out, map), as measured on the trunks' layers
/// (docs/benchmarks.md, "Winograd convolution"); not a stable interface.
#[doc(hidden)]
pub fn winograd_pays(n: i64, cin: i64, cout: i64, h: i64, w: i64) -> bool {
    // Measured with examples/conv_layers.rs (2 threads): 1.1x to 2.2x faster from 64 input
    // channels once a call holds 2e8 multiply-adds per tap (e.g. 64 -> 64 channels on
    // 64x64 maps at batch 16, 512 -> 512 on 8x8 at batch 16); smaller calls break even
    // or lose (0.85x to 1.03x: blocks of few tiles), and so do fewer channels (16 -> 64:
    // 0.53x) and maps under 8 px, where the 4x4 tiles are mostly padding.
    let work = [n, h, w, cin, cout]
        .iter()
        .try_fold(1i64, |acc, &v| acc.checked_mul(v.max(0)))
        .unwrap_or(i64::MAX);
    cin >= WINOGRAD_MIN_CIN && h.min(w) >= 8 && work >= WINOGRAD_MIN_WORK
}

/// The same values with channels-last (NHWC) strides, which oneDNN convolves and pools
/// without reordering.
pub(crate) fn channels_last(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?
        .f_contiguous()?
        .f_permute([0, 3, 1, 2])?)
}

//! The three trunks, built with torchvision's variable names (`features.{i}.weight`) so
//! that torchvision checkpoints load as they are. Each layer keeps its torchvision index;
//! `taps` are the reference's slice ends (exclusive), after which features are read.

mod alex;
mod squeeze;
mod vgg;

use tch::{Kind, Tensor, nn};

use crate::config::Net;

// Below this many pixels on the shorter side, a convolution runs on NCHW input with NCHW
// weights: oneDNN's channels-last kernels were about twice as slow on AlexNet's 3x3 and
// 7x7 maps at 64x64 input (while max-pooling stays much faster channels-last).
const SMALL_MAP: i64 = 12;

/// A convolution with its weights, which handles can share (see [`Trunk::share`]).
#[derive(Debug)]
pub(crate) struct Conv {
    weight: Tensor,
    // The same weights in NCHW layout when `weight` is channels-last, for small maps;
    // dropped when the trunk is trained (two copies could not both follow the optimiser).
    weight_nchw: Option<Tensor>,
    bias: Tensor,
    kernel: i64,
    stride: i64,
    padding: i64,
}

impl Conv {
    fn new(p: &nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64, padding: i64) -> Conv {
        let config = nn::ConvConfig {
            stride,
            padding,
            ..Default::default()
        };
        // The path names the variables (`features.{i}.weight`); libtorch's default
        // initialisation serves `TrunkWeights::RandomInit`.
        let c = nn::conv2d(p, cin, cout, kernel, config);
        Conv {
            weight: c.ws,
            weight_nchw: None,
            bias: c.bs.expect("convolutions have a bias"),
            kernel,
            stride,
            padding,
        }
    }

    /// `small_maps_nchw`: whether small maps may take the NCHW path (not inside fire
    /// modules, where the layout changes cost more than they saved).
    fn forward(&self, x: &Tensor, small_maps_nchw: bool) -> Tensor {
        let size = x.size();
        let (x, weight) = match &self.weight_nchw {
            Some(w) if small_maps_nchw && size[2].min(size[3]) < SMALL_MAP => (x.contiguous(), w),
            Some(_) => (channels_last(x), &self.weight),
            None => (x.shallow_clone(), &self.weight),
        };
        x.conv2d(
            weight,
            Some(&self.bias),
            [self.stride; 2],
            [self.padding; 2],
            [1, 1],
            1,
        )
    }

    fn share(&self) -> Conv {
        Conv {
            weight: self.weight.shallow_clone(),
            weight_nchw: self.weight_nchw.as_ref().map(Tensor::shallow_clone),
            bias: self.bias.shallow_clone(),
            ..*self
        }
    }

    fn to_kind(&self, kind: Kind) -> Conv {
        Conv {
            weight: self.weight.to_kind(kind),
            weight_nchw: self.weight_nchw.as_ref().map(|w| w.to_kind(kind)),
            bias: self.bias.to_kind(kind),
            ..*self
        }
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

fn conv(p: &nn::Path, cin: i64, cout: i64, kernel: i64, stride: i64, padding: i64) -> Layer {
    Layer::Conv(Conv::new(p, cin, cout, kernel, stride, padding))
}

fn fire(p: &nn::Path, cin: i64, squeeze: i64, expand: i64) -> Layer {
    Layer::Fire(Box::new(Fire {
        squeeze: Conv::new(&(p / "squeeze"), cin, squeeze, 1, 1, 0),
        expand1x1: Conv::new(&(p / "expand1x1"), squeeze, expand, 1, 1, 0),
        expand3x3: Conv::new(&(p / "expand3x3"), squeeze, expand, 3, 1, 1),
    }))
}

fn pool(kernel: i64, stride: i64, ceil: bool) -> Layer {
    Layer::MaxPool {
        kernel,
        stride,
        ceil,
    }
}

impl Layer {
    /// `in_place` lets a ReLU overwrite its input: allowed when nothing else holds it
    /// (not a tap), as torchvision's `ReLU(inplace=True)`; it saves a pass over memory.
    fn forward(&self, x: Tensor, in_place: bool) -> Tensor {
        match self {
            Layer::Conv(conv) => conv.forward(&x, true),
            Layer::Relu if in_place => {
                let mut x = x;
                let _ = x.relu_();
                x
            }
            Layer::Relu => x.relu(),
            Layer::MaxPool {
                kernel,
                stride,
                ceil,
            } => channels_last(&x).max_pool2d([*kernel; 2], [*stride; 2], [0, 0], [1, 1], *ceil),
            Layer::Fire(f) => {
                let mut s = f.squeeze.forward(&x, false);
                let _ = s.relu_();
                let mut e1 = f.expand1x1.forward(&s, false);
                let mut e3 = f.expand3x3.forward(&s, false);
                let _ = e1.relu_();
                let _ = e3.relu_();
                Tensor::cat(&[e1, e3], 1)
            }
        }
    }

    /// Output side for an input side, with libtorch's arithmetic; None when the layer
    /// would reject the input.
    fn out_side(&self, side: i64) -> Option<i64> {
        let conv_out = |side: i64, kernel: i64, stride: i64, padding: i64| {
            (side + 2 * padding - kernel).div_euclid(stride) + 1
        };
        let out = match self {
            Layer::Conv(c) => conv_out(side, c.kernel, c.stride, c.padding),
            Layer::Relu => side,
            Layer::MaxPool {
                kernel,
                stride,
                ceil,
            } => {
                let extra = if *ceil { stride - 1 } else { 0 };
                let mut out = (side - kernel + extra).div_euclid(*stride) + 1;
                // A window may not start in the padding (here: past the input).
                if *ceil && (out - 1) * stride >= side {
                    out -= 1;
                }
                out
            }
            Layer::Fire(_) => {
                let s = conv_out(side, 1, 1, 0);
                conv_out(s, 3, 1, 1).min(s)
            }
        };
        (out >= 1).then_some(out)
    }
}

impl Trunk {
    /// Builds the trunk's variables under `p` (randomly initialised until loaded).
    pub(crate) fn new(p: &nn::Path, net: Net) -> Trunk {
        let features = p / "features";
        match net {
            Net::Alex => alex::build(&features),
            Net::Vgg => vgg::build(&features),
            Net::Squeeze => squeeze::build(&features),
        }
    }

    /// Features at each tap, in order.
    pub(crate) fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        let mut outs = Vec::with_capacity(self.taps.len());
        // Weights are channels-last (see `to_channels_last`); so are the activations.
        let mut h = channels_last(x);
        let mut start = 0;
        for &end in self.taps {
            for (i, layer) in self.layers[start..end].iter().enumerate() {
                // The first layer of a slice reads the previous tap: never in place.
                h = layer.forward(h, i > 0);
            }
            outs.push(h.shallow_clone());
            start = end;
        }
        outs
    }

    /// Another handle on the same weights (no copy), for another thread.
    pub(crate) fn share(&self) -> Trunk {
        self.map(Conv::share)
    }

    /// A copy with weights in another precision.
    pub(crate) fn to_kind(&self, kind: Kind) -> Trunk {
        self.map(|c| c.to_kind(kind))
    }

    fn map(&self, f: impl Fn(&Conv) -> Conv) -> Trunk {
        let layers = self
            .layers
            .iter()
            .map(|layer| match layer {
                Layer::Conv(c) => Layer::Conv(f(c)),
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
                    squeeze: f(&fire.squeeze),
                    expand1x1: f(&fire.expand1x1),
                    expand3x3: f(&fire.expand3x3),
                })),
            })
            .collect();
        Trunk {
            layers,
            taps: self.taps,
        }
    }

    /// A copy with weights in channels-last layout (and kept in NCHW for small maps).
    pub(crate) fn to_channels_last(&self) -> Trunk {
        self.map(|c| Conv {
            weight: channels_last(&c.weight),
            weight_nchw: Some(c.weight.contiguous()),
            bias: c.bias.shallow_clone(),
            ..*c
        })
    }

    /// Drops the NCHW copies of channels-last weights, so that every convolution uses the
    /// one copy an optimiser updates (training the trunk).
    pub(crate) fn single_layout(&self) -> Trunk {
        self.map(|c| Conv {
            weight: c.weight.shallow_clone(),
            weight_nchw: None,
            bias: c.bias.shallow_clone(),
            ..*c
        })
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
                Layer::Relu | Layer::MaxPool { .. } => {}
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

    /// Whether an input side survives every layer up to the last tap.
    fn accepts(&self, mut side: i64) -> bool {
        let last = *self.taps.last().expect("a trunk has taps");
        for layer in &self.layers[..last] {
            match layer.out_side(side) {
                Some(s) => side = s,
                None => return false,
            }
        }
        true
    }
}

/// The smallest side the trunk accepts, from its layers' arithmetic.
pub(crate) fn min_side(net: Net) -> i64 {
    use std::sync::OnceLock;
    static MIN: [OnceLock<i64>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    *MIN[net as usize].get_or_init(|| {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let trunk = Trunk::new(&vs.root(), net);
        (1..=4096)
            .find(|&side| trunk.accepts(side))
            .expect("every trunk accepts 4096 px")
    })
}

/// The same values with channels-last (NHWC) strides, which oneDNN convolves and pools
/// without reordering.
pub(crate) fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

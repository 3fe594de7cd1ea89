//! The three trunks. Each trunk file holds everything about its network as one
//! [`TrunkSpec`]: its layers as torchvision lays out `features` (so torchvision
//! checkpoints load as they are), the reference's taps and their channels,
//! torchvision's published checkpoint, the embedded linear heads, and how torchvision
//! initialises it untrained. Adding a trunk is one file and one arm of [`Net::spec`].

mod alex;
mod geometry;
mod layers;
mod squeeze;
mod vgg;

pub(crate) use geometry::Geometry;
pub(crate) use layers::Trunk;

use crate::config::Net;

/// One layer of a torchvision `features` stack, as data.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LayerSpec {
    /// A convolution followed by nothing (the ReLU is its own layer, as in torchvision).
    Conv {
        cin: i64,
        cout: i64,
        kernel: i64,
        stride: i64,
        padding: i64,
    },
    Relu,
    MaxPool {
        kernel: i64,
        stride: i64,
        ceil: bool,
    },
    /// SqueezeNet's fire module: squeeze 1x1, then expand 1x1 and 3x3 side by side.
    Fire {
        cin: i64,
        squeeze: i64,
        expand: i64,
    },
}

/// How torchvision initialises the untrained network (the reference's "scratch" runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Init {
    /// torch's layer defaults: uniform within 1/sqrt(fan_in) for weights and biases.
    TorchDefault,
    /// Kaiming-normal weights (fan-out, ReLU gain), zero biases.
    KaimingNormalFanOut,
    /// Kaiming-uniform weights (fan-in, ReLU gain), zero biases.
    KaimingUniform,
}

/// A torchvision ImageNet checkpoint as published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    pub(crate) file_name: &'static str,
    pub(crate) sha256: &'static str,
    pub(crate) bytes: u64,
}

/// Everything about one trunk.
#[derive(Debug)]
pub(crate) struct TrunkSpec {
    /// torchvision's `features`, index by index.
    pub(crate) layers: &'static [LayerSpec],
    /// The reference's slice ends (exclusive): features are read after these layers.
    pub(crate) taps: &'static [usize],
    /// Channels at each tap (the linear heads' inputs).
    pub(crate) channels: &'static [i64],
    /// torchvision's ImageNet checkpoint.
    pub(crate) torchvision: Published,
    /// The reference's linear heads, v0.1 and v0.0 (safetensors, from `weights/`).
    pub(crate) heads_v0_1: &'static [u8],
    pub(crate) heads_v0_0: &'static [u8],
    /// torchvision's initialisation of the untrained network.
    pub(crate) init: Init,
}

impl Net {
    /// Everything about this trunk.
    pub(crate) fn spec(self) -> &'static TrunkSpec {
        match self {
            Net::Alex => &alex::SPEC,
            Net::Vgg => &vgg::SPEC,
            Net::Squeeze => &squeeze::SPEC,
        }
    }
}

impl LayerSpec {
    /// Output side for an input side, with libtorch's arithmetic; None when the layer
    /// would reject the input.
    fn out_side(&self, side: i64) -> Option<i64> {
        let conv_out = |side: i64, kernel: i64, stride: i64, padding: i64| {
            (side + 2 * padding - kernel).div_euclid(stride) + 1
        };
        let out = match *self {
            LayerSpec::Conv {
                kernel,
                stride,
                padding,
                ..
            } => conv_out(side, kernel, stride, padding),
            LayerSpec::Relu => side,
            LayerSpec::MaxPool {
                kernel,
                stride,
                ceil,
            } => {
                let extra = if ceil { stride - 1 } else { 0 };
                let mut out = (side - kernel + extra).div_euclid(stride) + 1;
                // A window may not start in the padding (here: past the input).
                if ceil && (out - 1) * stride >= side {
                    out -= 1;
                }
                out
            }
            LayerSpec::Fire { .. } => {
                let s = conv_out(side, 1, 1, 0);
                conv_out(s, 3, 1, 1).min(s)
            }
        };
        (out >= 1).then_some(out)
    }

    /// Output channels for input channels.
    fn out_channels(&self, cin: i64) -> i64 {
        match *self {
            LayerSpec::Conv { cout, .. } => cout,
            LayerSpec::Fire { expand, .. } => 2 * expand,
            LayerSpec::Relu | LayerSpec::MaxPool { .. } => cin,
        }
    }
}

impl TrunkSpec {
    /// Whether an input side survives every layer up to the last tap.
    fn accepts(&self, mut side: i64) -> bool {
        let last = self.taps.last().copied().unwrap_or(0);
        for layer in &self.layers[..last] {
            match layer.out_side(side) {
                Some(s) => side = s,
                None => return false,
            }
        }
        true
    }

    /// The smallest side the trunk accepts, from its layers' arithmetic.
    pub(crate) fn min_side(&self) -> i64 {
        (1..=i64::from(u16::MAX))
            .find(|&side| self.accepts(side))
            .unwrap_or(i64::MAX)
    }

    /// Channels at each tap, from the layers (checked equal to `channels` in tests).
    #[cfg(test)]
    fn tap_channels(&self) -> Vec<i64> {
        let mut c = 3;
        let mut out = Vec::new();
        let mut start = 0;
        for &end in self.taps {
            for layer in &self.layers[start..end] {
                c = layer.out_channels(c);
            }
            out.push(c);
            start = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_follow_from_the_layers() {
        for net in Net::ALL {
            assert_eq!(net.spec().tap_channels(), net.spec().channels, "{net}");
        }
    }

    #[test]
    fn minimum_sides_are_the_references() {
        // Checked with the reference package (../shared/REFERENCE.md).
        let got: Vec<i64> = Net::ALL.iter().map(|n| n.spec().min_side()).collect();
        assert_eq!(got, [31, 16, 17]);
    }
}

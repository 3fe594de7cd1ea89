//! The trunks as data: each trunk file holds everything about its network as one
//! [`TrunkSpec`]: the names it is parsed from, its layers as torchvision lays out
//! `features` (so torchvision checkpoints load as they are), the reference's taps and
//! their channels, its published checkpoint, the embedded linear heads, and how
//! torchvision initialises it untrained. Nothing here runs a layer (that is
//! `src/layers/`) or raises an error.
//!
//! Adding a trunk is its file here (with its heads in `weights/v0.1/` and `weights/v0.0/`),
//! its variant of [`Net`] (listed in `Net::ALL`, `src/config.rs`) and its arm of
//! [`Net::spec`]. Its name and parsing, channels, smallest input, geometry for tiling,
//! published file, download and cache place, embedded heads, the trunks the CLI's
//! `weights` commands and `lpips info` list, and the error messages that list the
//! trunks all follow from the spec.
//!
//! The shift-tolerant trunks of ST-LPIPS (`alex_st.rs`, `vgg_st.rs`) are specs of the
//! same kind whose published file holds the whole model (trunk, heads and scaling); see
//! [`spec`] for the trunk of a [`Variant`].

mod alex;
mod alex_st;
mod geometry;
mod published;
mod squeeze;
mod vgg;
mod vgg_st;

pub(crate) use geometry::Geometry;
pub use published::{PublishedFile, TORCHVISION_BASE_URL, hub_checkpoint_dir};

use std::fmt;

use crate::config::{Net, Variant};

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
    /// Blur-pooling (anti-aliased downsampling): reflection padding of `pad` on every
    /// side, then a per-channel `filter x filter` binomial blur (the outer product of
    /// Pascal's triangle's row, summing to one) at `stride`. Its filter is a buffer
    /// (`filt`, shape `(channels, 1, filter, filter)`) that whole-model files store.
    BlurPool {
        channels: i64,
        filter: i64,
        stride: i64,
        pad: i64,
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

/// A weight file as published: torchvision's ImageNet checkpoint of the trunk, or the
/// authors' whole model (the public view, with its URL and cache place: [`PublishedFile`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Published {
    pub(crate) file_name: &'static str,
    pub(crate) sha256: &'static str,
    pub(crate) bytes: u64,
}

/// What a trunk's published file holds, and the heads that go with it.
#[derive(Debug)]
pub(crate) enum Holds {
    /// The trunk alone (torchvision's `features.*` names); the reference's linear heads,
    /// v0.1 and v0.0 (safetensors, from `weights/`), are embedded.
    Trunk {
        heads_v0_1: &'static [u8],
        heads_v0_0: &'static [u8],
    },
    /// The whole model as a `lpips.LPIPS`-style state dict (`net.slice{k}.{i}.*`,
    /// `lin{k}.model.1.weight`, `scaling_layer.*`), published by its authors at
    /// `base_url` + file name, and cached in `cache_subfolder` of the hub cache's
    /// `checkpoints`.
    WholeModel {
        base_url: &'static str,
        cache_subfolder: &'static str,
    },
}

/// Everything about one trunk.
#[derive(Debug)]
pub(crate) struct TrunkSpec {
    /// The names it is parsed from, lowercase; the first is its name (the reference's and
    /// the CLI's, [`Net::name`]).
    pub(crate) names: &'static [&'static str],
    /// torchvision's `features`, index by index.
    pub(crate) layers: &'static [LayerSpec],
    /// The reference's slice ends (exclusive): features are read after these layers.
    pub(crate) taps: &'static [usize],
    /// Channels at each tap (the linear heads' inputs).
    pub(crate) channels: &'static [i64],
    /// The published weight file.
    pub(crate) published: Published,
    /// What that file holds (and the embedded heads of a trunk-only file).
    pub(crate) holds: Holds,
    /// How the untrained network is initialised.
    pub(crate) init: Init,
    /// Batch x height x width up to which both inputs of a comparison share one trunk
    /// pass (it halves per-operation overhead and fills the Winograd blocks; larger
    /// inputs go separately, which measured faster where activations then stay in
    /// cache): docs/benchmarks.md.
    pub(crate) joint_pass_pixels: i64,
}

/// The trunk of a variant: the plain ones for [`Variant::Lpips`], the shift-tolerant
/// alex and vgg for [`Variant::ShiftTolerant`] (`None` for squeeze: none was published).
pub(crate) fn spec(net: Net, variant: Variant) -> Option<&'static TrunkSpec> {
    match (variant, net) {
        (Variant::Lpips, net) => Some(net.spec()),
        (Variant::ShiftTolerant, Net::Alex) => Some(&alex_st::SPEC),
        (Variant::ShiftTolerant, Net::Vgg) => Some(&vgg_st::SPEC),
        (Variant::ShiftTolerant, _) => None,
    }
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

    /// The name the reference and the CLI use: `alex`, `vgg` or `squeeze`.
    pub fn name(self) -> &'static str {
        self.spec().names.first().copied().unwrap_or_default()
    }

    /// Channels of each tapped layer.
    pub fn channels(self) -> &'static [i64] {
        self.spec().channels
    }

    /// The smallest height and width the trunk accepts (alex 31, vgg 16, squeeze 17),
    /// computed from its layers.
    pub fn min_side(self) -> i64 {
        self.spec().min_side()
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The trunks' names, `alex, vgg, squeeze`, as one string.
pub(crate) fn all_names() -> &'static str {
    static NAMES: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| Net::ALL.map(Net::name).join(", "))
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
            // Reflection padding needs more input than padding on each side.
            LayerSpec::BlurPool {
                filter,
                stride,
                pad,
                ..
            } if side > pad => conv_out(side, filter, stride, pad),
            LayerSpec::BlurPool { .. } => return None,
        };
        (out >= 1).then_some(out)
    }

    /// Output channels for input channels.
    fn out_channels(&self, cin: i64) -> i64 {
        match *self {
            LayerSpec::Conv { cout, .. } => cout,
            LayerSpec::Fire { expand, .. } => 2 * expand,
            LayerSpec::Relu | LayerSpec::MaxPool { .. } | LayerSpec::BlurPool { .. } => cin,
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

    #[test]
    fn shift_tolerant_channels_follow_from_the_layers() {
        for net in [Net::Alex, Net::Vgg] {
            let spec = spec(net, Variant::ShiftTolerant).unwrap();
            assert_eq!(spec.tap_channels(), spec.channels, "{net}");
            assert_eq!(spec.channels, net.channels(), "{net}");
        }
        assert!(spec(Net::Squeeze, Variant::ShiftTolerant).is_none());
    }
}

use std::fmt;

use serde::{Deserialize, Serialize};

/// The pretrained trunk whose features LPIPS compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    /// AlexNet (5 taps); the reference's default and the best forward metric.
    #[default]
    Alex,
    /// VGG16 (5 taps); closest to a "perceptual loss" in the usual sense.
    Vgg,
    /// SqueezeNet 1.1 (7 taps); the smallest.
    Squeeze,
}

impl Net {
    /// All trunks, in the reference's order (a new trunk: its variant here and in
    /// `Net::spec` in `src/trunk/mod.rs`, and its file in `src/trunk/`; the scripts'
    /// table, `scripts/nets.py`, lists the same names).
    pub const ALL: [Net; 3] = [Net::Alex, Net::Vgg, Net::Squeeze];
}

/// Which member of the LPIPS family: the original metric, or its shift-tolerant variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// LPIPS (Zhang et al., CVPR 2018): torchvision's ImageNet trunk with the reference's
    /// linear heads. The default.
    #[default]
    Lpips,
    /// ST-LPIPS (Ghildyal and Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV
    /// 2022): anti-aliased AlexNet or VGG16 trunks (blur-pooling with reflection padding,
    /// stride-1 max-pools, AlexNet's first convolution at stride 1), trained with their
    /// heads as one model; published for `alex` and `vgg` only.
    ShiftTolerant,
}

impl Variant {
    /// `"lpips"` or `"shift-tolerant"`, as the CLI spells them.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Lpips => "lpips",
            Variant::ShiftTolerant => "shift-tolerant",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Release of the metric, as in the reference's `version` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Version {
    /// v0.1: inputs pass the scaling layer first; heads trained that way. The default.
    #[default]
    #[serde(rename = "v0.1")]
    V0_1,
    /// v0.0: the original release, without the input scaling layer.
    #[serde(rename = "v0.0")]
    V0_0,
}

impl Version {
    /// `"v0.1"` or `"v0.0"`.
    pub fn name(self) -> &'static str {
        match self {
            Version::V0_1 => "v0.1",
            Version::V0_0 => "v0.0",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the per-channel squared differences are weighed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Heads {
    /// The learned 1x1 linear heads of the chosen [`Version`] (the "lin" metric).
    #[default]
    Learned,
    /// No heads: channels summed, layers weighted equally (the reference's `lpips=False`
    /// baseline).
    None,
}

/// The linear-head choice as the CLI spells it: `v0.1`, `v0.0` or `none`.
///
/// `v0.0` also drops the input scaling (the reference's `version='0.0'`); `none` keeps
/// the v0.1 scaling with no heads (the reference's `lpips=False`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Lin {
    /// Learned heads v0.1 with input scaling. The default.
    #[default]
    #[serde(rename = "v0.1")]
    V0_1,
    /// Learned heads v0.0 without input scaling.
    #[serde(rename = "v0.0")]
    V0_0,
    /// No heads (uncalibrated baseline), v0.1 input scaling.
    #[serde(rename = "none")]
    None,
}

impl Lin {
    /// The version and heads this choice stands for.
    pub fn split(self) -> (Version, Heads) {
        match self {
            Lin::V0_1 => (Version::V0_1, Heads::Learned),
            Lin::V0_0 => (Version::V0_0, Heads::Learned),
            Lin::None => (Version::V0_1, Heads::None),
        }
    }
}

/// The value range of input tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum InputRange {
    /// Values in [-1, 1], as the reference expects by default.
    #[default]
    #[serde(rename = "-1..1")]
    MinusOneToOne,
    /// Values in [0, 1]; mapped to [-1, 1] first (the reference's `normalize=True`).
    #[serde(rename = "0..1")]
    ZeroToOne,
}

/// What the trunk is fed, whatever range the inputs were given in: the reference's [-1, 1]
/// (the default), or a published protocol's deviation from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedRange {
    /// Images reach the model in [-1, 1]: the reference's (`lpips_2dirs.py`: 8-bit
    /// `v / 127.5 - 1`), torchmetrics' with `normalize=True`, and pyiqa's.
    #[default]
    MinusOneToOne,
    /// A compatibility switch: images reach the model as [0, 1] values (8-bit `v / 255`)
    /// although it expects [-1, 1], as 3D Gaussian Splatting's `metrics.py` feeds
    /// `lpipsPyTorch`. Only for comparing with numbers published that way.
    ZeroToOne,
}

/// Numeric precision of the trunk (normalisation, heads and averages stay in f32, so
/// that sums of squares cannot overflow half precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision: the reference's, and the default.
    #[default]
    F32,
    /// Half precision (for GPUs).
    F16,
    /// bfloat16 (GPUs and recent CPUs).
    BF16,
}

impl Precision {
    pub(crate) fn kind(self) -> tch::Kind {
        match self {
            Precision::F32 => tch::Kind::Float,
            Precision::F16 => tch::Kind::Half,
            Precision::BF16 => tch::Kind::BFloat16,
        }
    }
}

/// What to do when the two images of a pair differ in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Refuse: [`LpipsError::SizeMismatch`](crate::LpipsError::SizeMismatch). The default: LPIPS compares aligned pixels.
    #[default]
    Error,
    /// Resize the second image to the first one's height and width, bilinearly
    /// (half-pixel centres, antialiased when shrinking), on the [-1, 1] values.
    SecondToFirst,
}

impl InputRange {
    /// The declared bounds.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            InputRange::MinusOneToOne => (-1.0, 1.0),
            InputRange::ZeroToOne => (0.0, 1.0),
        }
    }
}

/// The settings of the model that computed a set of [`Features`](crate::Features): its net, variant and
/// version decide the features (two models that agree on them make the same features);
/// heads and spatial output are recorded for the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelId {
    /// The trunk.
    pub net: Net,
    /// Plain LPIPS or ST-LPIPS.
    pub variant: Variant,
    /// The release (v0.0 feeds the trunk without the scaling layer).
    pub version: Version,
    /// Learned heads or none.
    pub heads: Heads,
    /// Whether the model returns maps.
    pub spatial: bool,
}

impl ModelId {
    /// Whether features of `self`'s model can be compared by `other`'s: the same trunk
    /// fed the same way.
    pub fn same_features(&self, other: &ModelId) -> bool {
        (self.net, self.variant, self.version) == (other.net, other.variant, other.version)
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let heads = match self.heads {
            Heads::Learned => "learned heads",
            Heads::None => "no heads",
        };
        let output = if self.spatial { "spatial" } else { "scalar" };
        write!(
            f,
            "{} {} {} ({heads}, {output})",
            self.variant, self.net, self.version
        )
    }
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::error::{LpipsError, Result};

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
    /// All trunks, in the reference's order.
    pub const ALL: [Net; 3] = [Net::Alex, Net::Vgg, Net::Squeeze];

    /// The name the reference and the CLI use: `alex`, `vgg` or `squeeze`.
    pub fn name(self) -> &'static str {
        match self {
            Net::Alex => "alex",
            Net::Vgg => "vgg",
            Net::Squeeze => "squeeze",
        }
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

    /// The smallest height and width the trunk of a [`Variant`] accepts, computed from its
    /// layers (shift-tolerant: alex 21, vgg 18); an error for a variant without this trunk.
    pub fn min_side_of(self, variant: Variant) -> Result<i64> {
        Ok(crate::trunk::spec(self, variant)?.min_side())
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Net {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(Net::Alex),
            "vgg" | "vgg16" => Ok(Net::Vgg),
            "squeeze" | "squeezenet" | "squeezenet1_1" => Ok(Net::Squeeze),
            _ => Err(LpipsError::Parse {
                what: "net",
                value: s.to_string(),
                expected: "alex, vgg, squeeze",
            }),
        }
    }
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

impl FromStr for Variant {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lpips" | "plain" => Ok(Variant::Lpips),
            "shift-tolerant" | "shift_tolerant" | "st" | "st-lpips" | "stlpips" => {
                Ok(Variant::ShiftTolerant)
            }
            _ => Err(LpipsError::Parse {
                what: "variant",
                value: s.to_string(),
                expected: "lpips, shift-tolerant",
            }),
        }
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

impl FromStr for Lin {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "v0.1" | "0.1" => Ok(Lin::V0_1),
            "v0.0" | "0.0" => Ok(Lin::V0_0),
            "none" => Ok(Lin::None),
            _ => Err(LpipsError::Parse {
                what: "lin",
                value: s.to_string(),
                expected: "v0.1, v0.0, none",
            }),
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

impl FromStr for FeedRange {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minus-one-to-one" | "reference" => Ok(FeedRange::MinusOneToOne),
            "zero-to-one" => Ok(FeedRange::ZeroToOne),
            _ => Err(LpipsError::Parse {
                what: "pixel range",
                value: s.to_string(),
                expected: "minus-one-to-one, zero-to-one",
            }),
        }
    }
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

impl FromStr for Precision {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "fp32" | "float" => Ok(Precision::F32),
            "f16" | "fp16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::BF16),
            _ => Err(LpipsError::Parse {
                what: "precision",
                value: s.to_string(),
                expected: "f32, f16, bf16",
            }),
        }
    }
}

/// What to do when the two images of a pair differ in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Refuse: [`LpipsError::SizeMismatch`]. The default: LPIPS compares aligned pixels.
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

/// Parses `cpu`, `cuda`, `cuda:N`, `mps` or `auto` (CUDA when available, else CPU), and
/// checks that the device exists.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match s {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        "mps" => Device::Mps,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => Device::Cuda(index),
            _ => {
                return Err(LpipsError::Parse {
                    what: "device",
                    value: s.to_string(),
                    expected: "cpu, cuda, cuda:N, mps, auto",
                });
            }
        },
    };
    check_device(device)
}

/// The device itself when this process can use it, else
/// [`LpipsError::DeviceUnavailable`] saying why (instead of a panic inside libtorch).
pub(crate) fn check_device(device: Device) -> Result<Device> {
    let unavailable = |reason: String| LpipsError::DeviceUnavailable {
        device: match device {
            Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}").to_lowercase(),
        },
        reason,
    };
    match device {
        Device::Cpu => Ok(device),
        Device::Cuda(index) => {
            let count = tch::Cuda::device_count().max(0) as usize;
            if count == 0 {
                Err(unavailable(if crate::info::cuda_library_loaded() {
                    "libtorch has CUDA support but sees no CUDA device (driver, \
                     CUDA_VISIBLE_DEVICES?)"
                        .into()
                } else {
                    "this process has no CUDA support loaded (a CPU-only libtorch, or \
                     libtorch_cuda not linked: see the README's set-up step)"
                        .into()
                }))
            } else if index >= count {
                Err(unavailable(format!("only {count} CUDA device(s)")))
            } else {
                Ok(device)
            }
        }
        Device::Mps if tch::utils::has_mps() => Ok(device),
        Device::Mps => Err(unavailable("this libtorch has no MPS support".into())),
        other => Err(unavailable(format!("{other:?} is not supported"))),
    }
}

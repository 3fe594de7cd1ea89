//! The configuration's names as the CLI, files and settings spell them: `FromStr` for
//! the enums of `config.rs`, whose errors are [`LpipsError::Parse`]. Kept apart from
//! `config.rs` so that the configuration depends on nothing and the error type may name
//! it.

use std::str::FromStr;

use crate::config::{FeedRange, Lin, Net, Precision, Variant};
use crate::error::{LpipsError, Result};

impl FromStr for Net {
    type Err = LpipsError;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        Net::ALL
            .into_iter()
            .find(|net| net.spec().names.contains(&lower.as_str()))
            .ok_or_else(|| LpipsError::Parse {
                what: "net",
                value: s.to_string(),
                expected: crate::trunk::all_names(),
            })
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

//! Inputs on their way in: converted to the canonical `N x 3 x H x W` form, checked
//! (shape, finite values, declared range, the trunk's minimum size), paired (sizes,
//! batch broadcasting) and moved to the model's device.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use tch::Tensor;

use super::Lpips;
use crate::config::{FeedRange, InputRange, Resize};
use crate::error::{LpipsError, Result};
use crate::input::ImageInput;

// Values may stray this far outside their declared range (a tenth of its width) before
// the range check refuses them.
const RANGE_SLACK: f64 = 0.1;
// Values in a batch from which "no negative value at all" in data declared [-1, 1] is
// worth a warning (a few are all-bright by chance; a real image is not).
const ZERO_TO_ONE_HINT_VALUES: i64 = 3 * 32 * 32;

static WARNED_ZERO_TO_ONE: AtomicBool = AtomicBool::new(false);

impl Lpips {
    /// Converts, checks and moves an input to the device: `N x 3 x H x W` f32 in [-1, 1].
    pub(crate) fn canonical(&self, input: &impl ImageInput, which: &'static str) -> Result<Tensor> {
        let c = input.to_canonical(self.range).map_err(|e| match e {
            // The conversion names no side; the error does.
            LpipsError::BadShape { shape, .. } => LpipsError::BadShape { which, shape },
            e => e,
        })?;
        let x = c.tensor;
        let shape = x.size();
        if shape.len() != 4 || shape[1] != 3 {
            return Err(LpipsError::BadShape { which, shape });
        }
        if shape[0] == 0 {
            return Err(LpipsError::EmptyBatch);
        }
        if shape[2] == 0 || shape[3] == 0 {
            return Err(LpipsError::TooSmall {
                net: self.net,
                min: self.min_side(),
                height: shape[2],
                width: shape[3],
            });
        }
        // One pass for both bounds; NaN propagates into them.
        let (lo, hi) = tch::no_grad(|| -> Result<(f64, f64)> {
            let (lo, hi) = x.f_aminmax(None, false)?;
            Ok((lo.f_double_value(&[])?, hi.f_double_value(&[])?))
        })?;
        if !lo.is_finite() || !hi.is_finite() {
            return Err(LpipsError::NonFinite { which });
        }
        // An optimised image (it requires gradients) may legitimately overshoot.
        let slack = 2.0 * RANGE_SLACK;
        let outside = lo < -1.0 - slack || hi > 1.0 + slack;
        if self.check_range && outside && !x.requires_grad() {
            let (dlo, dhi) = c.declared.bounds();
            let back = |v: f64| dlo + (v + 1.0) / 2.0 * (dhi - dlo);
            return Err(LpipsError::OutOfRange {
                which,
                declared: c.declared,
                lo: dlo,
                hi: dhi,
                min: back(lo),
                max: back(hi),
            });
        }
        if !c.from_pixels
            && c.declared == InputRange::MinusOneToOne
            && lo >= 0.0
            && x.numel() as i64 >= ZERO_TO_ONE_HINT_VALUES
            && !WARNED_ZERO_TO_ONE.swap(true, Ordering::Relaxed)
        {
            log::warn!(
                "input {which} was declared in [-1, 1] but holds no negative value at all \
                 ({} values, min {lo:.4}): if it is [0, 1] data, declare it \
                 (InputRange::ZeroToOne) or map it (2x - 1); this warning is shown once",
                x.numel()
            );
        }
        let x = match self.feed {
            FeedRange::MinusOneToOne => x,
            FeedRange::ZeroToOne => x.f_add_scalar(1.0)?.f_div_scalar(2.0)?,
        };
        Ok(x.f_to_device(self.device)?)
    }

    pub(crate) fn canonical_pair(
        &self,
        a: impl ImageInput,
        b: impl ImageInput,
    ) -> Result<(Tensor, Tensor)> {
        let (file_a, file_b) = (
            a.source_file().map(Path::to_path_buf),
            b.source_file().map(Path::to_path_buf),
        );
        let a = self.canonical(&a, "in0")?;
        let b = self.canonical(&b, "in1")?;
        let (sa, sb) = (a.size(), b.size());
        let b = if sa[2..] != sb[2..] {
            match self.resize {
                Resize::Error => {
                    return Err(LpipsError::SizeMismatch {
                        a: (sa[2], sa[3]),
                        b: (sb[2], sb[3]),
                        file_a,
                        file_b,
                    });
                }
                Resize::SecondToFirst => {
                    let shrinking = sb[2] > sa[2] || sb[3] > sa[3];
                    if shrinking {
                        b.f_internal_upsample_bilinear2d_aa([sa[2], sa[3]], false, None, None)?
                    } else {
                        b.f_upsample_bilinear2d([sa[2], sa[3]], false, None, None)?
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

    pub(crate) fn check_size(&self, x: &Tensor) -> Result<()> {
        let (h, w) = (x.size()[2], x.size()[3]);
        let min = self.min_side();
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
}

/// Checks that each side holds one image.
pub(crate) fn single(a: &Tensor, b: &Tensor) -> Result<()> {
    let (na, nb) = (a.size()[0], b.size()[0]);
    if na != 1 || nb != 1 {
        return Err(LpipsError::NotSingle { a: na, b: nb });
    }
    Ok(())
}

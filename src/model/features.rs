//! The reference's `normalize_tensor`: each tap's features scaled to unit length along
//! channels, kept per image so they can be compared many times.

use tch::{Kind, Tensor};

use crate::error::{LpipsError, Result};

// The reference's epsilon in unit normalisation.
const EPS: f64 = 1e-10;
// Sums of squares below this are raised to it before the square root, so that an
// all-zero feature vector has a finite (zero) gradient instead of the reference's NaN.
// Values are unchanged: such vectors normalise to zero either way.
const MIN_SQUARED_NORM: f64 = 1e-30;

/// Unit length along channels, with the reference's epsilon.
pub(crate) fn normalize_tensor(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .f_square()?
        .f_sum_dim_intlist(1, true, None::<Kind>)?
        .f_clamp_min(MIN_SQUARED_NORM)?
        .f_sqrt()?;
    Ok(x.f_div(&norm.f_add_scalar(EPS)?)?)
}

/// A batch of images' unit-normalised features at each tap: computed once with
/// [`Lpips::features`](crate::Lpips::features), compared many times with
/// [`Lpips::distance_from_features`](crate::Lpips::distance_from_features).
#[derive(Debug)]
///
/// For images too large for one pass in the memory allowed (see
/// [`LpipsBuilder::max_memory`](crate::LpipsBuilder::max_memory)), the features hold the
/// prepared images instead, and comparing them runs the tiled evaluation.
pub struct Features {
    pub(crate) layers: Vec<Tensor>,
    /// The canonical images, kept instead of `layers` when they need tiles.
    pub(crate) deferred: Option<Tensor>,
    pub(crate) height: i64,
    pub(crate) width: i64,
}

impl Features {
    /// Number of images.
    pub fn len(&self) -> i64 {
        match &self.deferred {
            Some(x) => x.size()[0],
            None => self.layers.first().map_or(0, |l| l.size()[0]),
        }
    }

    /// Whether there are no images (never, for features the model made).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Height and width of the images they came from.
    pub fn image_size(&self) -> (i64, i64) {
        (self.height, self.width)
    }

    /// The features of images `start..start + len`; an error when that range is not
    /// within the batch.
    pub fn narrow(&self, start: i64, len: i64) -> Result<Features> {
        let n = self.len();
        if start < 0 || len < 1 || start.saturating_add(len) > n {
            return Err(LpipsError::OutOfBatch { start, len, n });
        }
        Ok(Features {
            layers: self
                .layers
                .iter()
                .map(|l| l.f_narrow(0, start, len))
                .collect::<std::result::Result<_, _>>()?,
            deferred: match &self.deferred {
                Some(x) => Some(x.f_narrow(0, start, len)?),
                None => None,
            },
            height: self.height,
            width: self.width,
        })
    }

    /// The normalised feature maps, one `N x C x h x w` tensor per tap (none when the
    /// images were kept for tiled evaluation).
    pub fn layers(&self) -> &[Tensor] {
        &self.layers
    }
}

//! The reference's `normalize_tensor`: each tap's features scaled to unit length along
//! channels, kept per image so they can be compared many times.

use ndarray::Array4;
use tch::{Kind, Tensor};

use crate::config::{Heads, ModelId, Net, Variant, Version};
use crate::error::{LpipsError, Result};

// The reference's epsilon in unit normalisation.
pub(super) const EPS: f64 = 1e-10;
// Sums of squares below this are raised to it before the square root, so that an
// all-zero feature vector has a finite (zero) gradient instead of the reference's NaN.
// Values are unchanged: such vectors normalise to zero either way.
pub(super) const MIN_SQUARED_NORM: f64 = 1e-30;

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
    /// The model that computed them.
    pub(crate) model: ModelId,
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
            model: self.model,
        })
    }

    /// The settings of the model that computed them.
    pub fn model(&self) -> ModelId {
        self.model
    }

    /// The trunk that computed them.
    pub fn net(&self) -> Net {
        self.model.net
    }

    /// The variant of the model that computed them.
    pub fn variant(&self) -> Variant {
        self.model.variant
    }

    /// The version of the model that computed them.
    pub fn version(&self) -> Version {
        self.model.version
    }

    /// The heads of the model that computed them.
    pub fn heads(&self) -> Heads {
        self.model.heads
    }

    /// Whether the model that computed them returns maps.
    pub fn spatial(&self) -> bool {
        self.model.spatial
    }

    /// The normalised feature maps as ndarray arrays, one `N x C x h x w` per tap (f32,
    /// copied; none when the images were kept for tiled evaluation).
    pub fn to_arrays(&self) -> Result<Vec<Array4<f32>>> {
        self.layers
            .iter()
            .map(|layer| {
                let size = layer.size();
                let dims = match size.as_slice() {
                    &[n, c, h, w] => (n as usize, c as usize, h as usize, w as usize),
                    _ => {
                        return Err(LpipsError::Internal(format!(
                            "a feature map has shape {size:?}, not N x C x h x w"
                        )));
                    }
                };
                let values = Vec::<f32>::try_from(
                    layer
                        .f_detach()?
                        .f_to_device(tch::Device::Cpu)?
                        .f_to_kind(Kind::Float)?
                        .f_contiguous()?
                        .f_flatten(0, -1)?,
                )?;
                Array4::from_shape_vec(dims, values).map_err(|e| {
                    LpipsError::Internal(format!("a feature map of shape {size:?}: {e}"))
                })
            })
            .collect()
    }

    /// The normalised feature maps, one `N x C x h x w` tensor per tap (none when the
    /// images were kept for tiled evaluation).
    pub fn layers(&self) -> &[Tensor] {
        &self.layers
    }
}

//! The reference's `NetLinLayer`s: per tap, the squared difference of two images'
//! normalised features, weighed per channel by a learned 1x1 linear head (or summed
//! over channels without heads), then pooled to a distance or a map.

use tch::{Kind, Tensor};

use super::features::Features;
use super::pooling::{spatial_average, upsample};
use crate::error::Result;

/// The linear heads, one `(1, C, 1, 1)` weight per tap; `None` for the reference's
/// `lpips=False` baseline (channels summed, layers weighed equally).
#[derive(Debug)]
pub(crate) struct NetLinLayers {
    pub(crate) heads: Option<Vec<Tensor>>,
    /// Dropout before the heads while training them (the reference's `use_dropout`).
    pub(crate) train_dropout: Option<f64>,
}

impl NetLinLayers {
    pub(crate) fn share(&self) -> NetLinLayers {
        NetLinLayers {
            heads: self
                .heads
                .as_ref()
                .map(|h| h.iter().map(Tensor::shallow_clone).collect()),
            train_dropout: self.train_dropout,
        }
    }

    /// Each tap's contribution for two sets of features of the same size (one side may
    /// hold a single image): `N x 1 x 1 x 1`, or `N x 1 x H x W` maps when `spatial`.
    pub(crate) fn per_layer(
        &self,
        a: &Features,
        b: &Features,
        spatial: bool,
    ) -> Result<Vec<Tensor>> {
        a.layers
            .iter()
            .zip(&b.layers)
            .enumerate()
            .map(|(k, (fa, fb))| self.layer(k, fa, fb, spatial, a.height, a.width))
            .collect()
    }

    /// Each tap's head output before any pooling: `N x 1 x h_l x w_l` (the reference's
    /// `self.lins[kk](diffs[kk])`, or the channel sum without heads).
    pub(crate) fn head_maps(&self, a: &Features, b: &Features) -> Result<Vec<Tensor>> {
        a.layers
            .iter()
            .zip(&b.layers)
            .enumerate()
            .map(|(k, (fa, fb))| self.head_map(k, fa, fb))
            .collect()
    }

    /// One tap's head output for two sets of its normalised features.
    pub(crate) fn head_map(&self, k: usize, fa: &Tensor, fb: &Tensor) -> Result<Tensor> {
        let diff = self.squared_diff(fa, fb)?;
        Ok(match self.heads.as_ref().and_then(|h| h.get(k)) {
            Some(w) => diff.f_conv2d(w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)?,
            None => diff.f_sum_dim_intlist(1, true, None::<Kind>)?,
        })
    }

    fn squared_diff(&self, fa: &Tensor, fb: &Tensor) -> Result<Tensor> {
        let diff = fa.f_sub(fb)?.f_square()?;
        Ok(match self.train_dropout {
            Some(p) if self.heads.is_some() => diff.f_dropout(p, true)?,
            _ => diff,
        })
    }

    fn layer(
        &self,
        k: usize,
        fa: &Tensor,
        fb: &Tensor,
        spatial: bool,
        height: i64,
        width: i64,
    ) -> Result<Tensor> {
        if spatial {
            return upsample(&self.head_map(k, fa, fb)?, height, width);
        }
        let diff = self.squared_diff(fa, fb)?;
        let m = spatial_average(&diff)?;
        let d = match self.heads.as_ref().and_then(|h| h.get(k)) {
            Some(w) => m.f_matmul(&w.f_view([-1, 1])?)?,
            None => m.f_sum_dim_intlist(1, true, None::<Kind>)?,
        };
        Ok(d.f_view([-1, 1, 1, 1])?)
    }
}

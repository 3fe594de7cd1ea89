//! From each layer's map to the distance: the reference's `spatial_average` (a mean
//! over space) or `upsample` (bilinear, `align_corners=False`, to the input's size), and
//! this crate's weighted average (pixel weights area-averaged to the layer's grid).

use tch::{Kind, Tensor};

use crate::error::Result;

/// Mean over height and width, keeping `N x C` (the 1x1 head is applied after it:
/// both are linear, so they commute, and the head becomes a small matrix product).
pub(crate) fn spatial_average(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_mean_dim([2, 3].as_slice(), false, None::<Kind>)?)
}

/// A layer's `N x 1 x h x w` head map pooled to its contribution: upsampled to
/// `height x width` when `spatial`, else averaged over space (`N x 1 x 1 x 1`).
pub(crate) fn pool_map(map: &Tensor, spatial: bool, height: i64, width: i64) -> Result<Tensor> {
    if spatial {
        upsample(map, height, width)
    } else {
        Ok(map.f_mean_dim([2, 3].as_slice(), true, None::<Kind>)?)
    }
}

/// A layer's `N x 1 x h x w` map upsampled to `height x width`.
pub(crate) fn upsample(x: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    Ok(x.f_upsample_bilinear2d([height, width], false, None, None)?)
}

/// `sum(w_l * d) / sum(w_l)` per image, `N x 1 x 1 x 1`, for a layer's `N x 1 x h x w`
/// head map `d` and pixel weights `1 x 1 x H x W` (or `N x 1 x H x W`), where `w_l` is the
/// weights area-averaged to `h x w` (torch's `interpolate(mode="area")`, i.e. adaptive
/// average pooling).
pub(crate) fn weighted_average(d: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let (h, w) = (d.size()[2], d.size()[3]);
    let wl = weights.f_adaptive_avg_pool2d([h, w])?;
    let num = d
        .f_mul(&wl)?
        .f_sum_dim_intlist([1, 2, 3].as_slice(), true, None::<Kind>)?;
    let den = wl.f_sum_dim_intlist([1, 2, 3].as_slice(), true, None::<Kind>)?;
    Ok(num.f_div(&den)?)
}

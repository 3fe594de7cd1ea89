//! Pixels to a planar `1 x 3 x H x W` f32 tensor in one pass, written straight into
//! memory that libtorch allocates: an image too large for the memory left is an error
//! (libtorch's allocator reports it), never an abort of the process, and no
//! intermediate copies (an interleaved f32 buffer, a permuted copy) are made.

use image::DynamicImage;
use tch::{Device, Kind, Tensor};

use crate::error::Result;

/// A new CPU f32 tensor of `shape`, its values (in memory order) written by `fill`.
pub(crate) fn filled(shape: &[i64], fill: impl FnOnce(&mut [f32])) -> Result<Tensor> {
    let t = Tensor::f_empty(shape, (Kind::Float, Device::Cpu))?;
    let n = t.numel();
    if n > 0 {
        // SAFETY: a new, contiguous CPU f32 tensor of `n` values that nothing else sees
        // until this function returns it.
        let values = unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) };
        fill(values);
    }
    Ok(t)
}

/// Interleaved samples (`channels` per pixel: grey, grey + alpha, RGB or RGBA) to a
/// `1 x 3 x H x W` tensor: grey replicated, alpha dropped, each sample mapped by `map`.
pub(crate) fn planar<S: Copy>(
    samples: &[S],
    channels: usize,
    (h, w): (i64, i64),
    map: impl Fn(S) -> f32,
) -> Result<Tensor> {
    filled(&[1, 3, h, w], |out| {
        let plane = out.len() / 3;
        for (c, dst) in out.chunks_exact_mut(plane.max(1)).enumerate() {
            let src = if channels < 3 { 0 } else { c };
            let pixels = samples.chunks_exact(channels).map(|p| p[src]);
            for (d, s) in dst.iter_mut().zip(pixels) {
                *d = map(s);
            }
        }
    })
}

/// 8-bit samples as the reference's `im2tensor` maps them (`v / 127.5 - 1` in double
/// precision, then f32).
pub(crate) fn from_u8(v: u8) -> f32 {
    (f64::from(v) / 127.5 - 1.0) as f32
}

/// 16-bit samples at full precision: `v / 65535` (as the `image` crate makes it f32),
/// then `2x - 1` in f32.
fn from_u16(v: u16) -> f32 {
    (f32::from(v) / f32::from(u16::MAX)).clamp(0.0, 1.0) * 2.0 - 1.0
}

/// A decoded image as a `1 x 3 x H x W` tensor in [-1, 1]: 8-bit images exactly as the
/// reference reads them, 16-bit and float images at their full precision.
pub(crate) fn image_tensor(img: &DynamicImage) -> Result<Tensor> {
    let hw = (i64::from(img.height()), i64::from(img.width()));
    match img {
        DynamicImage::ImageLuma8(b) => planar(b.as_raw(), 1, hw, from_u8),
        DynamicImage::ImageLumaA8(b) => planar(b.as_raw(), 2, hw, from_u8),
        DynamicImage::ImageRgb8(b) => planar(b.as_raw(), 3, hw, from_u8),
        DynamicImage::ImageRgba8(b) => planar(b.as_raw(), 4, hw, from_u8),
        DynamicImage::ImageLuma16(b) => planar(b.as_raw(), 1, hw, from_u16),
        DynamicImage::ImageLumaA16(b) => planar(b.as_raw(), 2, hw, from_u16),
        DynamicImage::ImageRgb16(b) => planar(b.as_raw(), 3, hw, from_u16),
        DynamicImage::ImageRgba16(b) => planar(b.as_raw(), 4, hw, from_u16),
        DynamicImage::ImageRgb32F(b) => planar(b.as_raw(), 3, hw, |v| v * 2.0 - 1.0),
        DynamicImage::ImageRgba32F(b) => planar(b.as_raw(), 4, hw, |v| v * 2.0 - 1.0),
        // A pixel type added to `image` later: converted through its own f32 copy.
        other => planar(other.to_rgb32f().as_raw(), 3, hw, |v| v * 2.0 - 1.0),
    }
}

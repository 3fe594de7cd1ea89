//! Writing distance maps: NumPy `.npy` for numbers, colour-mapped PNG for eyes.

use std::io::Write;
use std::path::Path;

use image::{DynamicImage, Rgb, RgbImage, Rgba};
use ndarray::Array2;

use crate::error::{LpipsError, Result};

/// Writes the map as a little-endian float32 NumPy `.npy` file (`H x W`).
pub fn write_npy(path: impl AsRef<Path>, map: &Array2<f32>) -> Result<()> {
    use ndarray_npy::WriteNpyExt;
    crate::files::write_atomic(path.as_ref(), |file| {
        map.write_npy(std::io::BufWriter::new(file))
            .map_err(|e| match e {
                ndarray_npy::WriteNpyError::Io(io) => io,
                other => std::io::Error::other(other.to_string()),
            })
    })
}

/// Writes the map as a PNG heat map (viridis) with a colour bar below it (needs the
/// `png` feature).
///
/// Colours run from 0 (dark purple, the bar's left end) to `scale_max` (yellow, the bar's
/// right end); larger values saturate. With `scale_max` `None` the map's own maximum is
/// used. NaN values (outside a mask: [`mask_map`](crate::mask_map)) are transparent.
/// Returns the scale maximum used.
#[cfg(feature = "png")]
pub fn write_heatmap(
    path: impl AsRef<Path>,
    map: &Array2<f32>,
    scale_max: Option<f32>,
) -> Result<f32> {
    let path = path.as_ref();
    let max = scale_max
        .unwrap_or_else(|| map.iter().copied().fold(0.0, f32::max))
        .max(f32::MIN_POSITIVE);
    let colour = |v: f32| {
        let c = colorous::VIRIDIS.eval_continuous(f64::from((v / max).clamp(0.0, 1.0)));
        Rgb([c.r, c.g, c.b])
    };
    let (h, w) = map.dim();
    let bar = (h / 10).max(4);
    let gap = 2;
    let mut img = RgbImage::from_pixel(w as u32, (h + gap + bar) as u32, Rgb([255, 255, 255]));
    for ((y, x), &v) in map.indexed_iter() {
        img.put_pixel(x as u32, y as u32, colour(v));
    }
    for x in 0..w {
        let v = if w > 1 {
            max * x as f32 / (w - 1) as f32
        } else {
            max
        };
        for y in h + gap..h + gap + bar {
            img.put_pixel(x as u32, y as u32, colour(v));
        }
    }
    // NaN (outside a mask, see `mask_map`) is transparent: then the PNG has alpha.
    let img: DynamicImage = if map.iter().any(|v| v.is_nan()) {
        let mut rgba = DynamicImage::ImageRgb8(img).to_rgba8();
        for ((y, x), v) in map.indexed_iter() {
            if v.is_nan() {
                rgba.put_pixel(x as u32, y as u32, Rgba([0, 0, 0, 0]));
            }
        }
        DynamicImage::ImageRgba8(rgba)
    } else {
        DynamicImage::ImageRgb8(img)
    };
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| LpipsError::io(path, std::io::Error::other(e.to_string())))?;
    crate::files::write_atomic(path, |file| file.write_all(&png))?;
    Ok(max)
}

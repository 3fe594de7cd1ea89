//! Distance maps and masks: writing maps ([`Lpips::distance_map`](crate::Lpips::distance_map))
//! as NumPy `.npy` for numbers or colour-mapped PNG for eyes, reading masks
//! ([`load_mask`], for [`Lpips::distance_weighted`](crate::Lpips::distance_weighted)) and
//! blanking a map outside one ([`mask_map`]).

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

/// How [`write_heatmap_with`] draws a heat map.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HeatmapOptions {
    /// The value drawn yellow (larger values saturate); `None`: the map's own maximum.
    pub scale_max: Option<f32>,
    /// Whether a colour bar (from 0 to the scale maximum) is drawn below the map, making
    /// the image a tenth taller (at least 6 rows: 2 white, 4 of bar). Default true.
    pub colour_bar: bool,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        HeatmapOptions {
            scale_max: None,
            colour_bar: true,
        }
    }
}

impl HeatmapOptions {
    /// The value drawn yellow (`None`: the map's own maximum).
    pub fn scale_max(mut self, max: Option<f32>) -> Self {
        self.scale_max = max;
        self
    }

    /// Whether to draw the colour bar below the map (default true); without it the
    /// image has the map's size.
    pub fn colour_bar(mut self, on: bool) -> Self {
        self.colour_bar = on;
        self
    }
}

/// Writes the map as a PNG heat map (viridis) with a colour bar below it (needs the
/// `png` feature); [`write_heatmap_with`] chooses the scale and the bar.
///
/// Colours run from 0 (dark purple, the bar's left end) to `scale_max` (yellow, the bar's
/// right end); larger values saturate. With `scale_max` `None` the map's own maximum is
/// used. NaN values (outside a mask: [`mask_map`]) are transparent.
/// Returns the scale maximum used.
#[cfg(feature = "png")]
pub fn write_heatmap(
    path: impl AsRef<Path>,
    map: &Array2<f32>,
    scale_max: Option<f32>,
) -> Result<f32> {
    write_heatmap_with(path, map, &HeatmapOptions::default().scale_max(scale_max))
}

/// Writes the map as a PNG heat map as [`write_heatmap`] does, drawn as `options` say
/// (scale maximum, colour bar or none). Returns the scale maximum used.
#[cfg(feature = "png")]
pub fn write_heatmap_with(
    path: impl AsRef<Path>,
    map: &Array2<f32>,
    options: &HeatmapOptions,
) -> Result<f32> {
    let path = path.as_ref();
    let max = options
        .scale_max
        .unwrap_or_else(|| map.iter().copied().fold(0.0, f32::max))
        .max(f32::MIN_POSITIVE);
    let colour = |v: f32| {
        let c = colorous::VIRIDIS.eval_continuous(f64::from((v / max).clamp(0.0, 1.0)));
        Rgb([c.r, c.g, c.b])
    };
    let (h, w) = map.dim();
    let (gap, bar) = if options.colour_bar {
        (2, (h / 10).max(4))
    } else {
        (0, 0)
    };
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

/// Pixel weights from a greyscale mask image: 8-bit values / 255, 16-bit values / 65535
/// (an `H x W` array in [0, 1]). Colour images and images with alpha are refused, so that
/// a mask is never read by a guess at which channel holds it.
pub fn load_mask(path: impl AsRef<Path>) -> Result<Array2<f32>> {
    let path = path.as_ref();
    let img = crate::image_io::load_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let values: Vec<f32> = match &img {
        DynamicImage::ImageLuma8(g) => g.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
        DynamicImage::ImageLuma16(g) => {
            g.as_raw().iter().map(|&v| f32::from(v) / 65535.0).collect()
        }
        other => {
            return Err(LpipsError::Mask {
                reason: format!(
                    "{} decodes as {:?} (colour, palette or alpha); a mask must be an 8-bit or \
                     16-bit greyscale image without alpha",
                    path.display(),
                    other.color()
                ),
            });
        }
    };
    Array2::from_shape_vec((h, w), values).map_err(|e| LpipsError::Mask {
        reason: format!("{}: {e}", path.display()),
    })
}

/// Blanks a distance map outside a mask: NaN where the weight is zero (transparent in
/// [`write_heatmap`], NaN in [`write_npy`]).
pub fn mask_map(map: &mut Array2<f32>, weights: &Array2<f32>) -> Result<()> {
    if map.dim() != weights.dim() {
        return Err(LpipsError::Mask {
            reason: format!(
                "the map is {:?} but the weights are {:?} (HxW)",
                map.dim(),
                weights.dim()
            ),
        });
    }
    map.zip_mut_with(weights, |m, &w| {
        if w == 0.0 {
            *m = f32::NAN;
        }
    });
    Ok(())
}

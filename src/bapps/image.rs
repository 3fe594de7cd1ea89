//! BAPPS patches and judgements read as the reference's data loaders read them.

use std::path::Path;

use image::imageops::{self, FilterType};
use image::{ImageError, RgbImage};
use ndarray::{Array3, ArrayD};
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::error::{LpipsError, Result};

/// A patch as the reference's BAPPS loader makes it: `3 x H x W` f32 in [-1, 1].
///
/// The reference repository's loaders open each file with PIL, `convert('RGB')`, then
/// apply torchvision's `Resize(load_size)`, `ToTensor()` and
/// `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`. For 8-bit images this gives the same
/// values bit for bit: `(v / 255 - 0.5) / 0.5` in f32, greyscale replicated to three
/// channels, alpha (of grey+alpha or RGBA) dropped, palettes expanded.
///
/// `Resize` with one number scales the shorter side to `load_size` keeping the aspect
/// ratio (the longer side truncated, as torchvision computes it) and leaves images whose
/// shorter side is already `load_size` untouched, which is the case for every BAPPS
/// patch (64 x 64, `load_size` 64). Other sizes are resampled with the `image` crate's
/// triangle filter, widened when shrinking like PIL's antialiased bilinear filter, so
/// they come within a level or two of the reference's but are not bit-exact (PIL
/// rounds to 8 bits between its horizontal and vertical passes). Images of more than 8
/// bits per channel are reduced to 8 bits by the `image` crate, which PIL does
/// differently; BAPPS has none.
///
/// # Errors
///
/// [`LpipsError::Image`] when the file cannot be read or decoded, or when `load_size`
/// is 0.
pub fn load_patch(path: &Path, load_size: u32) -> Result<Array3<f32>> {
    let image_error = |source| LpipsError::Image {
        path: path.to_path_buf(),
        source,
    };
    if load_size == 0 {
        return Err(image_error(ImageError::Parameter(
            image::error::ParameterError::from_kind(image::error::ParameterErrorKind::Generic(
                "load_size must be at least 1".to_string(),
            )),
        )));
    }
    let mut rgb = crate::image_io::load_image(path)?.into_rgb8();
    if let Some((width, height)) = resized_size(rgb.width(), rgb.height(), load_size) {
        rgb = imageops::resize(&rgb, width, height, FilterType::Triangle);
    }
    to_patch(&rgb).ok_or_else(|| {
        image_error(ImageError::Parameter(
            image::error::ParameterError::from_kind(
                image::error::ParameterErrorKind::DimensionMismatch,
            ),
        ))
    })
}

/// The size torchvision's `Resize(load_size)` gives an image, or `None` when it leaves
/// the image as it is.
fn resized_size(width: u32, height: u32, load_size: u32) -> Option<(u32, u32)> {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    if short == load_size || short == 0 {
        return None;
    }
    // torchvision: int(size * long / short), a true division truncated.
    let new_long = ((u64::from(load_size) * u64::from(long)) as f64 / f64::from(short)) as u32;
    Some(if width <= height {
        (load_size, new_long)
    } else {
        (new_long, load_size)
    })
}

/// Planar `3 x H x W` values from interleaved RGB, written once in order; `None` if the
/// buffer does not hold the image's pixels (the `image` crate guarantees it does).
fn to_patch(rgb: &RgbImage) -> Option<Array3<f32>> {
    let (width, height) = rgb.dimensions();
    let (h, w) = (height as usize, width as usize);
    let pixels = rgb.as_raw().get(..3 * h * w)?;
    let mut planar = Vec::with_capacity(3 * h * w);
    for c in 0..3 {
        planar.extend(pixels.iter().skip(c).step_by(3).map(|&v| normalize(v)));
    }
    Array3::from_shape_vec((3, h, w), planar).ok()
}

/// `ToTensor` then `Normalize(0.5, 0.5)`, in f32 and in torch's order of operations
/// (a division by 255, not a multiplication by its inverse, which differs in the last
/// bit for some values).
fn normalize(v: u8) -> f32 {
    (f32::from(v) / 255.0 - 0.5) / 0.5
}

/// A judgement file (`.npy` with one value).
///
/// BAPPS stores each judgement (2AFC: the fraction of people preferring `p1`; JND: the
/// fraction answering "same") as a NumPy file with one float. Any shape holding exactly
/// one value is accepted (`()`, `(1,)`, `(1, 1, 1)`, ...), in float32 or float64 of
/// either byte order, C or Fortran order. The value is returned rounded to f32, as the
/// reference's loaders hand it on (`torch.FloatTensor(np.load(p).reshape((1, 1, 1)))`),
/// so that scores computed from it match the reference's to the last bit.
///
/// # Errors
///
/// [`LpipsError::Io`] when the file cannot be read; [`LpipsError::Judgement`] when it is
/// not a `.npy` file, holds another dtype (integers, strings, ...), holds no value or
/// several, or a value that is NaN, infinite or outside [0, 1].
pub fn read_judgement(path: &Path) -> Result<f64> {
    let bytes = std::fs::read(path).map_err(|e| LpipsError::io(path, e))?;
    let bad = |reason: String| LpipsError::Judgement {
        path: path.to_path_buf(),
        reason,
    };
    // The dtype is only known once the header is parsed: try both float widths.
    let (shape, values): (Vec<usize>, Vec<f64>) = match ArrayD::<f64>::read_npy(&bytes[..]) {
        Ok(a) => (a.shape().to_vec(), a.iter().copied().collect()),
        Err(ReadNpyError::WrongDescriptor(_)) => match ArrayD::<f32>::read_npy(&bytes[..]) {
            Ok(a) => (
                a.shape().to_vec(),
                a.iter().map(|&v| f64::from(v)).collect(),
            ),
            Err(ReadNpyError::WrongDescriptor(descr)) => {
                return Err(bad(format!(
                    "holds dtype {descr}; expected float32 or float64"
                )));
            }
            Err(e) => return Err(bad(format!("not a readable .npy file ({e})"))),
        },
        Err(e) => return Err(bad(format!("not a readable .npy file ({e})"))),
    };
    let [value] = values[..] else {
        return Err(bad(format!(
            "holds {} values (shape {shape:?}); expected exactly one",
            values.len()
        )));
    };
    if !value.is_finite() {
        return Err(bad(format!("holds {value}; expected a fraction in [0, 1]")));
    }
    let loaded = f64::from(value as f32);
    if !(0.0..=1.0).contains(&loaded) {
        return Err(bad(format!("holds {value}, outside [0, 1]")));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_follows_torchvision() {
        assert_eq!(resized_size(64, 64, 64), None);
        assert_eq!(resized_size(80, 64, 64), None);
        assert_eq!(resized_size(96, 80, 64), Some((76, 64)));
        assert_eq!(resized_size(40, 48, 64), Some((64, 76)));
        assert_eq!(resized_size(100, 100, 64), Some((64, 64)));
    }

    #[test]
    fn normalize_matches_torch_for_the_ends() {
        assert_eq!(normalize(0), -1.0);
        assert_eq!(normalize(255), 1.0);
    }
}

//! BAPPS patches and judgements read as the reference's data loaders read them.

use std::io::Read;
use std::path::Path;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, RgbImage};
use ndarray::{Array3, ArrayD};
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::error::{LpipsError, Result};

/// A patch as the reference's BAPPS loader makes it: `3 x H x W` f32 in [-1, 1].
///
/// The reference repository's loaders (`data/dataset/twoafc_dataset.py`,
/// `jnd_dataset.py`) open each file with PIL, `convert('RGB')`, then apply torchvision's
/// `Resize(load_size)`, `ToTensor()` and `Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))`.
/// This gives the same values bit for bit:
/// - `convert('RGB')`: greyscale replicated to three channels, alpha (of grey+alpha or
///   RGBA) dropped without compositing, palettes expanded; 16-bit PNGs as PIL reads
///   them (colour and grey+alpha keep the high byte of each sample, 16-bit grey is
///   clipped to 255); the EXIF orientation is *not* applied (PIL does not; the
///   `lpips` comparison commands, which read as OpenCV does, do). CMYK JPEGs are
///   converted as OpenCV converts them, within one level of PIL's conversion.
/// - `Resize(load_size)` with one number scales the shorter side to `load_size` and the
///   longer one to `int(load_size * long / short)`, and leaves an image whose shorter side
///   is already `load_size` as it is (every BAPPS patch: 64 x 64). Other sizes (smaller
///   or larger) are resampled as PIL's `Image.resize(..., BILINEAR)` does, pixel for
///   pixel (antialiased when shrinking; 8-bit fixed-point passes, horizontal then
///   vertical).
/// - `ToTensor()` and `Normalize`: `(v / 255 - 0.5) / 0.5` in f32.
///
/// # Errors
///
/// [`LpipsError::Image`] when the file cannot be read or decoded, when `load_size` is 0,
/// or when the resized image would not fit in memory; [`LpipsError::CorruptImage`] for a
/// damaged JPEG.
pub fn load_patch(path: &Path, load_size: u32) -> Result<Array3<f32>> {
    let image_error = |source| LpipsError::Image {
        path: path.to_path_buf(),
        source,
    };
    let parameter = |kind| ImageError::Parameter(image::error::ParameterError::from_kind(kind));
    if load_size == 0 {
        return Err(image_error(parameter(
            image::error::ParameterErrorKind::Generic("load_size must be at least 1".to_string()),
        )));
    }
    let mut decoded = crate::image_io::load_image(path)?;
    // The decoder applies the EXIF orientation, as OpenCV does; PIL does not: undo it.
    decoded.apply_orientation(inverse(applied_orientation(path)));
    let mut rgb = pil_rgb(decoded);
    if let Some((width, height)) = resized_size(rgb.width(), rgb.height(), load_size) {
        rgb = super::resample::resize_bilinear(&rgb, width, height).ok_or_else(|| {
            image_error(ImageError::Limits(image::error::LimitError::from_kind(
                image::error::LimitErrorKind::InsufficientMemory,
            )))
        })?;
    }
    to_patch(&rgb).ok_or_else(|| {
        image_error(parameter(
            image::error::ParameterErrorKind::DimensionMismatch,
        ))
    })
}

/// The EXIF orientation [`crate::image_io::load_image`] applied to the file: for JPEG
/// that of the first APP1 `Exif` segment (as libjpeg's saved markers give it), for the
/// other formats what the `image` crate's decoder reports (PNG `eXIf`, TIFF); none when
/// there is no readable tag. WebP is not undone (BAPPS's loader lists no WebP files).
fn applied_orientation(path: &Path) -> Orientation {
    // Opened as the decoder opened it: a regular file, never blocking on a FIFO.
    let mut bytes = Vec::new();
    let read = crate::files::open_regular(path).map(|mut f| f.read_to_end(&mut bytes));
    if !matches!(read, Ok(Ok(_))) {
        return Orientation::NoTransforms;
    }
    let found = match image::guess_format(&bytes) {
        Ok(ImageFormat::Jpeg) => jpeg_exif(&bytes).and_then(Orientation::from_exif_chunk),
        Ok(ImageFormat::WebP) | Err(_) => None,
        Ok(format) => image::ImageReader::with_format(std::io::Cursor::new(&bytes), format)
            .into_decoder()
            .ok()
            .and_then(|mut d| d.orientation().ok()),
    };
    found.unwrap_or(Orientation::NoTransforms)
}

/// The payload (TIFF structure) of a JPEG's first APP1 segment starting `Exif\0\0`,
/// looking at the markers before the first scan.
fn jpeg_exif(bytes: &[u8]) -> Option<&[u8]> {
    let mut i = 2; // after SOI
    loop {
        // Markers: 0xFF, any fill 0xFF bytes, then the code.
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        while *bytes.get(i)? == 0xFF {
            i += 1;
        }
        let code = *bytes.get(i)?;
        i += 1;
        match code {
            0xD9 | 0xDA => return None,     // end of image, start of scan
            0x01 | 0xD0..=0xD7 => continue, // no length
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
        let data = bytes.get(i + 2..i.checked_add(len)?)?;
        if code == 0xE1 {
            if let Some(payload) = data.strip_prefix(b"Exif\0\0") {
                return Some(payload);
            }
        }
        i += len;
    }
}

/// The orientation that undoes `o`: the rotations by 90 and 270 degrees undo each other,
/// every other one (180 degrees, the flips, the transpositions) undoes itself.
fn inverse(o: Orientation) -> Orientation {
    match o {
        Orientation::Rotate90 => Orientation::Rotate270,
        Orientation::Rotate270 => Orientation::Rotate90,
        other => other,
    }
}

/// PIL's `convert('RGB')` of the image PIL would have opened: 16-bit PNG samples as
/// PIL's PNG reader and converter treat them (the high byte, except 16-bit grey, PIL's
/// mode `I;16`, which `convert` clips to 255); 8-bit images as the `image` crate's RGB
/// conversion gives them (grey replicated, alpha dropped), which is PIL's.
fn pil_rgb(image: DynamicImage) -> RgbImage {
    let high = |v: u16| (v >> 8) as u8;
    match image {
        DynamicImage::ImageLuma16(g) => {
            let (w, h) = g.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let v = g.get_pixel(x, y).0[0].min(255) as u8;
                image::Rgb([v, v, v])
            })
        }
        DynamicImage::ImageLumaA16(g) => {
            let (w, h) = g.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let v = high(g.get_pixel(x, y).0[0]);
                image::Rgb([v, v, v])
            })
        }
        DynamicImage::ImageRgb16(c) => {
            let (w, h) = c.dimensions();
            RgbImage::from_fn(w, h, |x, y| image::Rgb(c.get_pixel(x, y).0.map(high)))
        }
        DynamicImage::ImageRgba16(c) => {
            let (w, h) = c.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let [r, g, b, _] = c.get_pixel(x, y).0;
                image::Rgb([high(r), high(g), high(b)])
            })
        }
        other => other.into_rgb8(),
    }
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
    // torchvision: int(size * long / short), a true division truncated; for these
    // magnitudes the same as the exact quotient rounded down. Saturates at u32::MAX
    // (the allocation then fails cleanly).
    let new_long = u64::from(load_size) * u64::from(long) / u64::from(short);
    let new_long = u32::try_from(new_long).unwrap_or(u32::MAX);
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

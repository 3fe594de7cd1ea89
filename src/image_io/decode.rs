//! Bytes to pixels as OpenCV's `imread(path, IMREAD_COLOR)` gives them, the loader of the
//! reference (`lpips.load_image`): the format found from the content (not the file
//! name), JPEG through libjpeg-turbo ([`super::jpeg`]), the EXIF orientation applied
//! (JPEG, PNG `eXIf`, WebP, TIFF), and optionally 16-bit samples reduced to 8 bits by
//! OpenCV's rules ([`super::depth`]); TIFF alpha as libtiff's RGBA interface gives it
//! ([`super::alpha`]).
//!
//! Free of libtorch and of the crate's error type, so the fuzz target can include it.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// What to do while decoding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DecodeOptions {
    /// Reduce 16-bit samples to 8 bits as OpenCV does.
    pub eight_bit: bool,
    /// Accept JPEG files libjpeg can only partly decode.
    pub accept_damaged: bool,
}

/// Why a file could not be decoded.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The `image` crate's decoders refused it (or the format is unknown).
    Image(image::ImageError),
    /// libjpeg refused it, or found it damaged.
    Corrupt(String),
    /// The memory for its pixels (this many bytes) could not be had.
    OutOfMemory(u64),
}

/// A zero-filled buffer of `n` values, allocated fallibly: an image too large for the
/// memory left is an error, never an abort of the process.
pub(crate) fn zeroed<T: bytemuck::Zeroable + Clone>(n: usize) -> Result<Vec<T>, DecodeError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| DecodeError::OutOfMemory((n as u64).saturating_mul(size_of::<T>() as u64)))?;
    v.resize(n, T::zeroed());
    Ok(v)
}

/// Checks that `bytes` more can be allocated now, for a step whose allocation is the
/// `image` crate's (a rotation by 90 degrees makes a new buffer): asked of the
/// allocator and given back, so that a refusal is an error, not an abort.
fn ensure_room(bytes: u64) -> Result<(), DecodeError> {
    let n = usize::try_from(bytes).map_err(|_| DecodeError::OutOfMemory(bytes))?;
    Vec::<u8>::new()
        .try_reserve_exact(n)
        .map_err(|_| DecodeError::OutOfMemory(bytes))
}

/// The pixels a decoder gives, in buffers allocated fallibly (what `image`'s
/// `DynamicImage::from_decoder` does with an infallible allocation).
fn read_pixels(decoder: impl ImageDecoder) -> Result<DynamicImage, DecodeError> {
    use image::{ColorType, ImageBuffer};
    fn samples<T: bytemuck::Pod>(decoder: impl ImageDecoder) -> Result<Vec<T>, DecodeError> {
        let bytes = decoder.total_bytes();
        let n = usize::try_from(bytes).map_err(|_| DecodeError::OutOfMemory(bytes))?;
        let mut buf = zeroed::<T>(n / size_of::<T>())?;
        decoder
            .read_image(bytemuck::cast_slice_mut(&mut buf))
            .map_err(DecodeError::Image)?;
        Ok(buf)
    }
    let (w, h) = decoder.dimensions();
    // Each colour type's samples into its own buffer type, as `image` itself does.
    macro_rules! pixels {
        ($variant:ident) => {
            ImageBuffer::from_raw(w, h, samples(decoder)?).map(DynamicImage::$variant)
        };
    }
    let image = match decoder.color_type() {
        ColorType::L8 => pixels!(ImageLuma8),
        ColorType::La8 => pixels!(ImageLumaA8),
        ColorType::Rgb8 => pixels!(ImageRgb8),
        ColorType::Rgba8 => pixels!(ImageRgba8),
        ColorType::L16 => pixels!(ImageLuma16),
        ColorType::La16 => pixels!(ImageLumaA16),
        ColorType::Rgb16 => pixels!(ImageRgb16),
        ColorType::Rgba16 => pixels!(ImageRgba16),
        ColorType::Rgb32F => pixels!(ImageRgb32F),
        ColorType::Rgba32F => pixels!(ImageRgba32F),
        // A colour type added to `image` later.
        _ => Some(DynamicImage::from_decoder(decoder).map_err(DecodeError::Image)?),
    };
    image.ok_or_else(|| {
        DecodeError::Image(image::ImageError::Parameter(
            image::error::ParameterError::from_kind(
                image::error::ParameterErrorKind::DimensionMismatch,
            ),
        ))
    })
}

/// The pixels, and libjpeg's warnings for a damaged file that was accepted.
pub(crate) struct Decoded {
    pub image: DynamicImage,
    pub warnings: Vec<String>,
}

/// The largest image decoded, in bytes: the `image` crate's default allocation limit
/// (512 MiB), for JPEG (as 8-bit RGB) and the other formats alike.
const MAX_BYTES: u64 = 512 * 1024 * 1024;

/// Decodes a whole file held in memory.
pub(crate) fn decode(bytes: &[u8], options: DecodeOptions) -> Result<Decoded, DecodeError> {
    let format = image::guess_format(bytes).map_err(DecodeError::Image)?;
    let (mut image, orientation, warnings) = if format == ImageFormat::Jpeg {
        decode_jpeg(bytes, options)?
    } else {
        let reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut decoder = reader.into_decoder().map_err(DecodeError::Image)?;
        // An unreadable orientation tag is no orientation, as for OpenCV.
        let orientation = if format == ImageFormat::WebP {
            super::exif::webp_exif(bytes).and_then(Orientation::from_exif_chunk)
        } else {
            decoder.orientation().ok()
        }
        .unwrap_or(Orientation::NoTransforms);
        // `into_decoder` leaves the output buffer unchecked (ImageReader::decode checks
        // it): a header may announce any size.
        if decoder.total_bytes() > MAX_BYTES {
            return Err(DecodeError::Image(image::ImageError::Limits(
                image::error::LimitError::from_kind(
                    image::error::LimitErrorKind::InsufficientMemory,
                ),
            )));
        }
        let mut image = read_pixels(decoder)?;
        #[cfg(feature = "tiff")]
        if format == ImageFormat::Tiff {
            image = super::alpha::tiff_as_opencv(image, bytes);
        }
        (image, orientation, Vec::new())
    };
    if matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    ) {
        ensure_room(image.as_bytes().len() as u64)?;
    }
    image.apply_orientation(orientation);
    if options.eight_bit {
        let bytes = image.as_bytes().len() as u64 / 2;
        image = super::depth::to_eight_bit(image, format)
            .map_err(|_| DecodeError::OutOfMemory(bytes))?;
    }
    Ok(Decoded { image, warnings })
}

#[cfg(feature = "jpeg")]
fn decode_jpeg(
    bytes: &[u8],
    options: DecodeOptions,
) -> Result<(DynamicImage, Orientation, Vec<String>), DecodeError> {
    use super::jpeg;
    let decoded = jpeg::decode(
        bytes,
        jpeg::JpegOptions {
            accept_damaged: options.accept_damaged,
            max_pixels: MAX_BYTES / 3,
        },
    )
    .map_err(|e| match e {
        jpeg::JpegError::Corrupt(reason) => DecodeError::Corrupt(reason),
        jpeg::JpegError::OutOfMemory(bytes) => DecodeError::OutOfMemory(bytes),
    })?;
    let orientation = decoded
        .exif
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (w, h) = (decoded.width, decoded.height);
    let image = if decoded.channels == 1 {
        image::GrayImage::from_raw(w, h, decoded.pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(w, h, decoded.pixels).map(DynamicImage::ImageRgb8)
    };
    let image = image.ok_or_else(|| DecodeError::Corrupt("libjpeg gave too few pixels".into()))?;
    Ok((image, orientation, decoded.warnings))
}

#[cfg(not(feature = "jpeg"))]
fn decode_jpeg(
    _: &[u8],
    _: DecodeOptions,
) -> Result<(DynamicImage, Orientation, Vec<String>), DecodeError> {
    Err(DecodeError::Image(image::ImageError::Unsupported(
        image::error::UnsupportedError::from_format_and_kind(
            image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
            image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Exact(
                ImageFormat::Jpeg,
            )),
        ),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GenericImageView;

    fn unhex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_header_announcing_a_huge_image_is_refused_before_allocating() {
        // Found by the fuzz target: a PNG header announcing far more than the limit (here
        // 100000 x 100000 RGB, 30 GB), which `DynamicImage::from_decoder` would allocate.
        let png = unhex(
            "89504e470d0a1a0a0000000d49484452000186a0000186a0080200000027309c9f0000000c49444154789c6360a00c00
             0000400001b7347cef0000000049454e44ae426082",
        );
        let options = DecodeOptions {
            eight_bit: false,
            accept_damaged: false,
        };
        let result = decode(&png, options);
        assert!(
            matches!(
                &result,
                Err(DecodeError::Image(image::ImageError::Limits(_)))
            ),
            "{:?}",
            result.as_ref().map(|d| d.image.dimensions())
        );
    }
}

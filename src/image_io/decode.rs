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
        let mut image = DynamicImage::from_decoder(decoder).map_err(DecodeError::Image)?;
        #[cfg(feature = "tiff")]
        if format == ImageFormat::Tiff {
            image = super::alpha::tiff_as_opencv(image, bytes);
        }
        (image, orientation, Vec::new())
    };
    image.apply_orientation(orientation);
    if options.eight_bit {
        image = super::depth::to_eight_bit(image, format);
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
    .map_err(DecodeError::Corrupt)?;
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

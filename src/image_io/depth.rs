//! 16-bit samples to 8 bits as OpenCV's `imread(..., IMREAD_COLOR)` reduces them
//! (checked on all 65536 values against opencv-python-headless 5.0.0.93 by
//! scripts/gen_images.py and tests/library/images.rs):
//! PNG, and grey TIFF, keep the high byte (`v >> 8`); colour TIFF rounds `v / 257`.
//! Float images go through the `image` crate's conversion (clamped to [0, 1], scaled
//! and rounded); OpenCV's rule for them is not checked.

use std::collections::TryReserveError;

use image::{DynamicImage, ImageBuffer, ImageFormat, Pixel};

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

fn rounded(v: u16) -> u8 {
    ((u32::from(v) + 128) / 257) as u8
}

fn map<P, Q>(
    img: &ImageBuffer<P, Vec<u16>>,
    f: fn(u16) -> u8,
) -> Result<ImageBuffer<Q, Vec<u8>>, TryReserveError>
where
    P: Pixel<Subpixel = u16>,
    Q: Pixel<Subpixel = u8>,
{
    let mut raw = Vec::new();
    raw.try_reserve_exact(img.as_raw().len())?;
    raw.extend(img.as_raw().iter().map(|&v| f(v)));
    // Cannot fail: one u8 per u16 subpixel of a buffer of the same pixel type and size,
    // so `raw` has exactly the length `from_raw` checks for.
    Ok(ImageBuffer::from_raw(img.width(), img.height(), raw).expect("same layout, same length"))
}

/// The 8-bit image OpenCV would give for a decoded `format` file; 8-bit images as they
/// are. The new buffer is allocated fallibly.
pub(crate) fn to_eight_bit(
    img: DynamicImage,
    format: ImageFormat,
) -> Result<DynamicImage, TryReserveError> {
    let colour = if format == ImageFormat::Tiff {
        rounded
    } else {
        high_byte
    };
    Ok(match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => img,
        DynamicImage::ImageLuma16(g) => DynamicImage::ImageLuma8(map(&g, high_byte)?),
        DynamicImage::ImageLumaA16(g) => DynamicImage::ImageLumaA8(map(&g, high_byte)?),
        DynamicImage::ImageRgb16(c) => DynamicImage::ImageRgb8(map(&c, colour)?),
        DynamicImage::ImageRgba16(c) => DynamicImage::ImageRgba8(map(&c, colour)?),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_at_the_edges() {
        assert_eq!(high_byte(0xffff), 255);
        assert_eq!(high_byte(0x00ff), 0);
        assert_eq!(rounded(128), 0);
        assert_eq!(rounded(129), 1);
        assert_eq!(rounded(0xffff), 255);
    }
}

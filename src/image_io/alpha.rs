//! Alpha in TIFF files as OpenCV reads it: 8-bit RGBA TIFFs go through libtiff's RGBA
//! interface, which premultiplies colour by an *unassociated* alpha (`ExtraSamples` = 2)
//! as `(c * a + 127) / 255`; the alpha is then dropped. Associated or unspecified alpha
//! and 16-bit files keep their colour (checked against OpenCV 5.0 on files
//! written by PIL and by OpenCV; the oracle's `tiff_rgba_*.tiff`).

use std::io::Cursor;

use image::DynamicImage;

/// Whether the first image of a TIFF file declares its first extra sample unassociated
/// alpha.
fn unassociated_alpha(bytes: &[u8]) -> bool {
    let Ok(mut decoder) = tiff::decoder::Decoder::new(Cursor::new(bytes)) else {
        return false;
    };
    matches!(
        decoder.find_tag(tiff::tags::Tag::ExtraSamples),
        Ok(Some(value)) if value.clone().into_u32_vec().ok().and_then(|v| v.first().copied()) == Some(2)
    )
}

/// Premultiplies an 8-bit RGBA image read from a TIFF file with unassociated alpha, as
/// OpenCV does; any other image is returned as it is.
pub(crate) fn tiff_as_opencv(image: DynamicImage, bytes: &[u8]) -> DynamicImage {
    match image {
        DynamicImage::ImageRgba8(mut rgba) if unassociated_alpha(bytes) => {
            for px in rgba.pixels_mut() {
                let a = u32::from(px[3]);
                for c in &mut px.0[..3] {
                    *c = ((u32::from(*c) * a + 127) / 255) as u8;
                }
            }
            DynamicImage::ImageRgba8(rgba)
        }
        other => other,
    }
}

//! Image files in, read as the reference reads them: 8-bit RGB, grey replicated to three
//! channels, alpha dropped.

use std::path::Path;

use image::DynamicImage;
use tch::Tensor;

use crate::config::InputRange;
use crate::input::ImageInput;

use crate::error::{LpipsError, Result};

/// Opens an image in any format the `image` crate reads.
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    image::open(path).map_err(|source| LpipsError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// A `1 x 3 x H x W` f32 tensor in [-1, 1]: 8-bit images as the reference's
/// `im2tensor` computes it (`v / 127.5 - 1` in double precision, then f32), 16-bit and
/// float images at full precision. The same conversion every entry point uses.
pub fn image_to_tensor(img: &DynamicImage) -> Result<Tensor> {
    Ok(img.to_canonical(InputRange::MinusOneToOne)?.tensor)
}

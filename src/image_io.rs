//! Images in, tensors out, read as the reference reads them: 8-bit RGB, grey replicated
//! to three channels, alpha dropped, then mapped to [-1, 1].

use std::path::Path;

use image::DynamicImage;
use tch::Tensor;

use crate::error::{LpipsError, Result};

/// Opens an image in any format the `image` crate reads.
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    image::open(path).map_err(|source| LpipsError::Image {
        path: path.to_path_buf(),
        source,
    })
}

/// A `1 x 3 x H x W` f32 tensor in [-1, 1] from the image's 8-bit RGB pixels, computed
/// as the reference's `im2tensor` does (`v / 127.5 - 1` in double precision, then f32).
pub fn image_to_tensor(img: &DynamicImage) -> Tensor {
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let plane = w * h;
    let mut data = vec![0f32; 3 * plane];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = (f64::from(px.0[c]) / 127.5 - 1.0) as f32;
        }
    }
    Tensor::from_slice(&data).view([1, 3, h as i64, w as i64])
}

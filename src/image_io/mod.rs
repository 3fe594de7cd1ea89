//! Image files in, read as the reference reads them (`cv2.imread(path)[:, :, ::-1]`):
//! the format found from the content, JPEG decoded by libjpeg-turbo with OpenCV's
//! settings, the EXIF orientation applied, grey replicated to three channels and alpha
//! dropped later by [`ImageInput`](crate::ImageInput).
//!
//! Two depths: [`load_image`] keeps 16-bit files at full precision (the library's
//! choice: more faithful than the reference for callers who want it), and
//! [`load_image_8bit`] reduces them to 8 bits as OpenCV does (what the `lpips`
//! command uses, to print the reference's numbers).

#[cfg(feature = "tiff")]
mod alpha;
mod decode;
mod depth;
mod exif;
#[cfg(feature = "jpeg")]
mod jpeg;

use std::io::Read;
use std::path::Path;

use image::DynamicImage;
use tch::Tensor;

use crate::error::{LpipsError, Result};

use decode::{DecodeError, DecodeOptions};

/// How image files are read; [`load_image`] and [`load_image_8bit`] are its two common
/// settings.
///
/// ```no_run
/// let img = lpips::ImageReader::new().eight_bit(true).accept_damaged(true).read("a.jpg")?;
/// # Ok::<(), lpips::LpipsError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[must_use = "a reader does nothing until `read` is called"]
pub struct ImageReader {
    eight_bit: bool,
    accept_damaged: bool,
}

impl ImageReader {
    /// Full precision, damaged files refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reduce 16-bit files to 8 bits as OpenCV's `imread` does (PNG and grey TIFF keep
    /// the high byte, colour TIFF rounds `v / 257`): the reference's pixels. Off by
    /// default: 16-bit files keep their precision.
    pub fn eight_bit(mut self, yes: bool) -> Self {
        self.eight_bit = yes;
        self
    }

    /// Accept a truncated or corrupt JPEG with the pixels libjpeg-turbo makes of it (as
    /// OpenCV and PIL do), logging a warning (`log::warn!`) that names the file and the
    /// damage. Off by default: such a file is an [`LpipsError::CorruptImage`].
    pub fn accept_damaged(mut self, yes: bool) -> Self {
        self.accept_damaged = yes;
        self
    }

    /// Reads an image file. A folder, FIFO or device is refused at once.
    pub fn read(&self, path: impl AsRef<Path>) -> Result<DynamicImage> {
        let path = path.as_ref();
        let out_of_memory = |bytes: u64| LpipsError::OutOfMemory {
            what: format!("image {}", path.display()),
            bytes,
        };
        let mut file = crate::files::open_regular(path)?;
        let len = file.metadata().map_err(|e| LpipsError::io(path, e))?.len();
        let mut bytes = Vec::new();
        usize::try_from(len.saturating_add(1))
            .ok()
            .and_then(|n| bytes.try_reserve_exact(n).ok())
            .ok_or_else(|| out_of_memory(len))?;
        file.read_to_end(&mut bytes)
            .map_err(|e| LpipsError::io(path, e))?;
        let options = DecodeOptions {
            eight_bit: self.eight_bit,
            accept_damaged: self.accept_damaged,
        };
        match decode::decode(&bytes, options) {
            Ok(decoded) => {
                if !decoded.warnings.is_empty() {
                    log::warn!(
                        "{}: damaged JPEG accepted ({}); its damaged part holds libjpeg's fill",
                        path.display(),
                        decoded.warnings.join("; ")
                    );
                }
                Ok(decoded.image)
            }
            Err(DecodeError::Image(source)) => Err(LpipsError::Image {
                path: path.to_path_buf(),
                source,
            }),
            Err(DecodeError::Corrupt(reason)) => Err(LpipsError::CorruptImage {
                path: path.to_path_buf(),
                reason,
            }),
            Err(DecodeError::OutOfMemory(bytes)) => Err(out_of_memory(bytes)),
        }
    }
}

/// Reads an image file as the reference's loader does (format from the content, JPEG
/// by libjpeg-turbo, EXIF orientation applied), keeping 16-bit files at full precision.
/// Truncated or corrupt JPEGs are refused ([`ImageReader::accept_damaged`] takes them).
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    ImageReader::new().read(path)
}

/// [`load_image`] with 16-bit files reduced to 8 bits as OpenCV's `imread` does: the
/// reference's exact pixels, what the `lpips` command compares.
pub fn load_image_8bit(path: impl AsRef<Path>) -> Result<DynamicImage> {
    ImageReader::new().eight_bit(true).read(path)
}

/// An 8-bit RGB image of a tensor in [-1, 1] (`3 x H x W`, or `1 x 3 x H x W`; any
/// device, float kind, with or without gradients): `(v + 1) * 127.5`, rounded to the
/// nearest level and clamped to 0..255, so that [`image_to_tensor`](crate::image_to_tensor) of an 8-bit image
/// comes back unchanged. E.g. to save an image optimised against the metric.
pub fn tensor_to_image(t: &Tensor) -> Result<DynamicImage> {
    if !t.defined() {
        return Err(LpipsError::InvalidArgument {
            argument: "tensor_to_image(t)",
            value: "undefined".into(),
            expected: "a 3 x H x W tensor (`Tensor::new()` holds no values)",
        });
    }
    let shape = t.size();
    let chw = match shape.as_slice() {
        [3, _, _] => t.shallow_clone(),
        [1, 3, _, _] => t.f_squeeze_dim(0)?,
        _ => {
            return Err(LpipsError::BadShape {
                which: "input",
                shape,
            });
        }
    };
    let (h, w) = (chw.size()[1], chw.size()[2]);
    let x = chw
        .f_detach()?
        .f_to_device(tch::Device::Cpu)?
        .f_to_kind(tch::Kind::Float)?;
    if !bool::try_from(x.f_isfinite()?.f_all()?)? {
        return Err(LpipsError::NonFinite { which: "input" });
    }
    let bytes = x
        .f_add_scalar(1.0)?
        .f_mul_scalar(127.5)?
        .f_round()?
        .f_clamp(0.0, 255.0)?
        .f_to_kind(tch::Kind::Uint8)?
        .f_permute([1, 2, 0])?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    let bytes = Vec::<u8>::try_from(bytes)?;
    let (w, h) = (u32::try_from(w), u32::try_from(h));
    match (w, h) {
        (Ok(w), Ok(h)) => image::RgbImage::from_raw(w, h, bytes)
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(|| LpipsError::Internal("an image buffer of the wrong length".into())),
        _ => Err(LpipsError::InvalidArgument {
            argument: "tensor_to_image(t)",
            value: format!("{h:?} x {w:?}"),
            expected: "at most 2^32 - 1 pixels a side",
        }),
    }
}

/// Whether the JPEG decoder runs libjpeg-turbo's SIMD code (built when `nasm` was found
/// at build time). Valid files decode to the same pixels either way; for corrupt data
/// accepted with [`ImageReader::accept_damaged`], coefficients out of range are clamped
/// by the SIMD code (as in OpenCV's and PIL's builds) but wrap in the plain C code, so
/// a few pixels can differ without it.
pub fn jpeg_simd() -> bool {
    #[cfg(feature = "jpeg")]
    {
        jpeg::simd()
    }
    #[cfg(not(feature = "jpeg"))]
    {
        false
    }
}

//! Everything that can be compared, converted by one path to an `N x 3 x H x W` f32
//! tensor in [-1, 1] (the "canonical" form the model works on).

use std::path::{Path, PathBuf};

use image::DynamicImage;
use ndarray::{ArrayView3, ArrayView4};
use tch::{Kind, Tensor};

use crate::config::InputRange;
use crate::error::{LpipsError, Result};

mod planar;

/// An input converted for the model: `N x 3 x H x W` f32 values in [-1, 1] on the CPU
/// (before any range check).
#[derive(Debug)]
pub struct Canonical {
    /// The images.
    pub tensor: Tensor,
    /// The range the values were declared in (for error messages).
    pub declared: InputRange,
    /// Whether they came from integer pixels that this crate converted (then they are in
    /// range by construction, and a bright image is not a [0, 1] mistake).
    pub from_pixels: bool,
}

impl Canonical {
    fn declared(tensor: Tensor, declared: InputRange) -> Canonical {
        Canonical {
            tensor,
            declared,
            from_pixels: false,
        }
    }

    fn pixels(tensor: Tensor) -> Canonical {
        Canonical {
            tensor,
            declared: InputRange::MinusOneToOne,
            from_pixels: true,
        }
    }
}

/// An image or a batch of images the model can compare.
///
/// Implemented for [`DynamicImage`] (every pixel type), file paths (any format the
/// `image` crate reads), `ndarray` views with their layout and range stated ([`HwcU8`],
/// [`Hwc`], [`Chw`], [`Nchw`]) and tch tensors ([`Ranged`], or a bare `Tensor` in the
/// model's own [`InputRange`]).
pub trait ImageInput {
    /// The images as an `N x 3 x H x W` f32 tensor on the CPU, values in [-1, 1]
    /// (before any range check), with the range they were declared in.
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical>;

    /// The file the images are read from, when the input is a path: errors about the
    /// pair (e.g. [`LpipsError::SizeMismatch`]) name it. `None` for images in memory.
    fn source_file(&self) -> Option<&Path> {
        None
    }
}

/// An `H x W x C` u8 array (C = 1, 3 or 4; grey is replicated, alpha dropped), 0..255.
#[derive(Debug, Clone, Copy)]
pub struct HwcU8<'a>(pub ArrayView3<'a, u8>);

/// An `H x W x 3` f32 array in the stated range.
#[derive(Debug, Clone, Copy)]
pub struct Hwc<'a>(pub ArrayView3<'a, f32>, pub InputRange);

/// A `3 x H x W` f32 array in the stated range.
#[derive(Debug, Clone, Copy)]
pub struct Chw<'a>(pub ArrayView3<'a, f32>, pub InputRange);

/// An `N x 3 x H x W` f32 array in the stated range.
#[derive(Debug, Clone, Copy)]
pub struct Nchw<'a>(pub ArrayView4<'a, f32>, pub InputRange);

/// A tch tensor (`N x 3 x H x W`, or `3 x H x W` for one image) in the stated range.
///
/// A `u8` tensor ([`Kind::Uint8`]) holds 8-bit pixels (0..255) whatever the range
/// stated: it is read as an 8-bit image is (`v / 127.5 - 1`).
#[derive(Debug)]
pub struct Ranged<'a>(pub &'a Tensor, pub InputRange);

fn to_minus_one_one(x: Tensor, range: InputRange) -> Result<Tensor> {
    Ok(match range {
        InputRange::MinusOneToOne => x,
        InputRange::ZeroToOne => x.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?,
    })
}

fn bad_shape(shape: &[usize]) -> LpipsError {
    LpipsError::BadShape {
        which: "input",
        shape: shape.iter().map(|&d| d as i64).collect(),
    }
}

impl ImageInput for DynamicImage {
    /// 8-bit images exactly as the reference reads them (`v / 127.5 - 1`); 16-bit and
    /// float images at their full precision.
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        Ok(Canonical::pixels(planar::image_tensor(self)?))
    }
}

impl ImageInput for Path {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        crate::image_io::load_image(self)?.to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        Some(self)
    }
}

impl ImageInput for PathBuf {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        self.as_path().to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        Some(self.as_path())
    }
}

impl ImageInput for str {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        Path::new(self).to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        Some(Path::new(self))
    }
}

impl ImageInput for String {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        Path::new(self).to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        Some(Path::new(self))
    }
}

impl ImageInput for std::ffi::OsStr {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        Path::new(self).to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        Some(Path::new(self))
    }
}

impl ImageInput for HwcU8<'_> {
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        let (h, w, c) = self.0.dim();
        if !matches!(c, 1 | 3 | 4) {
            return Err(bad_shape(&[h, w, c]));
        }
        let x = match self.0.as_slice() {
            Some(samples) => planar::planar(samples, c, (h as i64, w as i64), planar::from_u8)?,
            // A strided view: each plane read through the view, still without a copy.
            None => planar::filled(&[1, 3, h as i64, w as i64], |out| {
                for (plane, dst) in out.chunks_exact_mut((h * w).max(1)).enumerate() {
                    let src = if c < 3 { 0 } else { plane };
                    let lane = self.0.index_axis(ndarray::Axis(2), src);
                    for (d, &v) in dst.iter_mut().zip(lane.iter()) {
                        *d = planar::from_u8(v);
                    }
                }
            })?,
        };
        Ok(Canonical::pixels(x))
    }
}

/// Values in logical order (whatever the view's strides) as a tensor of `shape`.
fn from_f32_view<'a>(
    values: impl Iterator<Item = &'a f32>,
    shape: [i64; 4],
    range: InputRange,
) -> Result<Canonical> {
    let x = planar::filled(&shape, |out| {
        for (d, &s) in out.iter_mut().zip(values) {
            *d = s;
        }
    })?;
    Ok(Canonical::declared(to_minus_one_one(x, range)?, range))
}

impl ImageInput for Hwc<'_> {
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        let (h, w, c) = self.0.dim();
        if c != 3 {
            return Err(bad_shape(&[h, w, c]));
        }
        let chw = self.0.permuted_axes([2, 0, 1]);
        from_f32_view(chw.iter(), [1, 3, h as i64, w as i64], self.1)
    }
}

impl ImageInput for Chw<'_> {
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        let (c, h, w) = self.0.dim();
        if c != 3 {
            return Err(bad_shape(&[c, h, w]));
        }
        from_f32_view(self.0.iter(), [1, 3, h as i64, w as i64], self.1)
    }
}

impl ImageInput for Nchw<'_> {
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        let (n, c, h, w) = self.0.dim();
        if c != 3 {
            return Err(bad_shape(&[n, c, h, w]));
        }
        from_f32_view(self.0.iter(), [n as i64, 3, h as i64, w as i64], self.1)
    }
}

fn tensor_canonical(t: &Tensor, range: InputRange) -> Result<Canonical> {
    // `Tensor::new()` holds no values, and tch's `dim`, `size` and `device` panic on it.
    if !t.defined() {
        return Err(LpipsError::InvalidArgument {
            argument: "input tensor",
            value: "undefined".into(),
            expected: "a tensor holding images (`Tensor::new()` holds no values)",
        });
    }
    // The shape as the caller passed it, for the error (before one image gains its N).
    let shape = t.size();
    let channels = match shape.len() {
        3 => shape[0],
        4 => shape[1],
        _ => -1,
    };
    if channels != 3 {
        return Err(LpipsError::BadShape {
            which: "input",
            shape,
        });
    }
    let t = if shape.len() == 3 {
        t.f_unsqueeze(0)?
    } else {
        t.shallow_clone()
    };
    let kind = t.f_kind()?;
    // 8-bit pixels, whatever the declared range: read as the reference reads images.
    if kind == Kind::Uint8 {
        let x = t
            .f_to_kind(Kind::Float)?
            .f_div_scalar(127.5)?
            .f_sub_scalar(1.0)?;
        return Ok(Canonical::pixels(x));
    }
    if !matches!(
        kind,
        Kind::Int8
            | Kind::Int16
            | Kind::Int
            | Kind::Int64
            | Kind::Half
            | Kind::BFloat16
            | Kind::Float
            | Kind::Double
    ) {
        return Err(LpipsError::InputKind {
            kind: format!("{kind:?}"),
        });
    }
    let t = t.f_to_kind(Kind::Float)?;
    Ok(Canonical::declared(to_minus_one_one(t, range)?, range))
}

impl ImageInput for Ranged<'_> {
    fn to_canonical(&self, _: InputRange) -> Result<Canonical> {
        tensor_canonical(self.0, self.1)
    }
}

impl ImageInput for Tensor {
    /// In the model's declared [`InputRange`]; a `u8` tensor holds 8-bit pixels (0..255),
    /// read as an 8-bit image is.
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        tensor_canonical(self, model_range)
    }
}

impl<T: ImageInput + ?Sized> ImageInput for &T {
    fn to_canonical(&self, model_range: InputRange) -> Result<Canonical> {
        (**self).to_canonical(model_range)
    }

    fn source_file(&self) -> Option<&Path> {
        (**self).source_file()
    }
}

/// A `1 x 3 x H x W` f32 tensor in [-1, 1]: 8-bit images as the reference's
/// `im2tensor` computes it (`v / 127.5 - 1` in double precision, then f32), 16-bit and
/// float images at full precision. The same conversion every entry point uses.
pub fn image_to_tensor(img: &DynamicImage) -> Result<Tensor> {
    Ok(img.to_canonical(InputRange::MinusOneToOne)?.tensor)
}

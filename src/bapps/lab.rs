//! The reference's way from a [-1, 1] patch to 8-bit RGB and to CIE Lab: its
//! `tensor2im` and `tensor2tensorlab(..., to_norm=False)`, the latter through
//! scikit-image's `rgb2lab` (sRGB, D65, 2-degree observer).

use std::sync::OnceLock;

use ndarray::ArrayView3;

/// `tensor2im`: `(x + 1) * 127.5` in f32, truncated to `u8` (NumPy's `astype`), so a
/// value of 255 read through the loader can come back as 254. Returns `H x W` pixels
/// in row-major order.
pub(super) fn to_u8(patch: ArrayView3<f32>) -> Vec<[u8; 3]> {
    let (_, height, width) = patch.dim();
    let mut out = Vec::with_capacity(height * width);
    for y in 0..height {
        for x in 0..width {
            // `as` truncates toward zero and saturates, like NumPy's cast for values in
            // range; out-of-range inputs (not possible from the loader) saturate here.
            out.push([0, 1, 2].map(|c| ((patch[[c, y, x]] + 1.0) * 127.5) as u8));
        }
    }
    out
}

/// CIE Lab of an 8-bit sRGB pixel as scikit-image computes it in f64, then rounded to
/// f32 as the reference's `np2tensor` stores it.
pub(super) fn rgb_to_lab(pixel: [u8; 3]) -> [f32; 3] {
    // scikit-image's sRGB matrix (rgb2xyz) and D65 2-degree white point (xyz2lab).
    const XYZ_FROM_RGB: [[f64; 3]; 3] = [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ];
    const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];
    let table = linear_table();
    let [r, g, b] = pixel.map(|v| table[usize::from(v)]);
    let f = |row: usize| {
        let m = XYZ_FROM_RGB[row];
        let t = (r * m[0] + g * m[1] + b * m[2]) / WHITE[row];
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(0), f(1), f(2));
    [
        (116.0 * fy - 16.0) as f32,
        (500.0 * (fx - fy)) as f32,
        (200.0 * (fy - fz)) as f32,
    ]
}

/// Linear-light value of each 8-bit sRGB level: scikit-image's `img_as_float` (a
/// multiplication by 1/255) and its sRGB curve with the 0.04045 threshold.
fn linear_table() -> &'static [f64; 256] {
    static TABLE: OnceLock<[f64; 256]> = OnceLock::new();
    TABLE.get_or_init(|| {
        std::array::from_fn(|v| {
            let c = v as f64 * (1.0 / 255.0);
            if c > 0.04045 {
                ((c + 0.055) / 1.055).powf(2.4)
            } else {
                c / 12.92
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_and_black() {
        let white = rgb_to_lab([255, 255, 255]);
        assert!((white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 1e-2 && white[2].abs() < 1e-2);
        assert_eq!(rgb_to_lab([0, 0, 0]), [0.0, 0.0, 0.0]);
    }

    #[test]
    fn tensor2im_truncates() {
        let patch = ndarray::Array3::from_shape_fn((3, 1, 1), |(c, _, _)| [-1.0, 1.0, 0.0][c]);
        assert_eq!(to_u8(patch.view()), vec![[0, 255, 127]]);
    }
}

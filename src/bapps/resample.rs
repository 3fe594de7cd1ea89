//! Pillow's bilinear resampling of 8-bit images (`Image.resize(size, Image.BILINEAR)`),
//! pixel for pixel: what torchvision's `Resize` does to the PIL images of the reference's
//! BAPPS loader.
//!
//! Pillow resamples in two separable passes, horizontal first (only over the rows the
//! vertical pass will read), then vertical, each pass rounding and clipping to 8 bits.
//! Each output sample is a weighted sum of input samples with the triangle filter, its
//! support (1 input pixel) widened by the downscaling factor (antialiasing; not narrowed
//! when upscaling), the weights normalised to sum 1 in double precision and then turned
//! into fixed point with 22 fraction bits, rounded half away from zero. A pass whose
//! size does not change is skipped. Written from the algorithm's description in Pillow's
//! `Resample.c` (13.0); checked pixel for pixel against Pillow in
//! `scripts/gen_bapps.py`'s oracle.

use image::RgbImage;

/// Fraction bits of the fixed-point weights: 32 bits less 8 for the sample and 2 for
/// overflow (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The weights of one pass: for each output position the first input position it reads,
/// how many it reads, and their fixed-point weights (`ksize` slots per output).
struct Weights {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    fixed: Vec<i32>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// Pillow's `precompute_coeffs` for the bilinear filter on the whole input (`box` from 0
/// to `in_size`), followed by `normalize_coeffs_8bpc`. `None` if the sizes are 0.
fn weights(in_size: usize, out_size: usize) -> Option<Weights> {
    if in_size == 0 || out_size == 0 {
        return None;
    }
    // Pillow holds the box in single precision: `(double)(in1 - in0) / outSize`.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle's support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;
    let mut bounds = Vec::new();
    bounds.try_reserve_exact(out_size).ok()?;
    let mut fixed: Vec<i32> = zeroed(out_size.checked_mul(ksize)?)?;
    let mut k = vec![0f64; ksize];
    for (xx, out) in fixed.chunks_exact_mut(ksize).enumerate() {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) conversions: truncation toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(0) as usize;
        let count = xmax.saturating_sub(xmin).min(ksize);
        let mut ww = 0.0;
        for (x, w) in k.iter_mut().enumerate().take(count) {
            *w = triangle(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
            ww += *w;
        }
        for (x, slot) in out.iter_mut().enumerate().take(count) {
            let w = if ww != 0.0 { k[x] / ww } else { k[x] };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            *slot = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, count));
    }
    Some(Weights {
        bounds,
        ksize,
        fixed,
    })
}

/// The fixed-point sum back to 8 bits: Pillow's `clip8` (the sum starts at half a unit,
/// so the shift rounds).
fn clip8(sum: i32) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

fn weighted(samples: impl Iterator<Item = u8>, k: &[i32]) -> u8 {
    let mut sum: i32 = 1 << (PRECISION_BITS - 1);
    for (v, &w) in samples.zip(k) {
        sum = sum.wrapping_add(i32::from(v).wrapping_mul(w));
    }
    clip8(sum)
}

/// Allocates `len` zeroed values, or `None` when memory is short.
fn zeroed<T: Clone + Default>(len: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, T::default());
    Some(v)
}

/// `image.resize((width, height), Image.BILINEAR)` as Pillow computes it for an RGB
/// image. `None` when a size is 0 or the buffers cannot be allocated.
pub(crate) fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> Option<RgbImage> {
    let (in_w, in_h) = (image.width() as usize, image.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if (in_w, in_h) == (out_w, out_h) {
        return Some(image.clone());
    }
    let vertical = weights(in_h, out_h)?;
    // The rows the vertical pass reads.
    let first_row = vertical.bounds.first()?.0;
    let last_row = vertical.bounds.last().map(|&(min, n)| min + n)?;
    let src = image.as_raw();

    // Horizontal pass over those rows (or the image as it is).
    let (mid, mid_w, row_offset) = if out_w != in_w {
        let horizontal = weights(in_w, out_w)?;
        let rows = last_row.checked_sub(first_row)?;
        let mut mid = zeroed(rows.checked_mul(out_w)?.checked_mul(3)?)?;
        for (y, out_row) in mid.chunks_exact_mut(out_w * 3).enumerate() {
            let in_row = src.get((first_row + y) * in_w * 3..(first_row + y + 1) * in_w * 3)?;
            for (xx, &(xmin, n)) in horizontal.bounds.iter().enumerate() {
                let k = &horizontal.fixed[xx * horizontal.ksize..][..n];
                for c in 0..3 {
                    let samples = (xmin..xmin + n).map(|x| in_row[x * 3 + c]);
                    out_row[xx * 3 + c] = weighted(samples, k);
                }
            }
        }
        (mid, out_w, first_row)
    } else {
        (src.clone(), in_w, 0)
    };

    // Vertical pass.
    let out = if out_h != in_h {
        let mut out = zeroed(out_h.checked_mul(mid_w)?.checked_mul(3)?)?;
        let stride = mid_w * 3;
        for (yy, &(ymin, n)) in vertical.bounds.iter().enumerate() {
            let k = &vertical.fixed[yy * vertical.ksize..][..n];
            let start = ymin.checked_sub(row_offset)?;
            for i in 0..stride {
                let samples = (start..start + n).map(|y| mid[y * stride + i]);
                out[yy * stride + i] = weighted(samples, k);
            }
        }
        out
    } else {
        mid
    };
    RgbImage::from_raw(width, height, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [
            (80, 64),
            (64, 80),
            (256, 64),
            (48, 64),
            (97, 64),
            (1, 64),
            (64, 1),
        ] {
            let w = weights(i, o).unwrap();
            for (xx, &(_, n)) in w.bounds.iter().enumerate() {
                let sum: i64 = w.fixed[xx * w.ksize..][..n]
                    .iter()
                    .map(|&v| i64::from(v))
                    .sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o} at {xx}: {sum}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let img = RgbImage::from_pixel(97, 33, image::Rgb([7, 128, 255]));
        for (w, h) in [(64, 21), (150, 64), (97, 64), (64, 33)] {
            let out = resize_bilinear(&img, w, h).unwrap();
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.pixels().all(|p| p.0 == [7, 128, 255]), "{w}x{h}");
        }
    }

    #[test]
    fn zero_sizes_are_refused() {
        let img = RgbImage::new(4, 4);
        assert!(resize_bilinear(&img, 0, 4).is_none());
        assert!(resize_bilinear(&img, 4, 0).is_none());
    }
}

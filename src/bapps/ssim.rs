//! scikit-image's `structural_similarity` with the arguments the reference passes
//! (`data_range`, channels last; defaults otherwise: 7 x 7 uniform window, sample
//! covariance, K1 = 0.01, K2 = 0.03), in the input's own float type as scikit-image
//! computes it: f64 for the reference's RGB images, f32 for its Lab arrays.

// `Real` is f32 or f64 only: their operators cannot panic (the library denies this
// lint for tensor operators, which can).
#![allow(clippy::arithmetic_side_effects)]

use std::ops::{Add, Div, Mul, Sub};

const WIN: usize = 7;
const RADIUS: usize = (WIN - 1) / 2;

/// The float type scikit-image computes in: every array operation rounds to it.
pub(super) trait Real:
    Copy + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + Div<Output = Self>
{
    fn of(x: f64) -> Self;
    fn f64(self) -> f64;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
}

/// Mean SSIM over channels of two `height x width` images given as channel planes
/// (row-major). Both sides must be at least 7 pixels (the caller checks).
pub(super) fn mean_ssim<F: Real>(
    a: &[Vec<F>; 3],
    b: &[Vec<F>; 3],
    height: usize,
    width: usize,
    data_range: f64,
) -> F {
    let per_channel: Vec<F> = (0..3)
        .map(|c| channel_ssim(&a[c], &b[c], height, width, data_range))
        .collect();
    // NumPy's mean of three values of the float type: summed, then divided, in it.
    (per_channel[0] + per_channel[1] + per_channel[2]) / F::of(3.0)
}

fn channel_ssim<F: Real>(x: &[F], y: &[F], height: usize, width: usize, data_range: f64) -> F {
    let filter = |v: &[F]| uniform_filter(v, height, width);
    let products = |p: &[F], q: &[F]| p.iter().zip(q).map(|(&s, &t)| s * t).collect::<Vec<F>>();
    let ux = filter(x);
    let uy = filter(y);
    let uxx = filter(&products(x, x));
    let uyy = filter(&products(y, y));
    let uxy = filter(&products(x, y));
    let np = (WIN * WIN) as f64;
    let cov_norm = F::of(np / (np - 1.0));
    let c1 = F::of((0.01 * data_range) * (0.01 * data_range));
    let c2 = F::of((0.03 * data_range) * (0.03 * data_range));
    let two = F::of(2.0);
    let mut sum = 0.0;
    for row in RADIUS..height - RADIUS {
        for col in RADIUS..width - RADIUS {
            let i = row * width + col;
            let (mx, my) = (ux[i], uy[i]);
            let vx = cov_norm * (uxx[i] - mx * mx);
            let vy = cov_norm * (uyy[i] - my * my);
            let vxy = cov_norm * (uxy[i] - mx * my);
            let a1 = two * mx * my + c1;
            let a2 = two * vxy + c2;
            let b1 = mx * mx + my * my + c1;
            let b2 = vx + vy + c2;
            sum += ((a1 * a2) / (b1 * b2)).f64();
        }
    }
    let count = ((height - 2 * RADIUS) * (width - 2 * RADIUS)) as f64;
    F::of(sum / count)
}

/// SciPy's `uniform_filter(size=7, mode='reflect')`: a running mean along rows of the
/// array (axis 0) then along columns, in f64 inside each pass and rounded to the float
/// type between passes, with edges mirrored including the edge pixel (`dcba|abcd|dcba`).
fn uniform_filter<F: Real>(src: &[F], height: usize, width: usize) -> Vec<F> {
    let mut down = vec![F::of(0.0); src.len()];
    let mut line = Vec::with_capacity(height.max(width) + WIN);
    let mut out = vec![0.0; height.max(width)];
    for col in 0..width {
        extend(&mut line, height, |row| src[row * width + col].f64());
        running_mean(&line, &mut out[..height]);
        for row in 0..height {
            down[row * width + col] = F::of(out[row]);
        }
    }
    let mut across = vec![F::of(0.0); src.len()];
    for row in 0..height {
        extend(&mut line, width, |col| down[row * width + col].f64());
        running_mean(&line, &mut out[..width]);
        for col in 0..width {
            across[row * width + col] = F::of(out[col]);
        }
    }
    across
}

/// Fills `line` with `n` values and `RADIUS` mirrored ones on each side.
fn extend(line: &mut Vec<f64>, n: usize, value: impl Fn(usize) -> f64) {
    line.clear();
    for i in 0..n + 2 * RADIUS {
        let j = i as isize - RADIUS as isize;
        let k = if j < 0 {
            (-j - 1) as usize
        } else if j as usize >= n {
            2 * n - j as usize - 1
        } else {
            j as usize
        };
        line.push(value(k));
    }
}

/// SciPy's running sum: the first window summed, then each step adds
/// `(entering - leaving) / size`; the order matters in the last bits.
fn running_mean(line: &[f64], out: &mut [f64]) {
    let size = WIN as f64;
    let mut acc = line[..WIN].iter().fold(0.0, |s, &v| s + v) / size;
    out[0] = acc;
    for l in 1..out.len() {
        acc += (line[l + WIN - 1] - line[l - 1]) / size;
        out[l] = acc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_have_ssim_one() {
        let plane: Vec<f64> = (0..100).map(|i| f64::from(i * 37 % 255)).collect();
        let img = [plane.clone(), plane.clone(), plane];
        assert_eq!(mean_ssim(&img, &img, 10, 10, 255.0), 1.0);
    }

    #[test]
    fn constant_image_filters_to_itself() {
        let plane = vec![3.5f64; 9 * 8];
        assert!(
            uniform_filter(&plane, 9, 8)
                .iter()
                .all(|&v| (v - 3.5).abs() < 1e-12)
        );
    }
}

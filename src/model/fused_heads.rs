//! `normalize_tensor`, the squared difference and a `NetLinLayer` in one pass over a
//! pair of raw trunk feature maps, for passes without gradients on the CPU in f32.
//!
//! As libtorch operations the three take some eight passes over maps as large as the
//! trunk's (the squares, their channel sums, the division, the difference, its square,
//! the head), each writing a fresh map: on VGG at 256x256 that was about a sixth of a
//! comparison's time. Here each pixel's channels are read once, while they sit in the
//! L1 cache, and only the head's one value per pixel is written. In real arithmetic the
//! result is the reference's; in f32 only the order of the channel sums differs.

use tch::{Device, Kind, Tensor};

use super::features::{EPS, MIN_SQUARED_NORM};
use crate::error::{LpipsError, Result};
use crate::layers::team;

/// The head map `N x 1 x H x W` (`sum_c w_c (a_c / |a| - b_c / |b|)^2` per pixel, with the
/// reference's epsilon; `w_c = 1` without heads) of two raw feature maps `N x C x H x W`
/// (one side may hold one image), or None where this path does not apply: autograd,
/// another device or kind, or shapes it does not take (the caller then uses libtorch's
/// operations).
pub(crate) fn head_map(a: &Tensor, b: &Tensor, head: Option<&Tensor>) -> Result<Option<Tensor>> {
    let applies = |t: &Tensor| {
        !t.requires_grad() && t.device() == Device::Cpu && t.f_kind().ok() == Some(Kind::Float)
    };
    if !applies(a) || !applies(b) {
        return Ok(None);
    }
    let (&[na, c, h, w], &[nb, cb, hb, wb]) = (&a.size()[..], &b.size()[..]) else {
        return Ok(None);
    };
    if (c, h, w) != (cb, hb, wb) || (na != nb && na != 1 && nb != 1) {
        return Ok(None);
    }
    // Heads being trained (their gradient wanted) keep libtorch's operations; an
    // operation's result tracks a gradient only where grad mode is on.
    if let Some(h) = head {
        if h.requires_grad() && h.f_mul_scalar(1.0)?.requires_grad() {
            return Ok(None);
        }
    }
    let n = na.max(nb);
    let weights: Vec<f32> = match head {
        Some(t) if t.numel() == usize::try_from(c).unwrap_or(0) => {
            Vec::<f32>::try_from(t.f_to_kind(Kind::Float)?.f_contiguous()?.f_view([-1])?)?
        }
        Some(_) => return Ok(None),
        None => vec![1.0; usize::try_from(c).unwrap_or(0)],
    };
    let shape = Shape {
        pixels: to_usize(h)? * to_usize(w)?,
        channels: to_usize(c)?,
        a_images: to_usize(na)?,
        b_images: to_usize(nb)?,
    };
    let total = to_usize(n)? * shape.pixels;
    if total == 0 || shape.channels == 0 {
        return Ok(Some(Tensor::f_zeros(
            [n, 1, h, w],
            (Kind::Float, Device::Cpu),
        )?));
    }
    let out = Tensor::f_empty([n, 1, h, w], (Kind::Float, Device::Cpu))?;
    // Channels-last and contiguous: each pixel's channels side by side.
    let (a, b) = (nhwc(a)?, nhwc(b)?);
    let (a_len, b_len) = (
        shape.a_images * shape.pixels * shape.channels,
        shape.b_images * shape.pixels * shape.channels,
    );
    // SAFETY: `a` and `b` are contiguous NHWC f32 CPU tensors of these lengths (their
    // shapes checked above), alive and only read until the end of this function; `out`
    // was just allocated here with `total` values and nothing else accesses it.
    let (a_values, b_values, output) = unsafe {
        (
            std::slice::from_raw_parts(a.data_ptr() as *const f32, a_len),
            std::slice::from_raw_parts(b.data_ptr() as *const f32, b_len),
            std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, total),
        )
    };
    let threads = usize::try_from(tch::get_num_threads())
        .unwrap_or(1)
        .clamp(1, total.div_ceil(MIN_PIXELS_PER_THREAD));
    let mut parts = Vec::with_capacity(threads);
    let mut rest = output;
    let mut done = 0;
    for t in 0..threads {
        let end = total * (t + 1) / threads;
        let (part, tail) = rest.split_at_mut(end - done);
        parts.push(std::sync::Mutex::new(Some((done, part))));
        rest = tail;
        done = end;
    }
    let job = |t: usize| {
        if let Some((start, part)) = parts.get(t).and_then(|p| p.lock().ok()?.take()) {
            pixels(&shape, a_values, b_values, &weights, start, part);
        }
    };
    let fine = team::for_each(threads, &job);
    // A part whose thread could not start is done here.
    (0..threads).for_each(job);
    if !fine {
        return Err(LpipsError::Internal("a fused head thread panicked".into()));
    }
    Ok(Some(out))
}

/// Below this many pixels a thread's start costs more than its share of the work.
const MIN_PIXELS_PER_THREAD: usize = 1024;

struct Shape {
    pixels: usize,
    channels: usize,
    a_images: usize,
    b_images: usize,
}

/// `N x H x W x C`, contiguous (a view, no copy, of a channels-last map).
fn nhwc(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_permute([0, 2, 3, 1])?.f_contiguous()?)
}

fn to_usize(v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| LpipsError::Internal(format!("a negative size {v}")))
}

/// The head values of pixels `start..start + out.len()` (global index over images and
/// pixels), vectorised for AVX-512 where the CPU has it (the same operations in the
/// same order either way, so the results are equal).
fn pixels(shape: &Shape, a: &[f32], b: &[f32], w: &[f32], start: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        unsafe { pixels_avx512(shape, a, b, w, start, out) };
        return;
    }
    pixels_portable(shape, a, b, w, start, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn pixels_avx512(shape: &Shape, a: &[f32], b: &[f32], w: &[f32], start: usize, out: &mut [f32]) {
    pixels_portable(shape, a, b, w, start, out);
}

/// Lanes of the channel sums: one AVX-512 register of f32.
const LANES: usize = 16;

#[inline(always)]
fn pixels_portable(shape: &Shape, a: &[f32], b: &[f32], w: &[f32], start: usize, out: &mut [f32]) {
    let c = shape.channels;
    for (k, slot) in out.iter_mut().enumerate() {
        let global = start + k;
        let (image, pixel) = (global / shape.pixels, global % shape.pixels);
        let at = |images: usize| {
            let i = if images == 1 { 0 } else { image };
            (i * shape.pixels + pixel) * c
        };
        let (Some(x), Some(y)) = (
            a.get(at(shape.a_images)..at(shape.a_images) + c),
            b.get(at(shape.b_images)..at(shape.b_images) + c),
        ) else {
            *slot = f32::NAN;
            continue;
        };
        let norm = |v: &[f32]| {
            let squares = lane_sum(v, |e| e * e);
            (squares.max(MIN_SQUARED_NORM as f32).sqrt()) + EPS as f32
        };
        let (nx, ny) = (norm(x), norm(y));
        *slot = weighted_sum(x, y, w, nx, ny);
    }
}

/// `sum_i f(v_i)` in `LANES` partial sums, then those added in order.
#[inline(always)]
fn lane_sum(v: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (s, &e) in acc.iter_mut().zip(chunk) {
            *s += f(e);
        }
    }
    for (s, &e) in acc.iter_mut().zip(tail) {
        *s += f(e);
    }
    acc.iter().sum()
}

/// `sum_i w_i (x_i / nx - y_i / ny)^2` in `LANES` partial sums, then those added in
/// order.
#[inline(always)]
fn weighted_sum(x: &[f32], y: &[f32], w: &[f32], nx: f32, ny: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let add = |acc: &mut [f32; LANES], x: &[f32], y: &[f32], w: &[f32]| {
        for (((s, &x), &y), &w) in acc.iter_mut().zip(x).zip(y).zip(w) {
            let d = x / nx - y / ny;
            *s += w * (d * d);
        }
    };
    let (xs, ys, ws) = (
        x.chunks_exact(LANES),
        y.chunks_exact(LANES),
        w.chunks_exact(LANES),
    );
    let tails = (xs.remainder(), ys.remainder(), ws.remainder());
    for ((xc, yc), wc) in xs.zip(ys).zip(ws) {
        add(&mut acc, xc, yc, wc);
    }
    add(&mut acc, tails.0, tails.1, tails.2);
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::features::normalize_tensor;

    /// The reference's formula as libtorch operations.
    fn reference(a: &Tensor, b: &Tensor, head: Option<&Tensor>) -> Tensor {
        let d = (normalize_tensor(a).unwrap() - normalize_tensor(b).unwrap()).square();
        match head {
            Some(w) => d.conv2d(w, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1),
            None => d.sum_dim_intlist(1, true, None::<Kind>),
        }
    }

    fn close(got: &Tensor, want: &Tensor) {
        assert_eq!(got.size(), want.size());
        let diff = (got - want).abs().max().double_value(&[]);
        let scale = want.abs().max().double_value(&[]);
        assert!(diff <= 1e-6 + 1e-5 * scale, "{diff} against {scale}");
    }

    #[test]
    fn equals_the_reference_formula_on_every_shape() {
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        // Channels that are and are not multiples of the 16 lanes, one image against
        // many either way, and enough pixels for several threads.
        for (na, nb, c, h, w) in [
            (3, 3, 37, 5, 7),
            (1, 3, 16, 4, 4),
            (2, 1, 64, 3, 9),
            (2, 2, 20, 40, 30),
            (1, 1, 5, 1, 1),
        ] {
            let a = Tensor::randn([na, c, h, w], opts);
            let b = Tensor::randn([nb, c, h, w], opts);
            let head = Tensor::rand([1, c, 1, 1], opts);
            for head in [None, Some(&head)] {
                let got = head_map(&a, &b, head).unwrap().expect("applies");
                close(&got, &reference(&a, &b, head));
            }
            // A channels-last map (the trunk's layout) gives the same.
            let a_cl = crate::layers::channels_last(&a).unwrap();
            let got = head_map(&a_cl, &b, Some(&head)).unwrap().expect("applies");
            close(&got, &reference(&a, &b, Some(&head)));
        }
    }

    #[test]
    fn zero_features_give_zero_and_nan_stays_nan() {
        let opts = (Kind::Float, Device::Cpu);
        let zeros = Tensor::zeros([1, 24, 3, 3], opts);
        let got = head_map(&zeros, &zeros, None).unwrap().expect("applies");
        assert_eq!(got.abs().max().double_value(&[]), 0.0);
        let nan = Tensor::randn([1, 24, 3, 3], opts);
        let _ = nan.get(0).get(5).get(1).get(2).fill_(f64::NAN);
        let got = head_map(&nan, &zeros, None).unwrap().expect("applies");
        assert!(got.get(0).get(0).get(1).get(2).double_value(&[]).is_nan());
        assert_eq!(got.isnan().sum(Kind::Int64).int64_value(&[]), 1);
    }

    #[test]
    fn gradients_and_other_kinds_are_left_to_libtorch() {
        let opts = (Kind::Float, Device::Cpu);
        let a = Tensor::randn([1, 8, 2, 2], opts);
        let head = Tensor::rand([1, 8, 1, 1], opts).set_requires_grad(true);
        assert!(
            head_map(&a.copy().set_requires_grad(true), &a, None)
                .unwrap()
                .is_none()
        );
        assert!(head_map(&a, &a, Some(&head)).unwrap().is_none());
        let _guard = tch::no_grad_guard();
        assert!(head_map(&a, &a, Some(&head)).unwrap().is_some());
        let half = a.to_kind(Kind::Half);
        assert!(head_map(&half, &half, None).unwrap().is_none());
        let other = Tensor::randn([1, 9, 2, 2], opts);
        assert!(head_map(&a, &other, None).unwrap().is_none());
    }
}

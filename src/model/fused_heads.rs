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
    let out = Tensor::f_empty([n, 1, h, w], (Kind::Float, Device::Cpu))?;
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

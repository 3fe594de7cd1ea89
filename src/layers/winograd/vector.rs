//! The input and output transforms of a tile with AVX-512 registers, 16 channels at a
//! time: the same sums in the same order as the portable loops in `mod.rs` (so the
//! results are equal bit for bit), without the arrays those loops move through memory.
//! Used where the products are the own kernel's (`kernel::available`) and the channel
//! counts are multiples of 16; built only with Rust 1.89 or later (`lpips_avx512`).
#![allow(clippy::incompatible_msrv)]

#[cfg(all(target_arch = "x86_64", lpips_avx512))]
use std::arch::x86_64::{
    __m512, _mm512_add_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_mul_ps, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_ps, _mm512_sub_ps,
};

use super::{ALPHA, Geometry, LANES, POINTS, TILE, inside};

/// Whether the vector transforms serve this geometry (else the portable loops do).
pub(super) fn serves(geo: &Geometry) -> bool {
    super::kernel::available() && geo.cin % LANES == 0 && geo.cout % LANES == 0
}

/// [`super::input_tile`] with registers; does nothing unless [`serves`] and the slices
/// hold the tile.
pub(super) fn input_tile(
    geo: &Geometry,
    input: &[f32],
    tile: usize,
    v: &mut [f32],
    slot: usize,
    block: usize,
) {
    let fits = serves(geo)
        && slot < block
        && tile < geo.n * geo.tiles_h() * geo.tiles_w()
        && input.len() >= geo.n * geo.h * geo.w * geo.cin
        && v.len() >= POINTS * block * geo.cin;
    if !fits {
        return;
    }
    #[cfg(all(target_arch = "x86_64", lpips_avx512))]
    // SAFETY: AVX-512F is there (`serves`); the sizes were checked above.
    unsafe {
        input_avx512(geo, input, tile, v, slot, block)
    }
}

/// [`super::output_tile`] with registers; does nothing unless [`serves`].
#[allow(clippy::too_many_arguments)]
pub(super) fn output_tile(
    geo: &Geometry,
    m: &[f32],
    slot: usize,
    block: usize,
    bias: &[f32],
    tile: usize,
    output: &mut [f32],
    base: usize,
) {
    let fits = serves(geo)
        && slot < block
        && tile < geo.n * geo.tiles_h() * geo.tiles_w()
        && m.len() >= POINTS * block * geo.cout
        && bias.len() >= geo.cout;
    if !fits {
        return;
    }
    #[cfg(all(target_arch = "x86_64", lpips_avx512))]
    // SAFETY: AVX-512F is there (`serves`); `m` and `bias` sizes were checked above, and
    // every store into `output` is checked where it happens.
    unsafe {
        output_avx512(geo, m, slot, block, bias, tile, output, base)
    }
}

/// `Bᵀ d`, as `super::input_1d` forms it.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[inline]
fn bt(d: [__m512; ALPHA]) -> [__m512; ALPHA] {
    let (two, four, five) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
    );
    let minus_four = _mm512_set1_ps(-4.0);
    let (add, sub, mul) = (_mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
    [
        add(sub(mul(four, d[0]), mul(five, d[2])), d[4]),
        add(mul(minus_four, add(d[1], d[2])), add(d[3], d[4])),
        add(mul(four, sub(d[1], d[2])), sub(d[4], d[3])),
        add(mul(two, sub(d[3], d[1])), sub(d[4], d[2])),
        add(mul(two, sub(d[1], d[3])), sub(d[4], d[2])),
        add(sub(mul(four, d[1]), mul(five, d[3])), d[5]),
    ]
}

/// `Aᵀ m`, as `super::output_1d` forms it.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[inline]
fn at(m: [__m512; ALPHA]) -> [__m512; TILE] {
    let (two, four, eight) = (
        _mm512_set1_ps(2.0),
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(8.0),
    );
    let (add, sub, mul) = (_mm512_add_ps, _mm512_sub_ps, _mm512_mul_ps);
    let s12 = add(m[1], m[2]);
    let d12 = sub(m[1], m[2]);
    let s34 = add(m[3], m[4]);
    let d34 = sub(m[3], m[4]);
    [
        add(add(m[0], s12), s34),
        add(d12, mul(two, d34)),
        add(s12, mul(four, s34)),
        add(add(d12, mul(eight, d34)), m[5]),
    ]
}

#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)]
unsafe fn input_avx512(
    geo: &Geometry,
    input: &[f32],
    tile: usize,
    v: &mut [f32],
    slot: usize,
    block: usize,
) {
    let (image, ty, tx) = geo.place(tile);
    let cin = geo.cin;
    let ys = inside(TILE * ty, geo.h);
    let xs = inside(TILE * tx, geo.w);
    // Where each of the tile's 36 pixels starts in the NHWC input, or padding.
    let at_pixel: [[Option<usize>; ALPHA]; ALPHA] = std::array::from_fn(|i| {
        std::array::from_fn(|j| match (ys[i], xs[j]) {
            (Some(y), Some(x)) => Some(((image * geo.h + y) * geo.w + x) * cin),
            _ => None,
        })
    });
    let (src, dst) = (input.as_ptr(), v.as_mut_ptr());
    let mut c0 = 0;
    while c0 < cin {
        let mut t = [[_mm512_setzero_ps(); ALPHA]; ALPHA];
        for (trow, pixels) in t.iter_mut().zip(&at_pixel) {
            let d: [__m512; ALPHA] = std::array::from_fn(|j| match pixels[j] {
                // SAFETY: a pixel inside the map, channels c0..c0 + 16 of cin (a multiple
                // of 16): inside `input`, whose length the caller checked.
                Some(at) => unsafe { _mm512_loadu_ps(src.add(at + c0)) },
                None => _mm512_setzero_ps(),
            });
            *trow = bt(d);
        }
        for j in 0..ALPHA {
            let out = bt(std::array::from_fn(|i| t[i][j]));
            for (i, o) in out.iter().enumerate() {
                // SAFETY: point i * 6 + j < 36, slot < block, c0 + 16 <= cin: inside
                // `v` (36 x block x cin values, checked by the caller).
                unsafe {
                    _mm512_storeu_ps(dst.add(((i * ALPHA + j) * block + slot) * cin + c0), *o)
                };
            }
        }
        c0 += LANES;
    }
}

#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn output_avx512(
    geo: &Geometry,
    m: &[f32],
    slot: usize,
    block: usize,
    bias: &[f32],
    tile: usize,
    output: &mut [f32],
    base: usize,
) {
    let (image, ty, tx) = geo.place(tile);
    let cout = geo.cout;
    let rows = TILE.min(geo.h - TILE * ty);
    let cols = TILE.min(geo.w - TILE * tx);
    let (src, len) = (m.as_ptr(), output.len());
    let dst = output.as_mut_ptr();
    let mut c0 = 0;
    while c0 < cout {
        let t: [[__m512; TILE]; ALPHA] = std::array::from_fn(|i| {
            at(std::array::from_fn(|j| {
                // SAFETY: point i * 6 + j < 36, slot < block, c0 + 16 <= cout: inside
                // `m` (36 x block x cout values, checked by the caller).
                unsafe { _mm512_loadu_ps(src.add(((i * ALPHA + j) * block + slot) * cout + c0)) }
            }))
        });
        // SAFETY: c0 + 16 <= cout <= bias.len() (checked by the caller).
        let b = unsafe { _mm512_loadu_ps(bias.as_ptr().add(c0)) };
        let zero = _mm512_setzero_ps();
        for q in 0..cols {
            let out = at(std::array::from_fn(|i| t[i][q]));
            for (p, o) in out.iter().enumerate().take(rows) {
                let at = ((image * geo.h + TILE * ty + p) * geo.w + TILE * tx + q) * cout + c0;
                if let Some(at) = at.checked_sub(base).filter(|at| at + LANES <= len) {
                    let y = _mm512_add_ps(*o, b);
                    // max(0, y) is y where y is NaN (the second operand wins).
                    let y = if geo.relu { _mm512_max_ps(zero, y) } else { y };
                    // SAFETY: checked just above to lie inside `output`.
                    unsafe { _mm512_storeu_ps(dst.add(at), y) };
                }
            }
        }
        c0 += LANES;
    }
}

//! The 36 products of a block, `M[p] = V[p] U[p]`, with AVX-512: 6 tiles x 64 output
//! channels of accumulators in registers, `U`'s rows read in place (no packing), input
//! channels summed in order (so every tile's sums are formed alike, whatever its place
//! in the block). Built only with Rust 1.89 or later (`lpips_avx512`, from build.rs),
//! where these intrinsics are stable; the crate's MSRV is older.
#![allow(clippy::incompatible_msrv)]

#[cfg(all(target_arch = "x86_64", lpips_avx512))]
use std::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{LANES, POINTS};

/// Whether this CPU runs the kernel.
pub(super) fn available() -> bool {
    #[cfg(all(target_arch = "x86_64", lpips_avx512))]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(all(target_arch = "x86_64", lpips_avx512)))]
    {
        false
    }
}

/// `M[p][0..rows] = V[p][0..rows] U[p]` for the 36 points: `v` is `36 x block x cin`,
/// `u` `36 x cin x cout`, `m` `36 x block x cout`; `cout` a multiple of 16. Does
/// nothing unless [`available`] and the sizes hold.
pub(super) fn products(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    block: usize,
    rows: usize,
    cin: usize,
    cout: usize,
) {
    let sizes_hold = rows <= block
        && cout % LANES == 0
        && v.len() >= POINTS * block * cin
        && u.len() >= POINTS * cin * cout
        && m.len() >= POINTS * block * cout;
    if !(sizes_hold && available()) {
        return;
    }
    #[cfg(all(target_arch = "x86_64", lpips_avx512))]
    for p in 0..POINTS {
        // SAFETY: AVX-512F is there (checked above); the slices hold point p's
        // matrices (sizes checked above), which is all `point` reads and writes.
        unsafe {
            point(
                &v[p * block * cin..][..block * cin],
                &u[p * cin * cout..][..cin * cout],
                &mut m[p * block * cout..][..block * cout],
                rows,
                cin,
                cout,
            );
        }
    }
}

/// Input channels per pass over a block: `U`'s panel of `KC` rows by 64 output
/// channels (32 KB) stays in the L1 cache while every tile of the block uses it.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
const KC: usize = 128;

/// The input channels a pass sums and whether it is the first.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[derive(Clone, Copy)]
struct Depth {
    k0: usize,
    k1: usize,
}

/// One point's product, `rows x cin` by `cin x cout`: passes over `KC` input channels
/// at a time, in order, each adding to the sums the one before stored (so the sums
/// are formed exactly as in one pass).
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
unsafe fn point(v: &[f32], u: &[f32], m: &mut [f32], rows: usize, cin: usize, cout: usize) {
    let mut k0 = 0;
    while k0 < cin {
        let depth = Depth {
            k0,
            k1: (k0 + KC).min(cin),
        };
        let mut n0 = 0;
        while n0 + 4 * LANES <= cout {
            unsafe { panel::<4>(v, u, m, rows, cin, cout, n0, depth) };
            n0 += 4 * LANES;
        }
        while n0 + LANES <= cout {
            unsafe { panel::<1>(v, u, m, rows, cin, cout, n0, depth) };
            n0 += LANES;
        }
        k0 = depth.k1;
    }
}

/// Output channels `n0..n0 + 16 C` of every row, input channels `depth`.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel<const C: usize>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    rows: usize,
    cin: usize,
    cout: usize,
    n0: usize,
    depth: Depth,
) {
    let mut r0 = 0;
    while r0 + 6 <= rows {
        unsafe { tile::<6, C>(v, u, m, r0, cin, cout, n0, depth) };
        r0 += 6;
    }
    unsafe {
        match rows - r0 {
            1 => tile::<1, C>(v, u, m, r0, cin, cout, n0, depth),
            2 => tile::<2, C>(v, u, m, r0, cin, cout, n0, depth),
            3 => tile::<3, C>(v, u, m, r0, cin, cout, n0, depth),
            4 => tile::<4, C>(v, u, m, r0, cin, cout, n0, depth),
            5 => tile::<5, C>(v, u, m, r0, cin, cout, n0, depth),
            _ => {}
        }
    }
}

/// Rows `r0..r0 + R`, output channels `n0..n0 + 16 C`: R x C registers of sums.
#[cfg(all(target_arch = "x86_64", lpips_avx512))]
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const C: usize>(
    v: &[f32],
    u: &[f32],
    m: &mut [f32],
    r0: usize,
    cin: usize,
    cout: usize,
    n0: usize,
    depth: Depth,
) {
    // SAFETY (every pointer below): the callers keep r0 + R <= rows <= block,
    // n0 + 16 C <= cout and depth.k1 <= cin, so rows r0..r0 + R of `v` (cin each) and
    // of `m` (cout each) and columns n0..n0 + 16 C of `u`'s cin rows are inside the
    // slices.
    let c = m.as_mut_ptr();
    let mut acc = [[_mm512_setzero_ps(); C]; R];
    if depth.k0 > 0 {
        for (i, row) in acc.iter_mut().enumerate() {
            for (j, sum) in row.iter_mut().enumerate() {
                *sum = unsafe { _mm512_loadu_ps(c.add((r0 + i) * cout + n0 + LANES * j)) };
            }
        }
    }
    let a = v.as_ptr();
    let b = u.as_ptr();
    for k in depth.k0..depth.k1 {
        let mut bk = [_mm512_setzero_ps(); C];
        for (j, bj) in bk.iter_mut().enumerate() {
            *bj = unsafe { _mm512_loadu_ps(b.add(k * cout + n0 + LANES * j)) };
        }
        for (i, row) in acc.iter_mut().enumerate() {
            let ai: __m512 = _mm512_set1_ps(unsafe { *a.add((r0 + i) * cin + k) });
            for (sum, bj) in row.iter_mut().zip(bk.iter()) {
                *sum = _mm512_fmadd_ps(ai, *bj, *sum);
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        for (j, sum) in row.iter().enumerate() {
            unsafe { _mm512_storeu_ps(c.add((r0 + i) * cout + n0 + LANES * j), *sum) };
        }
    }
}

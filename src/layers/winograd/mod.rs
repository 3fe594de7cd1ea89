//! Winograd's minimal filtering F(4x4, 3x3) for 3x3 stride-1 convolutions (padding 1) on
//! the CPU (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR
//! 2016): 36 multiplications per 4x4 output tile and channel pair instead of 144.
//!
//! Each 6x6 input tile `d` (overlapping its neighbours by 2) is transformed to
//! `V = Bᵀ d B`, the filters once, at the first pass that uses them (`lazy.rs`), to
//! `U = G g Gᵀ` (in f64, then rounded to f32); the 36 element-wise products summed over input channels are 36 matrix
//! products, `M[k] = V[k] U[k]` (tiles x Cin by Cin x Cout, libtorch's batched SGEMM);
//! each output tile is `Aᵀ M A`, plus the bias. The input and output transforms are
//! this file's loops over channels (16 at a time; `vector.rs` with AVX-512), fused
//! with the gathering of tiles and the scattering of outputs into the channels-last map,
//! and they run on blocks of tiles small enough for the transformed tiles of a block to
//! stay in cache between the transform, the products and the inverse transform. The
//! blocks are shared among `tch::get_num_threads()` threads, libtorch's own OpenMP
//! ones where it has them (`../team.rs`): no barrier between the steps.
//!
//! In real arithmetic the result is the convolution's; in f32 the transforms' rounding
//! makes it a few times less accurate than direct convolution (measured in
//! docs/benchmarks.md, "Winograd convolution"), far inside LPIPS's tolerance.

mod lazy;

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

pub(crate) use lazy::LazyWinograd;

use super::team;
use crate::error::{LpipsError, Result};

/// Output tile side.
const TILE: usize = 4;
/// Input tile side: `TILE + 3 - 1`.
const ALPHA: usize = 6;
/// Transformed values per tile and channel.
const POINTS: usize = ALPHA * ALPHA;
/// Channels transformed at once (one AVX-512 register, two AVX ones).
const LANES: usize = 16;

/// The filter transform `G` (6 x 3), interpolation points 0, 1, -1, 2, -2 and infinity.
const G: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A 3x3 stride-1 convolution with padding 1 in Winograd form: the transformed filters
/// and the bias.
#[derive(Debug)]
pub(crate) struct Winograd {
    /// `U`: `(36, Cin, Cout)`, f32, contiguous, on the CPU.
    u: Tensor,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
}

impl Winograd {
    /// Transforms `weight` (`Cout x Cin x 3 x 3`, any float kind and layout, on the CPU)
    /// once; `bias` has `Cout` values.
    pub(crate) fn new(weight: &Tensor, bias: &Tensor) -> Result<Winograd> {
        let (cout, cin, kh, kw) = weight.size4()?;
        if (kh, kw) != (3, 3) || weight.device() != Device::Cpu {
            return Err(LpipsError::Torch(tch::TchError::Shape(format!(
                "Winograd F(4x4, 3x3) needs 3x3 filters on the CPU, not {kh}x{kw} on {:?}",
                weight.device()
            ))));
        }
        // G w Gᵀ for every filter at once: U[i][j] = sum over a, b of G[i][a] w[a][b]
        // G[j][b], i.e. (G ⊗ G) times each filter's 9 values, as one product per input
        // channel whose rows are already U's (a batched product of 6x3 by 3x3 matrices per
        // filter and a transposing copy of U took 0.8 s for VGG16's filters).
        let kron: Vec<f64> = (0..POINTS)
            .flat_map(|ij| (0..9).map(move |ab| G[ij / ALPHA][ab / 3] * G[ij % ALPHA][ab % 3]))
            .collect();
        let kron = Tensor::f_from_slice(&kron)?.f_view([POINTS as i64, 9])?;
        // (Cout, Cin, 3, 3) -> (Cin, 9, Cout) -> (Cin, 36, Cout) -> (36, Cin, Cout).
        let w = weight
            .f_to_kind(Kind::Double)?
            .f_reshape([cout, cin, 9])?
            .f_permute([1, 2, 0])?
            .f_contiguous()?;
        let u = kron
            .f_matmul(&w)?
            .f_to_kind(Kind::Float)?
            .f_permute([1, 0, 2])?
            .f_contiguous()?;
        let bias = Vec::<f32>::try_from(bias.f_to_kind(Kind::Float)?.f_contiguous()?)?;
        let (cin, cout) = (to_usize(cin)?, to_usize(cout)?);
        if bias.len() != cout {
            return Err(LpipsError::Torch(tch::TchError::Shape(format!(
                "a bias of {} values for {cout} output channels",
                bias.len()
            ))));
        }
        Ok(Winograd { u, bias, cin, cout })
    }

    /// Another handle on the same transformed filters.
    pub(crate) fn share(&self) -> Winograd {
        Winograd {
            u: self.u.shallow_clone(),
            bias: self.bias.clone(),
            ..*self
        }
    }

    /// The convolution of `x` (`N x Cin x H x W`, f32, on the CPU, any layout) with
    /// padding 1; the result has channels-last strides.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_then(x, false)
    }

    /// [`Winograd::forward`], followed by a ReLU when `relu` (applied as each output is
    /// written, which spares the ReLU's own pass over the map; NaN stays NaN).
    pub(crate) fn forward_then(&self, x: &Tensor, relu: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.size4()?;
        let kind = x.f_kind()?;
        if kind != Kind::Float || x.device() != Device::Cpu || c != self.cin as i64 {
            return Err(LpipsError::Torch(tch::TchError::Shape(format!(
                "the Winograd convolution takes f32 CPU input with {} channels, not {:?} \
                 with {c} on {:?}",
                self.cin,
                kind,
                x.device()
            ))));
        }
        let geometry = Geometry {
            n: to_usize(n)?,
            h: to_usize(h)?,
            w: to_usize(w)?,
            cin: self.cin,
            cout: self.cout,
            relu,
        };
        let out = Tensor::f_empty([n, h, w, self.cout as i64], (Kind::Float, Device::Cpu))?;
        if geometry.n * geometry.h * geometry.w * self.cin * self.cout == 0 {
            return Ok(out.f_permute([0, 3, 1, 2])?);
        }
        // Channels-last and contiguous: (N, H, W, C) in memory.
        let nhwc = x.f_permute([0, 2, 3, 1])?.f_contiguous()?;
        let input_len = geometry.n * geometry.h * geometry.w * self.cin;
        let output_len = geometry.n * geometry.h * geometry.w * self.cout;
        // SAFETY: both tensors are contiguous f32 CPU tensors of exactly these lengths
        // (checked above, non-empty), alive until the end of this function; `nhwc` is
        // only read, and `out` was just allocated here, so nothing else accesses it.
        let (input, output) = unsafe {
            (
                std::slice::from_raw_parts(nhwc.data_ptr() as *const f32, input_len),
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, output_len),
            )
        };
        self.run(&geometry, input, output)?;
        Ok(out.f_permute([0, 3, 1, 2])?)
    }

    /// Splits the tile rows among threads, each with its part of the output.
    fn run(&self, geo: &Geometry, input: &[f32], output: &mut [f32]) -> Result<()> {
        let tile_rows = geo.n * geo.tiles_h();
        let threads = usize::try_from(tch::get_num_threads())
            .unwrap_or(1)
            .clamp(1, tile_rows);
        let bias = self.bias.as_slice();
        // This file's own products where the CPU has AVX-512 (no libtorch call inside the
        // threads); libtorch's batched SGEMM otherwise.
        let own_products = kernel::available() && geo.cout % LANES == 0;
        let u_len = POINTS * geo.cin * geo.cout;
        let u_slice = if own_products && self.u.numel() == u_len {
            // SAFETY: `u` is a contiguous f32 CPU tensor of `u_len` values (made so in
            // `new`), which nothing writes to: its handles are only ever read.
            Some(unsafe { std::slice::from_raw_parts(self.u.data_ptr() as *const f32, u_len) })
        } else {
            None
        };
        let products = |u: &Tensor| -> Products<'_> {
            match u_slice {
                Some(u) => Products::Own(u),
                None => Products::Libtorch(u.shallow_clone()),
            }
        };
        if threads == 1 {
            return run_rows(products(&self.u), bias, geo, input, output, 0..tile_rows);
        }
        // libtorch's products run single-threaded in each thread; its thread count is
        // set back at the end.
        let _restore = u_slice
            .is_none()
            .then(|| RestoreThreads(tch::get_num_threads()));
        let mut parts = Vec::with_capacity(threads);
        let mut rest = output;
        let mut done = 0;
        for t in 0..threads {
            let end = tile_rows * (t + 1) / threads;
            let len = geo.output_offset(end) - geo.output_offset(done);
            let (part, tail) = rest.split_at_mut(len);
            parts.push(Mutex::new(Some((done..end, part, products(&self.u)))));
            rest = tail;
            done = end;
        }
        let results: Vec<Mutex<Option<Result<()>>>> =
            (0..threads).map(|_| Mutex::new(None)).collect();
        let job = |t: usize| {
            let part = parts.get(t).and_then(|p| p.lock().ok()?.take());
            if let Some((rows, part, products)) = part {
                if matches!(products, Products::Libtorch(_)) {
                    tch::set_num_threads(1);
                }
                let _guard = tch::no_grad_guard();
                let r = run_rows(products, bias, geo, input, part, rows);
                if let Some(mut slot) = results.get(t).and_then(|r| r.lock().ok()) {
                    *slot = Some(r);
                }
            }
        };
        let fine = team::for_each(threads, &job);
        // A part whose thread could not start is done here.
        (0..threads).for_each(job);
        let mut result = if fine {
            Ok(())
        } else {
            Err(LpipsError::Internal(
                "a Winograd convolution thread panicked".into(),
            ))
        };
        for slot in results {
            let r = slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(LpipsError::Internal(
                    "a Winograd part was not computed".into(),
                ))
            });
            result = result.and(r);
        }
        result
    }
}

/// How a thread computes the 36 products of a block.
enum Products<'a> {
    /// `kernel::products` on `U` (`36 x Cin x Cout` values).
    Own(&'a [f32]),
    /// libtorch's batched SGEMM with `U` (a handle of this thread's own).
    Libtorch(Tensor),
}

/// Tile rows `rows` (global index `image * tiles_h + tile_row`), writing `output`,
/// the part of the output map that these rows cover.
fn run_rows(
    products: Products<'_>,
    bias: &[f32],
    geo: &Geometry,
    input: &[f32],
    output: &mut [f32],
    rows: std::ops::Range<usize>,
) -> Result<()> {
    let tw = geo.tiles_w();
    let (first, last) = (rows.start * tw, rows.end * tw);
    if first >= last {
        return Ok(());
    }
    let base = geo.output_offset(rows.start);
    let block = block_tiles(geo.cin, geo.cout).min(last - first);
    let (v_len, m_len) = (POINTS * block * geo.cin, POINTS * block * geo.cout);
    match products {
        Products::Own(u) => {
            let (mut v, mut m) = (zeros(v_len)?, zeros(m_len)?);
            let registers = vector::serves(geo);
            let mut start = first;
            while start < last {
                let count = block.min(last - start);
                for slot in 0..count {
                    if registers {
                        vector::input_tile(geo, input, start + slot, &mut v, slot, block);
                    } else {
                        input_tile(geo, input, start + slot, &mut v, slot, block);
                    }
                }
                kernel::products(&v, u, &mut m, block, count, geo.cin, geo.cout);
                for slot in 0..count {
                    if registers {
                        vector::output_tile(geo, &m, slot, block, bias, start + slot, output, base);
                    } else {
                        output_tile(geo, &m, slot, block, bias, start + slot, output, base);
                    }
                }
                start += count;
            }
        }
        Products::Libtorch(u) => {
            let opts = (Kind::Float, Device::Cpu);
            let v = Tensor::f_zeros([POINTS as i64, block as i64, geo.cin as i64], opts)?;
            let m = Tensor::f_zeros([POINTS as i64, block as i64, geo.cout as i64], opts)?;
            let mut start = first;
            while start < last {
                let count = block.min(last - start);
                {
                    // SAFETY: `v` is this thread's own contiguous f32 buffer of `v_len`
                    // values; libtorch does not touch it while this slice lives.
                    let vs =
                        unsafe { std::slice::from_raw_parts_mut(v.data_ptr() as *mut f32, v_len) };
                    for slot in 0..count {
                        input_tile(geo, input, start + slot, vs, slot, block);
                    }
                }
                let _ = v.f_bmm_out(&m, &u)?;
                {
                    // SAFETY: as above, for `m`, which the product has finished writing.
                    let ms =
                        unsafe { std::slice::from_raw_parts(m.data_ptr() as *const f32, m_len) };
                    for slot in 0..count {
                        output_tile(geo, ms, slot, block, bias, start + slot, output, base);
                    }
                }
                start += count;
            }
        }
    }
    Ok(())
}

/// Tiles per block: the block's transformed input `36 x tiles x Cin` within about 1.5 MB
/// (measured: docs/benchmarks.md).
fn block_tiles(cin: usize, cout: usize) -> usize {
    static KB: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let kb = *KB.get_or_init(|| {
        std::env::var("LPIPS_WINOGRAD_BLOCK_KB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(128)
    });
    // One point's slice of the block, `tiles x max(Cin, Cout)`, within `kb`.
    let per_tile = cin.max(cout) * 4;
    (kb * 1024 / per_tile.max(1)).clamp(6, 4096)
}

/// Sizes of one convolution.
#[derive(Debug)]
struct Geometry {
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    /// A ReLU on the outputs as they are written.
    relu: bool,
}

impl Geometry {
    fn tiles_h(&self) -> usize {
        self.h.div_ceil(TILE)
    }

    fn tiles_w(&self) -> usize {
        self.w.div_ceil(TILE)
    }

    /// Tile `tile` (global index, row-major over images, tile rows and tile columns) as
    /// (image, tile row, tile column).
    fn place(&self, tile: usize) -> (usize, usize, usize) {
        let (row, tx) = (tile / self.tiles_w(), tile % self.tiles_w());
        (row / self.tiles_h(), row % self.tiles_h(), tx)
    }

    /// Where tile row `row` (global) starts in the NHWC output; `n * tiles_h` gives the end.
    fn output_offset(&self, row: usize) -> usize {
        let th = self.tiles_h();
        let (image, tr) = (row / th, row % th);
        ((image * self.h + TILE * tr) * self.w) * self.cout
    }
}

/// Which of a tile's rows or columns fall inside the map: those of the tile starting at
/// `start - 1` (`start` is `TILE` times the tile's index, the first ones in the padding).
fn inside(start: usize, side: usize) -> [Option<usize>; ALPHA] {
    std::array::from_fn(|i| (start + i).checked_sub(1).filter(|&p| p < side))
}

/// `Bᵀ d` for six vectors of lanes.
#[inline(always)]
fn input_1d(d: &[[f32; LANES]; ALPHA]) -> [[f32; LANES]; ALPHA] {
    let mut o = [[0f32; LANES]; ALPHA];
    for l in 0..LANES {
        let (d0, d1, d2, d3, d4, d5) = (d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]);
        o[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        o[1][l] = -4.0 * (d1 + d2) + (d3 + d4);
        o[2][l] = 4.0 * (d1 - d2) + (d4 - d3);
        o[3][l] = 2.0 * (d3 - d1) + (d4 - d2);
        o[4][l] = 2.0 * (d1 - d3) + (d4 - d2);
        o[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    o
}

/// `Aᵀ m` for six vectors of lanes.
#[inline(always)]
fn output_1d(m: &[[f32; LANES]; ALPHA]) -> [[f32; LANES]; TILE] {
    let mut o = [[0f32; LANES]; TILE];
    for l in 0..LANES {
        let s12 = m[1][l] + m[2][l];
        let d12 = m[1][l] - m[2][l];
        let s34 = m[3][l] + m[4][l];
        let d34 = m[3][l] - m[4][l];
        o[0][l] = m[0][l] + s12 + s34;
        o[1][l] = d12 + 2.0 * d34;
        o[2][l] = s12 + 4.0 * s34;
        o[3][l] = d12 + 8.0 * d34 + m[5][l];
    }
    o
}

/// `LANES` values from `src` at `at` (fewer at the end of the channels: the rest zero).
#[inline(always)]
fn load(src: &[f32], at: usize, lanes: usize) -> [f32; LANES] {
    if lanes == LANES {
        if let Some(Ok(v)) = src.get(at..at + LANES).map(<[f32; LANES]>::try_from) {
            return v;
        }
    }
    let mut v = [0f32; LANES];
    if let Some(src) = src.get(at..at + lanes) {
        v[..lanes].copy_from_slice(src);
    }
    v
}

/// Stores the first `lanes` values of `v` to `dst` at `at`.
#[inline(always)]
fn store(dst: &mut [f32], at: usize, lanes: usize, v: &[f32; LANES]) {
    if lanes == LANES {
        if let Some(Ok(d)) = dst
            .get_mut(at..at + LANES)
            .map(<&mut [f32; LANES]>::try_from)
        {
            *d = *v;
            return;
        }
    }
    if let Some(d) = dst.get_mut(at..at + lanes) {
        d.copy_from_slice(&v[..lanes]);
    }
}

#[allow(clippy::needless_range_loop)]
/// Gathers tile `tile` (global index, row-major over images and tile rows) of the NHWC
/// input with its zero padding and writes `Bᵀ d B` for every channel to slot `slot` of
/// the block buffer `v` (`36 x block x Cin`).
#[inline(always)]
fn input_tile(
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
    let mut t = [[[0f32; LANES]; ALPHA]; ALPHA];
    let mut c0 = 0;
    while c0 < cin {
        let lanes = LANES.min(cin - c0);
        // Along x within each row, then along y.
        for (trow, y) in t.iter_mut().zip(ys) {
            let mut d = [[0f32; LANES]; ALPHA];
            if let Some(y) = y {
                let row = (image * geo.h + y) * geo.w;
                for (dv, x) in d.iter_mut().zip(xs) {
                    if let Some(x) = x {
                        *dv = load(input, (row + x) * cin + c0, lanes);
                    }
                }
            }
            *trow = input_1d(&d);
        }
        for j in 0..ALPHA {
            let col = [t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j]];
            let out = input_1d(&col);
            for (i, o) in out.iter().enumerate() {
                store(v, ((i * ALPHA + j) * block + slot) * cin + c0, lanes, o);
            }
        }
        c0 += LANES;
    }
}

/// `Aᵀ M A` plus the bias for slot `slot` of the block's products `m` (`36 x block x
/// Cout`), written to the output tile `tile` inside `output` (the part of the NHWC map
/// starting at offset `base`), cut at the map's edges.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
fn output_tile(
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
    let mut c0 = 0;
    while c0 < cout {
        let lanes = LANES.min(cout - c0);
        // Along x within each row of M, then along y.
        let t: [[[f32; LANES]; TILE]; ALPHA] = std::array::from_fn(|i| {
            let mrow: [[f32; LANES]; ALPHA] = std::array::from_fn(|j| {
                load(m, ((i * ALPHA + j) * block + slot) * cout + c0, lanes)
            });
            output_1d(&mrow)
        });
        let b = load(bias, c0, lanes);
        for q in 0..cols {
            let col = [t[0][q], t[1][q], t[2][q], t[3][q], t[4][q], t[5][q]];
            let out = output_1d(&col);
            for (p, o) in out.iter().enumerate().take(rows) {
                let at = ((image * geo.h + TILE * ty + p) * geo.w + TILE * tx + q) * cout + c0;
                let mut y = [0f32; LANES];
                for ((y, o), b) in y.iter_mut().zip(o).zip(b) {
                    *y = o + b;
                    // Not `max`, which would turn NaN into 0.
                    if geo.relu && *y < 0.0 {
                        *y = 0.0;
                    }
                }
                if let Some(at) = at.checked_sub(base) {
                    store(output, at, lanes, &y);
                }
            }
        }
        c0 += LANES;
    }
}

mod kernel;
mod vector;

/// A zeroed buffer of `len` values, or an error where memory runs out (its size follows
/// `LPIPS_WINOGRAD_BLOCK_KB` and the channel counts, so it is not left to abort).
fn zeros(len: usize) -> Result<Vec<f32>> {
    let mut buffer = Vec::new();
    buffer
        .try_reserve_exact(len)
        .map_err(|_| LpipsError::OutOfMemory {
            what: "the Winograd convolution's block buffers".into(),
            bytes: u64::try_from(len).unwrap_or(u64::MAX).saturating_mul(4),
        })?;
    buffer.resize(len, 0.0);
    Ok(buffer)
}

fn to_usize(v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| {
        LpipsError::Torch(tch::TchError::Shape(format!(
            "a negative size ({v}) for a convolution"
        )))
    })
}

/// Sets libtorch's thread count of the calling thread back (and the default of threads
/// started later, which the Winograd threads' own setting changed).
struct RestoreThreads(i32);

impl Drop for RestoreThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution in f64 as the truth.
    fn check(n: i64, cin: i64, cout: i64, h: i64, w: i64, channels_last: bool) {
        let x = Tensor::randn([n, cin, h, w], (Kind::Float, Device::Cpu));
        let x = if channels_last {
            crate::layers::channels_last(&x).unwrap()
        } else {
            x
        };
        let wt = Tensor::randn([cout, cin, 3, 3], (Kind::Float, Device::Cpu))
            / (9.0 * cin as f64).sqrt();
        let b = Tensor::randn([cout], (Kind::Float, Device::Cpu));
        let wino = Winograd::new(&wt, &b).unwrap();
        let got = wino.forward(&x).unwrap();
        assert_eq!(got.size(), [n, cout, h, w]);
        let truth = x.to_kind(Kind::Double).conv2d(
            &wt.to_kind(Kind::Double),
            Some(&b.to_kind(Kind::Double)),
            [1, 1],
            [1, 1],
            [1, 1],
            1,
        );
        let direct = x.conv2d(&wt, Some(&b), [1, 1], [1, 1], [1, 1], 1);
        let scale = truth.abs().max().double_value(&[]);
        let err = (got.to_kind(Kind::Double) - &truth)
            .abs()
            .max()
            .double_value(&[])
            / scale;
        let err_direct = (direct.to_kind(Kind::Double) - &truth)
            .abs()
            .max()
            .double_value(&[])
            / scale;
        // f32 Winograd F(4x4, 3x3): up to some tens of times direct convolution's
        // rounding error (measured up to 1.1e-5 of the largest output, direct 3e-7).
        assert!(
            err < 4e-5 && err < 100.0 * err_direct.max(1e-7),
            "n {n} cin {cin} cout {cout} {h}x{w}: error {err:e} (direct {err_direct:e})"
        );
    }

    #[test]
    fn matches_convolution_on_every_trunk_shape() {
        tch::manual_seed(1);
        // (cin, cout, side) of every 3x3 stride-1 layer: VGG16 at 64x64 input, AlexNet's
        // conv3-5 at 256x256 and 64x64 input, SqueezeNet's expand3x3 at 64x64 input.
        let shapes = [
            (3, 64, 64),
            (64, 64, 64),
            (64, 128, 32),
            (128, 128, 32),
            (128, 256, 16),
            (256, 256, 16),
            (256, 512, 8),
            (512, 512, 8),
            (512, 512, 4),
            (192, 384, 15),
            (384, 256, 15),
            (256, 256, 15),
            (192, 384, 3),
            (384, 256, 3),
            (256, 256, 3),
            (16, 64, 15),
            (32, 128, 7),
            (48, 192, 3),
            (64, 256, 3),
        ];
        for (cin, cout, side) in shapes {
            for n in [1, 8] {
                check(n, cin, cout, side, side, true);
            }
        }
    }

    #[test]
    fn odd_sizes_edges_and_layouts() {
        tch::manual_seed(2);
        for (h, w) in [
            (1, 1),
            (1, 7),
            (5, 1),
            (2, 3),
            (4, 4),
            (5, 5),
            (6, 9),
            (13, 17),
            (31, 30),
        ] {
            for n in [1, 3] {
                check(n, 20, 24, h, w, true);
                check(n, 5, 7, h, w, false);
            }
        }
    }

    #[test]
    fn the_relu_epilogue_equals_a_relu_after_it() {
        tch::manual_seed(4);
        // 64 channels take the AVX-512 transforms where the CPU has them, 24 the portable
        // ones; a NaN in the input spreads to outputs, which the ReLU must keep NaN.
        for (cin, cout) in [(64, 64), (20, 24)] {
            let x = Tensor::randn([2, cin, 11, 13], (Kind::Float, Device::Cpu));
            let _ = x.get(1).get(3).get(5).get(6).fill_(f64::NAN);
            let wt = Tensor::randn([cout, cin, 3, 3], (Kind::Float, Device::Cpu));
            let b = Tensor::randn([cout], (Kind::Float, Device::Cpu));
            let wino = Winograd::new(&wt, &b).unwrap();
            let plain = wino.forward(&x).unwrap().relu();
            let fused = wino.forward_then(&x, true).unwrap();
            assert!(plain.isnan().any().int64_value(&[]) == 1);
            assert!(
                plain.isnan().equal(&fused.isnan()),
                "{cin} -> {cout}: NaN not where the ReLU leaves it"
            );
            let finite = plain.isfinite();
            assert!(
                plain
                    .masked_select(&finite)
                    .equal(&fused.masked_select(&finite)),
                "{cin} -> {cout}: the fused ReLU differs from ReLU after the convolution"
            );
            assert!(fused.masked_select(&finite).min().double_value(&[]) >= 0.0);
        }
    }

    #[test]
    fn concurrent_callers_each_get_their_own_result() {
        // Several threads of a user's, each calling with libtorch's default thread count:
        // each gets its own OpenMP team (or threads), and its own correct output.
        std::thread::scope(|s| {
            for seed in 0..3 {
                s.spawn(move || {
                    tch::manual_seed(10 + seed);
                    check(2, 64, 64, 20, 28, true);
                });
            }
        });
    }

    #[test]
    fn several_threads_split_the_rows() {
        tch::manual_seed(3);
        let before = tch::get_num_threads();
        for threads in [1, 2, 3, 5] {
            tch::set_num_threads(threads);
            check(2, 32, 48, 23, 19, true);
            check(1, 16, 16, 4, 40, true);
            assert_eq!(tch::get_num_threads(), threads);
        }
        tch::set_num_threads(before);
    }
}

//! Tiled evaluation, equal to one pass: each tap's head map is computed tile by tile and
//! stitched at the tap's own resolution, before any pooling or upsampling.
//!
//! Along each axis the image is cut into cores on the trunk's stride grid
//! ([`Geometry::grid`]); a tile owns the outputs of each tap whose stride cell starts in
//! its core, and reads the input crop that covers those outputs' receptive fields
//! (rounded out to the grid, clipped at the image). A crop that starts on the grid sees
//! every layer's sampling grid as the whole image does; an output whose receptive field
//! lies inside the crop reads no padding that the whole image would not (padding inside
//! the image would need a receptive field reaching past the crop), and at the image's
//! real borders the crop's padding and ceil-mode windows are the whole image's. So every
//! kept output equals the one-pass output, up to float summation order.

use tch::Tensor;

use crate::config::Net;
use crate::error::{LpipsError, Result};
use crate::trunk::{Geometry, TrunkSpec};

/// One tile along one axis: the input crop `x0..x1` and, per tap, the outputs it owns
/// (`start..end` in whole-image coordinates; may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AxisTile {
    pub(crate) x0: i64,
    pub(crate) x1: i64,
    pub(crate) outs: Vec<(i64, i64)>,
}

/// Cuts an axis of `len` pixels into tiles with cores of `core` pixels (rounded up to the
/// grid). `sides`: each tap's output length for the whole axis.
pub(crate) fn plan_axis(
    net: Net,
    spec: &TrunkSpec,
    geom: &Geometry,
    len: i64,
    core: i64,
) -> Result<Vec<AxisTile>> {
    let sides = spec.tap_sides(len).ok_or(LpipsError::TooSmall {
        net,
        min: spec.min_side(),
        height: len,
        width: len,
    })?;
    let grid = geom.grid;
    let core = (core.max(1) + grid - 1) / grid * grid;
    let mut bounds: Vec<i64> = (0..).map(|t| t * core).take_while(|&b| b < len).collect();
    bounds.push(len);
    let min_side = spec.min_side();
    let mut tiles = Vec::with_capacity(bounds.len() - 1);
    for (t, pair) in bounds.windows(2).enumerate() {
        let last = t + 2 == bounds.len();
        let (b0, b1) = (pair[0], pair[1]);
        let mut outs = Vec::with_capacity(geom.taps.len());
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (tap, &n) in geom.taps.iter().zip(&sides) {
            let start = div_ceil(b0, tap.stride).min(n);
            let end = if last {
                n
            } else {
                div_ceil(b1, tap.stride).min(n)
            };
            if start < end {
                lo = lo.min(tap.first(start));
                hi = hi.max(tap.end(end - 1));
            }
            outs.push((start, end.max(start)));
        }
        if lo > hi {
            // No output at any tap starts in this core (only possible past the last
            // outputs, which the last tile owns).
            continue;
        }
        let mut x0 = lo.max(0).div_euclid(grid) * grid;
        let mut x1 = hi.min(len);
        // The trunk needs its minimum side: widen towards the image's start, then end.
        while x1 - x0 < min_side && x0 > 0 {
            x0 = (x0 - grid).max(0);
        }
        if x1 - x0 < min_side {
            x1 = len;
        }
        tiles.push(AxisTile { x0, x1, outs });
    }
    Ok(tiles)
}

fn div_ceil(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// Bytes a trunk pass over `n` pairs of `h x w` images holds at its peak, estimated from
/// the layers: both images' normalised features and one image's raw features (3x the
/// taps), plus the largest layer's input and output, plus one tap's squared difference;
/// with half again for libtorch's workspace and layout copies. None if too small.
pub(crate) fn pass_bytes(spec: &TrunkSpec, n: i64, h: i64, w: i64) -> Option<u64> {
    let (hs, ws) = (spec.tap_sides(h)?, spec.tap_sides(w)?);
    let taps: i64 = spec
        .channels
        .iter()
        .zip(hs.iter().zip(&ws))
        .map(|(c, (a, b))| c * a * b)
        .sum();
    let max_tap = spec
        .channels
        .iter()
        .zip(hs.iter().zip(&ws))
        .map(|(c, (a, b))| c * a * b)
        .max()?;
    let (lh, lw) = (spec.layer_sides(h)?, spec.layer_sides(w)?);
    let mut prev = 3 * h * w;
    let mut working = prev;
    for ((c, a), (_, b)) in lh.iter().zip(&lw) {
        let act = c * a * b;
        working = working.max(prev + act);
        prev = act;
    }
    let values = 3 * taps + working + max_tap;
    Some((n * values * 4) as u64 * 3 / 2)
}

/// Bytes held whatever the tiling, for `n` pairs of `h x w`: the two inputs, each tap's
/// stitched head map, and for a spatial map the upsampled layers and their sum.
pub(crate) fn fixed_bytes(spec: &TrunkSpec, n: i64, h: i64, w: i64, spatial: bool) -> u64 {
    let maps: i64 = match (spec.tap_sides(h), spec.tap_sides(w)) {
        (Some(a), Some(b)) => a.iter().zip(&b).map(|(x, y)| x * y).sum(),
        _ => 0,
    };
    let images = 2 * 3 * h * w;
    let spatial = if spatial { 3 * h * w } else { 0 };
    (n * (images + maps + spatial) * 4) as u64
}

/// Bytes the tiles of cores of `core` pixels need at their peak (the largest crop along
/// each axis), plus `fixed`.
pub(crate) fn tiled_bytes(
    net: Net,
    spec: &TrunkSpec,
    geom: &Geometry,
    n: i64,
    h: i64,
    w: i64,
    core: i64,
) -> u64 {
    let widest = |len: i64| {
        plan_axis(net, spec, geom, len, core)
            .ok()
            .and_then(|tiles| tiles.iter().map(|t| t.x1 - t.x0).max())
            .unwrap_or(len)
    };
    pass_bytes(spec, n, widest(h), widest(w)).unwrap_or(u64::MAX)
}

/// The largest core (a multiple of the grid) whose tiles fit in `budget` bytes with
/// `fixed` bytes held besides; Err with the smallest tiling's need when none does.
pub(crate) fn largest_core(
    net: Net,
    spec: &TrunkSpec,
    geom: &Geometry,
    (n, h, w): (i64, i64, i64),
    budget: u64,
    fixed: u64,
) -> std::result::Result<i64, u64> {
    let need = |k: i64| tiled_bytes(net, spec, geom, n, h, w, k * geom.grid).saturating_add(fixed);
    if need(1) > budget {
        return Err(need(1));
    }
    let (mut lo, mut hi) = (1, h.max(w) / geom.grid + 1);
    while lo < hi {
        let mid = (lo + hi + 1) / 2;
        if need(mid) <= budget {
            lo = mid
        } else {
            hi = mid - 1
        }
    }
    Ok(lo * geom.grid)
}

/// The memory the machine has available (`MemAvailable` in /proc/meminfo), if known.
pub(crate) fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Copies the outputs a tile owns from its head map (tile coordinates) into the
/// whole image's (`acc`).
pub(crate) fn stitch(
    acc: &Tensor,
    tile_map: &Tensor,
    stride: i64,
    rows: (&AxisTile, (i64, i64)),
    cols: (&AxisTile, (i64, i64)),
) -> Result<()> {
    let ((rt, (r0, r1)), (ct, (c0, c1))) = (rows, cols);
    if r0 >= r1 || c0 >= c1 {
        return Ok(());
    }
    let (lr, lc) = (r0 - rt.x0 / stride, c0 - ct.x0 / stride);
    let size = tile_map.size();
    if lr < 0 || lc < 0 || lr + r1 - r0 > size[2] || lc + c1 - c0 > size[3] {
        return Err(LpipsError::Internal(format!(
            "a tile's map of shape {size:?} lacks outputs it owns"
        )));
    }
    let src = tile_map
        .f_narrow(2, lr, r1 - r0)?
        .f_narrow(3, lc, c1 - c0)?;
    let mut dst = acc.f_narrow(2, r0, r1 - r0)?.f_narrow(3, c0, c1 - c0)?;
    dst.f_copy_(&src)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every output of every tap is owned by exactly one tile, whose crop covers its
    /// receptive field (clipped at the image) and starts on the grid.
    #[test]
    fn tiles_partition_outputs_and_cover_their_fields() {
        for net in Net::ALL {
            let spec = net.spec();
            let geom = spec.geometry();
            for len in [spec.min_side(), 97, 211, 300, 517] {
                for core in [1, 16, 40, 64, 1000] {
                    let tiles = plan_axis(net, spec, &geom, len, core).unwrap();
                    let sides = spec.tap_sides(len).unwrap();
                    for (l, (tap, &n)) in geom.taps.iter().zip(&sides).enumerate() {
                        let mut next = 0;
                        for t in &tiles {
                            assert_eq!(t.x0 % geom.grid, 0);
                            assert!(t.x1 - t.x0 >= spec.min_side());
                            let (s, e) = t.outs[l];
                            if s < e {
                                assert_eq!(s, next, "{net} len {len} core {core} tap {l}");
                                next = e;
                                assert!(tap.first(s) >= t.x0 || t.x0 == 0);
                                assert!(tap.end(e - 1) <= t.x1 || t.x1 == len);
                            }
                        }
                        assert_eq!(next, n, "{net} len {len} core {core} tap {l}");
                    }
                }
            }
        }
    }
}

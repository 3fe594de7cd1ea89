//! Where each tap's outputs come from in the input, from the layer specs alone: the
//! arithmetic tiled evaluation stands on (src/model/tiling.rs).
//!
//! Along one axis, output `o` of tap l reads the input pixels
//! `o * stride - offset ..= o * stride - offset + field - 1` (positions outside the image
//! are zero padding, or, in a ceil-mode pool, nothing). Through a layer with kernel k,
//! stride s and padding p: `field += (k - 1) * stride`, `offset += p * stride`, then
//! `stride *= s` (a fire module is a 1x1 then a 3x3 with padding 1). Every layer's
//! stride divides the last one's, `grid`: an input crop starting at a multiple of `grid`
//! sees every layer's sampling grid exactly as the whole image does.

use super::{LayerSpec, TrunkSpec};

/// One tap's sampling of the input, along either axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TapGeometry {
    /// Input pixels between neighbouring outputs.
    pub(crate) stride: i64,
    /// Input pixels before the image that output 0's window starts at.
    pub(crate) offset: i64,
    /// Input pixels one output reads (its receptive field).
    pub(crate) field: i64,
}

impl TapGeometry {
    /// First input pixel output `o` reads (may be negative: padding).
    pub(crate) fn first(&self, o: i64) -> i64 {
        o * self.stride - self.offset
    }

    /// One past the last input pixel output `o` reads (may pass the image's end).
    pub(crate) fn end(&self, o: i64) -> i64 {
        self.first(o) + self.field
    }
}

/// A trunk's geometry: each tap's, and the stride grid crops must start on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) taps: Vec<TapGeometry>,
    pub(crate) grid: i64,
}

impl TrunkSpec {
    /// The taps' strides, offsets and receptive fields, from the layers.
    pub(crate) fn geometry(&self) -> Geometry {
        let mut g = TapGeometry {
            stride: 1,
            offset: 0,
            field: 1,
        };
        let window = |g: &mut TapGeometry, kernel: i64, stride: i64, padding: i64| {
            g.field += (kernel - 1) * g.stride;
            g.offset += padding * g.stride;
            g.stride *= stride;
        };
        let mut taps = Vec::new();
        let mut start = 0;
        for &end in self.taps {
            for layer in &self.layers[start..end] {
                match *layer {
                    LayerSpec::Conv {
                        kernel,
                        stride,
                        padding,
                        ..
                    } => window(&mut g, kernel, stride, padding),
                    LayerSpec::MaxPool { kernel, stride, .. } => window(&mut g, kernel, stride, 0),
                    LayerSpec::Fire { .. } => {
                        window(&mut g, 1, 1, 0);
                        window(&mut g, 3, 1, 1);
                    }
                    // Reflection padding reads mirrored pixels near the image's border,
                    // which a crop that reaches that border holds too.
                    LayerSpec::BlurPool {
                        filter,
                        stride,
                        pad,
                        ..
                    } => window(&mut g, filter, stride, pad),
                    LayerSpec::Relu => {}
                }
            }
            taps.push(g);
            start = end;
        }
        Geometry {
            taps,
            grid: g.stride,
        }
    }

    /// Each tap's output length for an input length (libtorch's arithmetic, ceil-mode
    /// pools included); None when a layer would reject it.
    pub(crate) fn tap_sides(&self, mut side: i64) -> Option<Vec<i64>> {
        let mut out = Vec::with_capacity(self.taps.len());
        let mut start = 0;
        for &end in self.taps {
            for layer in &self.layers[start..end] {
                side = layer.out_side(side)?;
            }
            out.push(side);
            start = end;
        }
        Some(out)
    }

    /// Each layer's output channels and length for an input length (for memory
    /// estimates); fire modules report their concatenated output.
    pub(crate) fn layer_sides(&self, mut side: i64) -> Option<Vec<(i64, i64)>> {
        let last = self.taps.last().copied().unwrap_or(0);
        let mut c = 3;
        let mut out = Vec::with_capacity(last);
        for layer in &self.layers[..last] {
            side = layer.out_side(side)?;
            c = layer.out_channels(c);
            out.push((c, side));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Net;

    #[test]
    fn receptive_fields_follow_the_layers() {
        // AlexNet by hand: conv 11/4 p2, pool 3/2, conv 5 p2, pool 3/2, three conv 3 p1.
        let g = Net::Alex.spec().geometry();
        let fields: Vec<i64> = g.taps.iter().map(|t| t.field).collect();
        assert_eq!(fields, [11, 51, 99, 131, 163]);
        let strides: Vec<i64> = g.taps.iter().map(|t| t.stride).collect();
        assert_eq!(strides, [4, 8, 16, 16, 16]);
        assert_eq!(g.grid, 16);
        for net in Net::ALL {
            let g = net.spec().geometry();
            assert_eq!(g.grid, g.taps.last().unwrap().stride, "{net}");
        }
    }

    /// The windows' arithmetic agrees with the layers' output sizes: the last output of
    /// each tap starts inside the (padded) input, the one after it would not.
    #[test]
    fn windows_agree_with_output_sizes() {
        for net in Net::ALL {
            let spec = net.spec();
            let g = spec.geometry();
            for side in spec.min_side()..spec.min_side() + 80 {
                let sides = spec.tap_sides(side).unwrap();
                for (t, n) in g.taps.iter().zip(sides) {
                    assert!(t.first(n - 1) < side, "{net} {side}");
                    assert!(t.first(n - 1) >= -t.offset, "{net} {side}");
                }
            }
        }
    }
}

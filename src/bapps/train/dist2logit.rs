//! The reference's `Dist2LogitLayer`: the small network that turns two distances into
//! a predicted judgement.

use tch::{Device, Kind, Tensor};

// 5 inputs, 32 hidden channels, 1 output.
const RANK_MID: i64 = 32;
// The reference's epsilon in the ratio inputs d0 / (d1 + eps).
const RANK_EPS: f64 = 0.1;

/// The small network that turns two distances into a predicted judgement.
pub(super) struct RankNet {
    pub(super) params: Vec<(String, Tensor)>,
}

impl RankNet {
    pub(super) fn new(device: Device) -> RankNet {
        let shapes = [
            ("0", [RANK_MID, 5]),
            ("2", [RANK_MID, RANK_MID]),
            ("4", [1, RANK_MID]),
        ];
        let mut params = Vec::new();
        for (i, [out, inp]) in shapes {
            // torch's default for Conv2d: uniform within 1 / sqrt(fan_in), bias too.
            let bound = 1.0 / (inp as f64).sqrt();
            let w = Tensor::empty([out, inp, 1, 1], (Kind::Float, device)).uniform_(-bound, bound);
            let b = Tensor::empty([out], (Kind::Float, device)).uniform_(-bound, bound);
            params.push((format!("rank.model.{i}.weight"), w));
            params.push((format!("rank.model.{i}.bias"), b));
        }
        RankNet { params }
    }

    pub(super) fn forward(&self, d0: &Tensor, d1: &Tensor) -> Tensor {
        let x = Tensor::cat(
            &[
                d0.shallow_clone(),
                d1.shallow_clone(),
                d0 - d1,
                d0 / (d1 + RANK_EPS),
                d1 / (d0 + RANK_EPS),
            ],
            1,
        );
        let p = &self.params;
        let conv = |x: &Tensor, k: usize| {
            x.conv2d(
                &p[2 * k].1,
                Some(&p[2 * k + 1].1),
                [1, 1],
                [0, 0],
                [1, 1],
                1,
            )
        };
        // The reference's LeakyReLU(0.2).
        let leaky = |t: Tensor| t.maximum(&(&t * 0.2));
        let h = leaky(conv(&x, 0));
        let h = leaky(conv(&h, 1));
        conv(&h, 2).sigmoid()
    }
}

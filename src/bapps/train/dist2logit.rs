//! The reference's `Dist2LogitLayer`: the small network that turns two distances into
//! a predicted judgement.

use tch::{Device, Kind, Tensor};

use crate::error::Result;

// 5 inputs, 32 hidden channels, 1 output.
const RANK_MID: i64 = 32;
// The reference's epsilon in the ratio inputs d0 / (d1 + eps).
const RANK_EPS: f64 = 0.1;

/// The small network that turns two distances into a predicted judgement.
pub(super) struct RankNet {
    pub(super) params: Vec<(String, Tensor)>,
}

impl RankNet {
    pub(super) fn new(device: Device) -> Result<RankNet> {
        let shapes = [
            ("0", [RANK_MID, 5]),
            ("2", [RANK_MID, RANK_MID]),
            ("4", [1, RANK_MID]),
        ];
        let mut params = Vec::new();
        for (i, [out, inp]) in shapes {
            // torch's default for Conv2d: uniform within 1 / sqrt(fan_in), bias too.
            let bound = 1.0 / (inp as f64).sqrt();
            let w = Tensor::f_empty([out, inp, 1, 1], (Kind::Float, device))?
                .f_uniform_(-bound, bound)?;
            let b = Tensor::f_empty([out], (Kind::Float, device))?.f_uniform_(-bound, bound)?;
            params.push((format!("rank.model.{i}.weight"), w));
            params.push((format!("rank.model.{i}.bias"), b));
        }
        Ok(RankNet { params })
    }

    pub(super) fn forward(&self, d0: &Tensor, d1: &Tensor) -> Result<Tensor> {
        let x = Tensor::f_cat(
            &[
                d0.shallow_clone(),
                d1.shallow_clone(),
                d0.f_sub(d1)?,
                d0.f_div(&d1.f_add_scalar(RANK_EPS)?)?,
                d1.f_div(&d0.f_add_scalar(RANK_EPS)?)?,
            ],
            1,
        )?;
        let conv = |x: &Tensor, k: usize| -> Result<Tensor> {
            // Three layers of weight and bias, made by `new` (or loaded in its layout).
            let (Some((_, w)), Some((_, b))) = (self.params.get(2 * k), self.params.get(2 * k + 1))
            else {
                return Err(tch::TchError::Shape(format!("rank network has no layer {k}")).into());
            };
            Ok(x.f_conv2d(w, Some(b), [1, 1], [0, 0], [1, 1], 1)?)
        };
        // The reference's LeakyReLU(0.2).
        let leaky = |t: Tensor| -> Result<Tensor> { Ok(t.f_maximum(&t.f_mul_scalar(0.2)?)?) };
        let h = leaky(conv(&x, 0)?)?;
        let h = leaky(conv(&h, 1)?)?;
        Ok(conv(&h, 2)?.f_sigmoid()?)
    }
}

//! Adam as `torch.optim.Adam` computes it.

use tch::Tensor;

use crate::error::Result;

const BETA2: f64 = 0.999;
const ADAM_EPS: f64 = 1e-8;

/// Adam as `torch.optim.Adam` computes it (no weight decay, no amsgrad), with its state
/// in the open so that checkpoints can carry it.
pub(super) struct Adam {
    pub(super) step: i64,
    pub(super) exp_avg: Vec<Tensor>,
    pub(super) exp_avg_sq: Vec<Tensor>,
}

impl Adam {
    pub(super) fn new(params: &[(String, Tensor)]) -> Result<Adam> {
        let zeros = || -> Result<Vec<Tensor>> {
            Ok(params
                .iter()
                .map(|(_, p)| p.f_zeros_like())
                .collect::<Result<_, _>>()?)
        };
        Ok(Adam {
            step: 0,
            exp_avg: zeros()?,
            exp_avg_sq: zeros()?,
        })
    }

    pub(super) fn update(
        &mut self,
        params: &[(String, Tensor)],
        lr: f64,
        beta1: f64,
    ) -> Result<()> {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let bc1 = 1.0 - beta1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for (((_, p), m), v) in params
            .iter()
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            let mut g = p.f_grad()?;
            if !g.defined() {
                continue;
            }
            let _ = m
                .f_mul_scalar_(beta1)?
                .f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
            let _ = v
                .f_mul_scalar_(BETA2)?
                .f_add_(&g.f_mul(&g)?.f_mul_scalar(1.0 - BETA2)?)?;
            let denom = v
                .f_sqrt()?
                .f_div_scalar(bc2.sqrt())?
                .f_add_scalar(ADAM_EPS)?;
            let mut p = p.shallow_clone();
            let _ = p.f_add_(&m.f_div(&denom)?.f_mul_scalar(-lr / bc1)?)?;
            let _ = g.f_zero_()?;
        }
        Ok(())
    }
}

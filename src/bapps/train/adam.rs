//! Adam as `torch.optim.Adam` computes it.

use tch::Tensor;

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
    pub(super) fn new(params: &[(String, Tensor)]) -> Adam {
        Adam {
            step: 0,
            exp_avg: params.iter().map(|(_, p)| p.zeros_like()).collect(),
            exp_avg_sq: params.iter().map(|(_, p)| p.zeros_like()).collect(),
        }
    }

    pub(super) fn update(&mut self, params: &[(String, Tensor)], lr: f64, beta1: f64) {
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let bc1 = 1.0 - beta1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for (((_, p), m), v) in params
            .iter()
            .zip(&mut self.exp_avg)
            .zip(&mut self.exp_avg_sq)
        {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let _ = m.g_mul_scalar_(beta1).g_add_(&(&g * (1.0 - beta1)));
            let _ = v.g_mul_scalar_(BETA2).g_add_(&(&g * &g * (1.0 - BETA2)));
            let denom = v.sqrt() / bc2.sqrt() + ADAM_EPS;
            let mut p = p.shallow_clone();
            let _ = p.g_add_(&(&*m / denom * (-lr / bc1)));
            let mut g = g;
            let _ = g.zero_();
        }
    }
}

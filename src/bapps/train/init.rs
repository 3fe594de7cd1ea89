//! A trunk initialised as torchvision initialises an untrained one (the reference's
//! "scratch" runs).

use crate::error::Result;
use crate::model::Lpips;
use crate::trunk::Init;

/// Re-initialises the trunk as torchvision initialises an untrained one: AlexNet with
/// torch's layer defaults, VGG with Kaiming-normal (fan-out) weights and zero biases,
/// SqueezeNet with Kaiming-uniform weights and zero biases.
pub(super) fn torchvision_init(model: &Lpips) -> Result<()> {
    let _guard = tch::no_grad_guard();
    for (name, t) in model.trunk_tensors() {
        let size = t.size();
        let mut t = t;
        let is_weight = name.ends_with("weight");
        let fan_in: i64 = size
            .get(1..)
            .map_or(1, |s| s.iter().product::<i64>())
            .max(1);
        let fan_out: i64 = size.first().copied().unwrap_or(1)
            * size.get(2..).map_or(1, |k| k.iter().product::<i64>());
        match (model.net().spec().init, is_weight) {
            (Init::TorchDefault, true) => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                let _ = t.f_uniform_(-bound, bound)?;
            }
            (Init::TorchDefault, false) => {
                // torch's bias default uses the layer's fan-in, not the bias's.
                let layer_fan_in = model
                    .trunk_tensors()
                    .into_iter()
                    .find(|(n, _)| *n == name.replace("bias", "weight"))
                    .and_then(|(_, w)| Some(w.size().get(1..)?.iter().product::<i64>()))
                    .unwrap_or(1);
                let bound = 1.0 / (layer_fan_in as f64).sqrt();
                let _ = t.f_uniform_(-bound, bound)?;
            }
            (Init::KaimingNormalFanOut, true) => {
                let std = (2.0 / fan_out as f64).sqrt();
                let _ = t.f_normal_(0.0, std)?;
            }
            (Init::KaimingUniform, true) => {
                let bound = (6.0 / fan_in as f64).sqrt();
                let _ = t.f_uniform_(-bound, bound)?;
            }
            (_, false) => {
                let _ = t.f_zero_()?;
            }
        }
    }
    Ok(())
}

//! The reference's `ScalingLayer` (v0.1): inputs in [-1, 1] are shifted and scaled per
//! channel to the statistics the ImageNet trunks were trained on.

use tch::{Device, Tensor};

use crate::error::Result;

// The reference's constants: ImageNet's channel means and deviations, mapped to [-1, 1].
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];

/// `(x - shift) / scale`, per channel.
#[derive(Debug)]
pub(crate) struct ScalingLayer {
    shift: Tensor,
    scale: Tensor,
}

impl ScalingLayer {
    pub(crate) fn new(device: Device) -> Result<ScalingLayer> {
        let shape = [1, 3, 1, 1];
        Ok(ScalingLayer {
            shift: Tensor::f_from_slice(&SHIFT)?
                .f_view(shape)?
                .f_to_device(device)?,
            scale: Tensor::f_from_slice(&SCALE)?
                .f_view(shape)?
                .f_to_device(device)?,
        })
    }

    /// The layer with a whole-model file's `scaling_layer.shift` and `.scale`.
    pub(crate) fn from_tensors(
        shift: &Tensor,
        scale: &Tensor,
        device: Device,
    ) -> Result<ScalingLayer> {
        Ok(ScalingLayer {
            shift: shift.f_to_device(device)?,
            scale: scale.f_to_device(device)?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_sub(&self.shift)?.f_div(&self.scale)?)
    }

    pub(crate) fn share(&self) -> ScalingLayer {
        ScalingLayer {
            shift: self.shift.shallow_clone(),
            scale: self.scale.shallow_clone(),
        }
    }
}

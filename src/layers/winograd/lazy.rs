//! Filters transformed at the first pass that uses them, once per model.
//!
//! Transforming every eligible layer when the model is built cost VGG16 0.36 s and
//! 225 MB (AlexNet 30 ms) before any image was seen, also for inputs too small for the
//! Winograd path to be chosen (`winograd_pays`). Here each layer's filters are
//! transformed when a pass first takes the path, and every handle of the model
//! ([`crate::Lpips::share`], the folder engine's workers) uses that one copy.

use std::sync::{Arc, Mutex};

use tch::Tensor;

use super::Winograd;

/// A layer's filters in Winograd form, made on first use and shared by every handle
/// (`Clone` is another handle, not a copy).
#[derive(Debug, Clone)]
pub(crate) struct LazyWinograd(Arc<Mutex<State>>);

#[derive(Debug)]
enum State {
    /// Handles on the layer's weights (changes made in place before the first use are
    /// seen).
    Pending {
        weight: Tensor,
        bias: Tensor,
    },
    Ready(Winograd),
    /// The transform failed (e.g. out of memory): the layer convolves directly.
    Failed,
}

impl LazyWinograd {
    /// Keeps handles on `weight` (`Cout x Cin x 3 x 3`, f32, CPU) and `bias`.
    pub(crate) fn new(weight: &Tensor, bias: &Tensor) -> LazyWinograd {
        LazyWinograd(Arc::new(Mutex::new(State::Pending {
            weight: weight.shallow_clone(),
            bias: bias.shallow_clone(),
        })))
    }

    /// The transformed filters, made now on the first call; None where they could not
    /// be made, and the caller then convolves directly (the same result within
    /// rounding, so a failure here is no reason to fail the pass).
    pub(crate) fn get(&self) -> Option<Winograd> {
        // A poisoned lock means a transform panicked in another thread: direct
        // convolution from then on.
        let mut state = self.0.lock().ok()?;
        if let State::Pending { weight, bias } = &*state {
            let made = tch::no_grad(|| Winograd::new(weight, bias));
            *state = match made {
                Ok(w) => State::Ready(w),
                Err(_) => State::Failed,
            };
        }
        match &*state {
            State::Ready(w) => Some(w.share()),
            State::Pending { .. } | State::Failed => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn handles_made_before_the_first_use_share_one_transform() {
        let opts = (Kind::Float, Device::Cpu);
        let lazy = LazyWinograd::new(
            &Tensor::randn([8, 4, 3, 3], opts),
            &Tensor::zeros([8], opts),
        );
        let handles: Vec<LazyWinograd> = (0..4).map(|_| lazy.clone()).collect();
        let made: Vec<usize> = std::thread::scope(|s| {
            let runs: Vec<_> = handles
                .iter()
                .map(|h| s.spawn(move || h.get().expect("transformed").u.data_ptr() as usize))
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert!(
            made.iter().all(|&p| p == made[0]),
            "one copy of U: {made:?}"
        );
        assert_eq!(lazy.get().unwrap().u.data_ptr() as usize, made[0]);
    }

    #[test]
    fn a_failed_transform_leaves_the_layer_direct() {
        let opts = (Kind::Float, Device::Cpu);
        // 5x5 filters have no F(4x4, 3x3) form: the transform fails, every time.
        let lazy = LazyWinograd::new(
            &Tensor::randn([8, 4, 5, 5], opts),
            &Tensor::zeros([8], opts),
        );
        assert!(lazy.get().is_none());
        assert!(lazy.clone().get().is_none());
    }
}

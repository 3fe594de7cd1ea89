//! Facts and settings of the running process rather than of the metric: what libtorch
//! and the hardware offer ([`info`]), the devices by name ([`parse_device`]), the JPEG
//! decoder's SIMD code ([`jpeg_simd`]) and glibc's allocator ([`tune_cpu_allocator`]).

mod allocator;
mod info;

use tch::Device;

use crate::error::{LpipsError, Result};

pub use crate::image_io::jpeg_simd;
pub use allocator::tune_cpu_allocator;
pub use info::{Info, TrunkStatus, info};

/// Parses `cpu`, `cuda`, `cuda:N`, `mps` or `auto` (CUDA when available, else CPU), and
/// checks that the device exists.
pub fn parse_device(s: &str) -> Result<Device> {
    let device = match s {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        "mps" => Device::Mps,
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(index)) => Device::Cuda(index),
            _ => {
                return Err(LpipsError::Parse {
                    what: "device",
                    value: s.to_string(),
                    expected: "cpu, cuda, cuda:N, mps, auto",
                });
            }
        },
    };
    check_device(device)
}

/// The device itself when this process can use it, else
/// [`LpipsError::DeviceUnavailable`] saying why (instead of a panic inside libtorch).
pub(crate) fn check_device(device: Device) -> Result<Device> {
    let unavailable = |reason: String| LpipsError::DeviceUnavailable {
        device: match device {
            Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}").to_lowercase(),
        },
        reason,
    };
    match device {
        Device::Cpu => Ok(device),
        Device::Cuda(index) => {
            let count = tch::Cuda::device_count().max(0) as usize;
            if count == 0 {
                Err(unavailable(if info::cuda_library_loaded() {
                    "libtorch has CUDA support but sees no CUDA device (driver, \
                     CUDA_VISIBLE_DEVICES?)"
                        .into()
                } else {
                    "this process has no CUDA support loaded (a CPU-only libtorch, or \
                     libtorch_cuda not linked: see the README's set-up step)"
                        .into()
                }))
            } else if index >= count {
                Err(unavailable(format!("only {count} CUDA device(s)")))
            } else {
                Ok(device)
            }
        }
        Device::Mps if tch::utils::has_mps() => Ok(device),
        Device::Mps => Err(unavailable("this libtorch has no MPS support".into())),
        other => Err(unavailable(format!("{other:?} is not supported"))),
    }
}

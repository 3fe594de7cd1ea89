//! LPIPS placeholder docs
#![warn(missing_docs)]

mod config;
mod error;
mod image_io;
mod model;
mod spatial_io;
mod trunk;
mod weights;

pub use config::{Heads, InputRange, Lin, Net, Version, parse_device};
pub use error::{LpipsError, Result};
pub use image_io::{image_to_tensor, load_image};
pub use model::{LayerDistances, Lpips, LpipsBuilder};
pub use spatial_io::{write_heatmap, write_npy};
pub use tch::{Device, Tensor};
pub use weights::{TrunkWeights, hub_checkpoint_dir, linear_heads, torchvision_file_name};

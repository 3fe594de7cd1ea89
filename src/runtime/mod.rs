mod allocator;
mod info;

pub use allocator::tune_cpu_allocator;
pub(crate) use info::cuda_library_loaded;
pub use info::{Info, TrunkStatus, info};

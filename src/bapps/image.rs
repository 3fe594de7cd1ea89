//! BAPPS patches and judgements read as the reference's data loaders read them.

use std::path::Path;

use ndarray::Array3;

use crate::error::Result;

/// A patch as the reference's BAPPS loader makes it: `3 x H x W` f32 in [-1, 1].
pub fn load_patch(path: &Path, load_size: u32) -> Result<Array3<f32>> {
    let _ = (path, load_size);
    unimplemented!("helper")
}

/// A judgement file (`.npy` with one value).
pub fn read_judgement(path: &Path) -> Result<f64> {
    let _ = path;
    unimplemented!("helper")
}

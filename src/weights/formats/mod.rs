//! Weight file formats behind one seam: a [`TensorFile`] lists its tensors, tells a
//! tensor's shape without reading it, and copies one tensor out. A new format is a file
//! here implementing the trait and one line in [`open`].

mod safetensors;
mod torch;

use std::path::Path;

use tch::Tensor;

use crate::error::Result;

pub(crate) use self::safetensors::{SafetensorsBytes, SafetensorsFile};

/// A weight file whose tensors are copied out one by one, when taken.
pub(crate) trait TensorFile {
    /// Every tensor name in the file (any order).
    fn names(&self) -> Vec<String>;
    /// The shape of the tensor stored as `key`, from the file's index or header (nothing
    /// is copied); `None` without such a tensor.
    fn shape(&self, key: &str) -> Result<Option<Vec<i64>>>;
    /// Copies the tensor stored as `key` out of the file; `None` without such a tensor.
    fn read(&self, key: &str) -> Result<Option<Tensor>>;
    /// How messages name the file.
    fn source_name(&self) -> &str;
}

/// Opens a weight file by its extension: safetensors, else a `torch.save` checkpoint
/// (zip or legacy format).
pub(crate) fn open(path: &Path) -> Result<Box<dyn TensorFile>> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match extension.to_ascii_lowercase().as_str() {
        "safetensors" => Box::new(SafetensorsFile::open(path)?),
        _ => Box::new(crate::checkpoint::Checkpoint::open(path)?),
    })
}

//! safetensors files, memory-mapped or embedded, as a [`TensorFile`].

use std::ops::Deref;
use std::path::Path;

use safetensors::{Dtype, SafeTensorError, SafeTensors};
use tch::{Kind, Tensor};

use super::TensorFile;
use crate::error::{LpipsError, Result, WeightProblem};

/// The bytes of a safetensors file: memory-mapped, so that only the tensors taken are
/// read (a whole VGG16 state dict is 528 MB, its trunk 59 MB), or embedded in the binary.
pub(crate) enum SafetensorsBytes {
    Mapped(memmap2::Mmap),
    Static(&'static [u8]),
}

impl Deref for SafetensorsBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SafetensorsBytes::Mapped(m) => m,
            SafetensorsBytes::Static(s) => s,
        }
    }
}

/// A validated safetensors file and how messages name it.
pub(crate) struct SafetensorsFile {
    bytes: SafetensorsBytes,
    source_name: String,
}

impl SafetensorsFile {
    /// Maps a safetensors file without reading its tensor data; its header is checked.
    pub(crate) fn open(path: &Path) -> Result<SafetensorsFile> {
        let bytes = SafetensorsBytes::Mapped(crate::files::map_file(path)?);
        SafetensorsFile::new(bytes, &path.display().to_string())
    }

    /// Bytes already at hand (e.g. embedded in the binary), their header checked.
    pub(crate) fn new(bytes: SafetensorsBytes, source_name: &str) -> Result<SafetensorsFile> {
        validate(&bytes, source_name)?;
        Ok(SafetensorsFile {
            bytes,
            source_name: source_name.to_string(),
        })
    }
}

impl TensorFile for SafetensorsFile {
    fn names(&self) -> Vec<String> {
        SafeTensors::deserialize(&self.bytes)
            .map(|st| st.names().into_iter().cloned().collect())
            .unwrap_or_default()
    }

    fn shape(&self, key: &str) -> Result<Option<Vec<i64>>> {
        shape(&self.bytes, key, &self.source_name)
    }

    fn read(&self, key: &str) -> Result<Option<Tensor>> {
        read_tensor(&self.bytes, key, &self.source_name)
    }

    fn source_name(&self) -> &str {
        &self.source_name
    }
}

fn validate(bytes: &[u8], source_name: &str) -> Result<()> {
    SafeTensors::deserialize(bytes)
        .map(|_| ())
        .map_err(|e| format_error(source_name, e))
}

fn format_error(source_name: &str, e: SafeTensorError) -> LpipsError {
    WeightProblem::Format {
        reason: format!("not a valid safetensors file ({e:?})"),
    }
    .at(source_name)
}

/// The shape of one tensor, from the header only; `Ok(None)` when there is no such key.
fn shape(bytes: &[u8], key: &str, source_name: &str) -> Result<Option<Vec<i64>>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_error(source_name, e))?;
    match st.tensor(key) {
        Ok(view) => Ok(Some(view.shape().iter().map(|&d| d as i64).collect())),
        Err(SafeTensorError::TensorNotFound(_)) => Ok(None),
        Err(e) => Err(format_error(source_name, e)),
    }
}

/// Copies one tensor out of validated bytes; `Ok(None)` when there is no such key.
fn read_tensor(bytes: &[u8], key: &str, source_name: &str) -> Result<Option<Tensor>> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_error(source_name, e))?;
    let view = match st.tensor(key) {
        Ok(view) => view,
        Err(SafeTensorError::TensorNotFound(_)) => return Ok(None),
        Err(e) => return Err(format_error(source_name, e)),
    };
    let kind = match view.dtype() {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        other => {
            return Err(WeightProblem::Dtype {
                key: key.to_string(),
                dtype: format!("{other:?}"),
            }
            .at(source_name));
        }
    };
    let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
    Ok(Some(Tensor::f_from_data_size(view.data(), &shape, kind)?))
}

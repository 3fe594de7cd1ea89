//! PyTorch checkpoints (`torch.save`, zip and legacy formats) read without Python and
//! without executing anything: `pickle/` accepts only what a state dict needs,
//! `index.rs` locates each tensor's bytes and checks them against the file, this file
//! copies out the tensors asked for (onto the CPU, wherever they were saved from).

pub(crate) mod index;
pub(crate) mod pickle;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tch::{Kind, Tensor};

use crate::error::{LpipsError, Result, WeightProblem};
use index::Index;
use pickle::{Dtype, PickleError, TensorRef};

/// A memory-mapped checkpoint and the index of its tensors; tensors are copied out only
/// when taken, so a whole torchvision state dict costs only its trunk's bytes.
pub(crate) struct Checkpoint {
    bytes: memmap2::Mmap,
    tensors: HashMap<String, Arc<TensorRef>>,
    storages: HashMap<Arc<str>, std::ops::Range<usize>>,
    source_name: String,
}

fn convert_error(source_name: &str, e: PickleError) -> LpipsError {
    match e {
        PickleError::Forbidden(global) => WeightProblem::ForbiddenGlobal { global }.at(source_name),
        PickleError::Malformed(reason) => WeightProblem::Format { reason }.at(source_name),
    }
}

fn kind(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::Bool => Kind::Bool,
    }
}

impl Checkpoint {
    pub(crate) fn open(path: &Path) -> Result<Checkpoint> {
        let source_name = path.display().to_string();
        let bytes = crate::files::map_file(path)?;
        let Index { tensors, storages } =
            index::index(&bytes).map_err(|e| convert_error(&source_name, e))?;
        Ok(Checkpoint {
            bytes,
            tensors: tensors.into_iter().collect(),
            storages,
            source_name,
        })
    }

    pub(crate) fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Tensor names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        names
    }

    /// A tensor's shape, without reading it; `None` without such a key.
    pub(crate) fn shape(&self, key: &str) -> Option<Vec<i64>> {
        self.tensors.get(key).map(|t| t.size.clone())
    }

    /// Copies one tensor out (contiguous, its stored dtype); `None` without such a key.
    /// The index checked that it lies inside its storage's bytes and takes no more
    /// bytes than they do, so this allocates at most the file's share of it.
    pub(crate) fn read(&self, key: &str) -> Result<Option<Tensor>> {
        let Some(t) = self.tensors.get(key) else {
            return Ok(None);
        };
        let kind = kind(t.storage.dtype);
        let record = &self.bytes[self.storages[&t.storage.key].clone()];
        let storage = &record[index::storage_bytes(t, record.len())];
        let elements = index::element_range(t).map_err(|e| convert_error(&self.source_name, e))?;
        if elements.is_empty() {
            return Ok(Some(Tensor::f_zeros(
                t.size.as_slice(),
                (kind, tch::Device::Cpu),
            )?));
        }
        let size = t.storage.dtype.size();
        let (start, end) = (elements.start as usize, elements.end as usize);
        let flat = Tensor::f_from_data_size(
            &storage[start * size..end * size],
            &[(end - start) as i64],
            kind,
        )?;
        let view = flat.f_as_strided(
            t.size.as_slice(),
            t.stride.as_slice(),
            t.offset - start as i64,
        )?;
        Ok(Some(view.f_contiguous()?))
    }
}

/// Reads every tensor of a `torch.save` checkpoint (`.pth`/`.pt`, zip or legacy format),
/// by name, in name order, without Python and without executing any of it.
pub fn read_checkpoint(path: impl AsRef<Path>) -> Result<Vec<(String, Tensor)>> {
    let checkpoint = Checkpoint::open(path.as_ref())?;
    checkpoint
        .names()
        .into_iter()
        .map(|name| {
            let tensor = checkpoint.read(&name)?.ok_or_else(|| {
                WeightProblem::Missing {
                    key: name.clone(),
                    expected: Vec::new(),
                }
                .at(path.as_ref().display().to_string())
            })?;
            Ok((name, tensor))
        })
        .collect()
}

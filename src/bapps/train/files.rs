//! Training checkpoints on disk: safetensors with the run's metadata, written
//! atomically.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use tch::{Device, Kind, Tensor};

use crate::error::{LpipsError, Result};

pub(super) fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = crate::files::map_file(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
        LpipsError::TrainCheckpoint {
            path: path.to_path_buf(),
            reason: format!("not a safetensors file ({e:?})"),
        }
    })?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

pub(super) fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    meta: HashMap<String, String>,
) -> Result<()> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let t = t
                .f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Float)?
                .f_contiguous()?;
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.f_flatten(0, -1)?)?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((name.clone(), shape, bytes))
        })
        .collect::<Result<_>>()?;
    let views: Vec<(&str, TensorView)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            // The bytes are the shape's f32 values, so the sizes agree.
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| {
                LpipsError::TrainCheckpoint {
                    path: path.to_path_buf(),
                    reason: format!("cannot write `{name}` ({e:?})"),
                }
            })?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<_>>()?;
    crate::files::write_atomic_path(path, |tmp| {
        safetensors::serialize_to_file(views, &Some(meta), tmp).map_err(|e| {
            LpipsError::TrainCheckpoint {
                path: path.to_path_buf(),
                reason: format!("cannot write ({e:?})"),
            }
        })
    })
}

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
            let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let values = Vec::<f32>::try_from(t.flatten(0, -1))?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok((name.clone(), shape, bytes))
        })
        .collect::<Result<_>>()?;
    let views: Vec<(&str, TensorView)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes agree");
            (name.as_str(), view)
        })
        .collect();
    crate::files::write_atomic_path(path, |tmp| {
        safetensors::serialize_to_file(views, &Some(meta), tmp).map_err(|e| {
            LpipsError::WeightFormat {
                source_name: path.display().to_string(),
                reason: format!("cannot write ({e:?})"),
            }
        })
    })
}

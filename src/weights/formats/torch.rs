//! `torch.save` checkpoints (read by [`crate::checkpoint`]) as a [`TensorFile`].

use tch::Tensor;

use super::TensorFile;
use crate::checkpoint::Checkpoint;
use crate::error::Result;

impl TensorFile for Checkpoint {
    fn names(&self) -> Vec<String> {
        Checkpoint::names(self)
    }

    fn shape(&self, key: &str) -> Result<Option<Vec<i64>>> {
        Ok(Checkpoint::shape(self, key))
    }

    fn read(&self, key: &str) -> Result<Option<Tensor>> {
        Checkpoint::read(self, key)
    }

    fn source_name(&self) -> &str {
        Checkpoint::source_name(self)
    }
}

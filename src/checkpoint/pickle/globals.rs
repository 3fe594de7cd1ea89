//! The allow-list: the only Python globals a pickle may name. Anything else is refused
//! by name before it could be called; nothing is ever imported or executed.

use super::PickleError;

/// Element types of the storages a checkpoint may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    pub fn size(self) -> usize {
        match self {
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F16 | Dtype::BF16 | Dtype::I16 => 2,
            Dtype::I8 | Dtype::U8 | Dtype::Bool => 1,
        }
    }

    fn from_storage_name(name: &str) -> Option<Dtype> {
        Some(match name {
            "FloatStorage" => Dtype::F32,
            "DoubleStorage" => Dtype::F64,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::BF16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        })
    }
}

/// Storage types torch knows but whose elements no LPIPS weight can be.
const UNSUPPORTED_STORAGES: [&str; 7] = [
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt32Storage",
    "QInt8Storage",
    "QUInt8Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

/// The callables a state dict may name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    /// A storage type; `torch.cuda.*Storage` (old GPU checkpoints) reads onto the CPU.
    Storage(Dtype),
}

/// The global `module.name` if it is allowed; refused by name otherwise.
pub fn allowed_global(module: &str, name: &str) -> Result<Global, PickleError> {
    let forbidden = || PickleError::Forbidden(format!("{module}.{name}"));
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor") => Ok(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch" | "torch.cuda", storage) => match Dtype::from_storage_name(storage) {
            Some(dtype) => Ok(Global::Storage(dtype)),
            None if UNSUPPORTED_STORAGES.contains(&storage) => Err(PickleError::Malformed(
                format!("storage type {module}.{name} (complex or quantized) is not supported"),
            )),
            None => Err(forbidden()),
        },
        _ => Err(forbidden()),
    }
}

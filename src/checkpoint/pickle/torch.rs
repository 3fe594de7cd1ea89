//! What torch's pickles build: storages named by persistent ids, and tensors rebuilt as
//! strided views of them (`torch._utils._rebuild_tensor{,_v2}`, `_rebuild_parameter`).
//!
//! Storages follow torch 2.11's loaders (`torch/serialization.py`) key by key: the first
//! persistent id naming a storage key fixes its type and size; later ones reuse it. In
//! the legacy format a persistent id may name a *view*, `(view_key, offset, view_size)`
//! in elements of its own type, cut from the storage's bytes as Python slices them
//! (clamped to the storage's end); the first view of a key is kept, as in torch.

use std::collections::HashMap;
use std::sync::Arc;

use super::globals::{Dtype, Global};
use super::value::{Budget, Value, grow, shared};
use super::{PickleError, bad};

/// The layout a pickle comes from, which fixes the form of its persistent ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `('storage', type, key, location, numel)`, torch >= 1.6.
    Zip,
    /// `('storage', type, root_key, location, numel, view)`, before torch 1.6.
    Legacy,
}

/// The bytes a tensor reads: part of one stored storage (its record in the file).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    /// The key of the storage whose bytes are stored (the root of a view).
    pub key: Arc<str>,
    /// Element type, which the tensor takes.
    pub dtype: Dtype,
    /// Where in the stored storage this one starts, in bytes (0 but for views).
    pub byte_offset: u64,
    /// How many bytes it spans, as declared (the file is checked against it later).
    pub byte_len: u64,
}

/// A stored storage as first declared: element type and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Root {
    pub dtype: Dtype,
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage, offset
/// in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: Arc<StorageRef>,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// The storages a pickle names, as torch's loader keeps them while it reads.
#[derive(Debug)]
pub struct Storages {
    layout: Layout,
    /// Every storage and view by key (torch's `deserialized_objects` / `loaded_storages`).
    named: HashMap<Arc<str>, Arc<StorageRef>>,
    /// The stored storages, as declared.
    pub roots: HashMap<Arc<str>, Root>,
}

impl Storages {
    pub fn new(layout: Layout) -> Storages {
        Storages {
            layout,
            named: HashMap::new(),
            roots: HashMap::new(),
        }
    }

    /// Whether a key names a view rather than a stored storage.
    pub fn is_view(&self, key: &str) -> bool {
        self.named.get(key).is_some_and(|s| &*s.key != key)
    }

    fn root(
        &mut self,
        key: &str,
        dtype: Dtype,
        numel: u64,
    ) -> Result<Arc<StorageRef>, PickleError> {
        if let Some(existing) = self.named.get(key) {
            // Named before: torch reuses it, unless it holds no bytes at all (a null data
            // pointer), which the legacy loader replaces by an empty storage of the new
            // type and the zip loader declares afresh.
            let empty = self
                .named
                .get(&existing.key)
                .is_some_and(|root| root.byte_len == 0);
            match (empty, self.layout) {
                (false, _) => return Ok(existing.clone()),
                (true, Layout::Legacy) => {
                    return Ok(Arc::new(StorageRef {
                        key: existing.key.clone(),
                        dtype,
                        byte_offset: 0,
                        byte_len: 0,
                    }));
                }
                (true, Layout::Zip) => {}
            }
        }
        let byte_len = numel.checked_mul(dtype.size() as u64).ok_or_else(|| {
            PickleError::Malformed(format!("storage `{key}`: {numel} elements overflow"))
        })?;
        let key: Arc<str> = Arc::from(key);
        let storage = Arc::new(StorageRef {
            key: key.clone(),
            dtype,
            byte_offset: 0,
            byte_len,
        });
        self.named.insert(key.clone(), storage.clone());
        self.roots.insert(key, Root { dtype, numel });
        Ok(storage)
    }

    /// torch's `persistent_load`: the storage a persistent id names.
    pub fn persistent_load(&mut self, pid: &Value) -> Result<Value, PickleError> {
        let items = match pid {
            Value::Tuple(t) => &t.1,
            other => return bad(format!("persistent id is a {}, not a tuple", other.kind())),
        };
        match items.first().and_then(Value::as_str) {
            Some("storage") => {}
            Some("module") => {
                return bad(
                    "the checkpoint is a whole pickled model (torch.save(model)), not a state dict",
                );
            }
            _ => return bad("persistent id is not a ('storage', ...) tuple"),
        }
        let (dtype, key, numel, view) = match (self.layout, &items[1..]) {
            (Layout::Zip, [Value::Global(Global::Storage(dtype)), key, _location, numel]) => {
                (*dtype, key, numel, &Value::None)
            }
            (
                Layout::Legacy,
                [
                    Value::Global(Global::Storage(dtype)),
                    key,
                    _location,
                    numel,
                    view,
                ],
            ) => (*dtype, key, numel, view),
            (Layout::Zip, _) => {
                return bad(
                    "persistent id is not ('storage', <storage type>, key, location, numel)",
                );
            }
            (Layout::Legacy, _) => {
                return bad(
                    "persistent id is not ('storage', <storage type>, key, location, numel, view)",
                );
            }
        };
        let key = key
            .as_str()
            .ok_or_else(|| PickleError::Malformed("storage key is not a string".into()))?;
        let numel = count(numel, "storage size")?;
        let storage = self.root(key, dtype, numel)?;
        let storage = match view {
            Value::None => storage,
            Value::Tuple(t) => match t.1.as_slice() {
                [view_key, offset, view_size] => {
                    let view_key = view_key.as_str().ok_or_else(|| {
                        PickleError::Malformed("storage view key is not a string".into())
                    })?;
                    let offset = count(offset, "storage view offset")?;
                    let view_size = count(view_size, "storage view size")?;
                    self.view(&storage, view_key, dtype, offset, view_size)
                }
                _ => return bad("storage view is not (key, offset, size)"),
            },
            other => return bad(format!("storage view is a {}, not a tuple", other.kind())),
        };
        Ok(Value::Storage(storage))
    }

    /// The view `view_key` of `storage`: `offset..offset + size` elements of `dtype`,
    /// cut at the storage's end as a Python slice is; the first one of a key is kept.
    fn view(
        &mut self,
        storage: &StorageRef,
        view_key: &str,
        dtype: Dtype,
        offset: u64,
        size: u64,
    ) -> Arc<StorageRef> {
        if let Some(existing) = self.named.get(view_key) {
            return existing.clone();
        }
        let element = dtype.size() as u64;
        let start = offset.saturating_mul(element).min(storage.byte_len);
        let end = offset
            .saturating_add(size)
            .saturating_mul(element)
            .min(storage.byte_len);
        let view = Arc::new(StorageRef {
            key: storage.key.clone(),
            dtype,
            byte_offset: storage.byte_offset + start,
            byte_len: end - start,
        });
        self.named.insert(Arc::from(view_key), view.clone());
        view
    }
}

fn count(v: &Value, what: &str) -> Result<u64, PickleError> {
    v.as_int()
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| PickleError::Malformed(format!("{what} is not a count: {}", v.kind())))
}

fn int_tuple(v: &Value, what: &str, budget: &mut Budget) -> Result<Vec<i64>, PickleError> {
    let items = v.as_seq(budget)?.ok_or_else(|| {
        PickleError::Malformed(format!("tensor {what} is a {}, not a tuple", v.kind()))
    })?;
    items
        .iter()
        .map(|i| {
            i.as_int().ok_or_else(|| {
                PickleError::Malformed(format!("tensor {what} holds a {}", i.kind()))
            })
        })
        .collect()
}

/// `REDUCE`: calls one of the allowed globals, by what it builds, never by running it.
pub fn reduce(callable: &Value, args: &Value, budget: &mut Budget) -> Result<Value, PickleError> {
    let Value::Global(global) = callable else {
        return bad(format!(
            "REDUCE calls a {}, not an allowed global",
            callable.kind()
        ));
    };
    let args = match args {
        Value::Tuple(t) => &t.1,
        other => {
            return bad(format!(
                "REDUCE arguments are a {}, not a tuple",
                other.kind()
            ));
        }
    };
    match global {
        Global::OrderedDict if args.is_empty() => Ok(Value::Dict(shared())),
        // Older torch pickled `OrderedDict([[key, value], ...])`.
        Global::OrderedDict if args.len() == 1 => {
            let pairs = args[0]
                .as_seq(budget)?
                .ok_or_else(|| PickleError::Malformed("OrderedDict from a non-sequence".into()))?;
            let dict = shared();
            for pair in pairs {
                match pair.as_seq(budget)?.as_deref() {
                    Some([k, v]) => {
                        grow(&dict, k.depth().max(v.depth()))?;
                        dict.items.borrow_mut().push((k.clone(), v.clone()));
                    }
                    _ => return bad("OrderedDict item is not a (key, value) pair"),
                }
            }
            Ok(Value::Dict(dict))
        }
        Global::RebuildTensorV2 | Global::RebuildTensor if args.len() >= 4 => {
            let Value::Storage(storage) = &args[0] else {
                return bad(format!(
                    "tensor rebuilt from a {}, not a storage",
                    args[0].kind()
                ));
            };
            let offset = args[1]
                .as_int()
                .ok_or_else(|| PickleError::Malformed("storage offset is not an int".into()))?;
            let size = int_tuple(&args[2], "size", budget)?;
            let stride = int_tuple(&args[3], "stride", budget)?;
            if size.len() != stride.len() {
                return bad(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                ));
            }
            Ok(Value::Tensor(Arc::new(TensorRef {
                storage: storage.clone(),
                offset,
                size,
                stride,
            })))
        }
        Global::RebuildParameter if !args.is_empty() => match &args[0] {
            t @ Value::Tensor(_) => Ok(t.clone()),
            other => bad(format!("parameter rebuilt from a {}", other.kind())),
        },
        other => bad(format!(
            "REDUCE {other:?} with {} arguments is not supported",
            args.len()
        )),
    }
}

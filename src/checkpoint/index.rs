//! Finds the tensors of a `torch.save` checkpoint without copying anything: which
//! storage each tensor views and where each storage's bytes lie in the file.
//!
//! Two layouts: the zip archive of torch >= 1.6 (`<name>/data.pkl` plus one stored
//! entry per storage under `<name>/data/`), and the legacy stream (magic number,
//! protocol version and system-info pickles, the object pickle, a pickle listing the
//! storage keys, then each storage as an 8-byte element count and its raw bytes).
//!
//! Every tensor is checked here against the bytes the file holds for it, so that
//! nothing is allocated for a tensor that cannot be read: its view must lie inside its
//! storage, and copying it out must not take more bytes than that storage holds (an
//! overlapping or broadcast view, stride 0 for instance, is refused rather than
//! expanded).
//!
//! Like the pickle reader, this depends on `std` and `zip` only, for the fuzz target.

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use super::pickle::{Budget, Layout, PickleError, Storages, TensorRef, Value, unpickle};

/// torch's legacy magic number, 0x1950a86a20f9469cfc6c, as pickled (little-endian).
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

/// The tensors of a checkpoint and the byte range of each stored storage in the file.
#[derive(Debug)]
pub struct Index {
    pub tensors: Vec<(String, Arc<TensorRef>)>,
    pub storages: HashMap<Arc<str>, Range<usize>>,
}

fn bad<T>(why: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError::Malformed(why.into()))
}

/// Indexes a checkpoint held in memory (usually a memory map of the file).
pub fn index(data: &[u8]) -> Result<Index, PickleError> {
    let index = if data.starts_with(b"PK\x03\x04") {
        index_zip(data)?
    } else if data.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
        index_legacy(data)?
    } else if data.get(257..262) == Some(b"ustar") {
        return bad(
            "torch's pre-0.1.10 tar format, which torch itself no longer reads with \
             weights_only=True: load and save it again with an older torch",
        );
    } else {
        return bad(
            "not a PyTorch checkpoint: neither a zip archive nor torch's legacy format (wrong magic)",
        );
    };
    for (name, tensor) in &index.tensors {
        check_tensor(name, tensor, &index.storages)?;
    }
    Ok(index)
}

/// The elements of its storage that a tensor reads: `start..end`; `0..0` when it has
/// no elements (it then reads nothing, wherever its offset points, as in torch).
pub fn element_range(t: &TensorRef) -> Result<Range<u64>, PickleError> {
    let offset = u64::try_from(t.offset).or_else(|_| bad("negative storage offset"))?;
    let mut last = offset;
    for (&size, &stride) in t.size.iter().zip(&t.stride) {
        if size < 0 || stride < 0 {
            return bad(format!(
                "negative size or stride: {:?} / {:?}",
                t.size, t.stride
            ));
        }
    }
    if t.size.contains(&0) {
        return Ok(0..0);
    }
    for (&size, &stride) in t.size.iter().zip(&t.stride) {
        last = (size as u64 - 1)
            .checked_mul(stride as u64)
            .and_then(|span| last.checked_add(span))
            .ok_or_else(|| PickleError::Malformed("tensor extent overflows".into()))?;
    }
    Ok(offset..last + 1)
}

/// The number of elements of a tensor (`None` when it overflows).
pub fn numel(t: &TensorRef) -> Option<u64> {
    t.size
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?))
}

/// The bytes of its record that a tensor's storage spans: its declared span, cut at the
/// record's end.
pub fn storage_bytes(t: &TensorRef, record_len: usize) -> Range<usize> {
    let clamp = |b: u64| usize::try_from(b).map_or(record_len, |b| b.min(record_len));
    let start = clamp(t.storage.byte_offset);
    let end = clamp(t.storage.byte_offset.saturating_add(t.storage.byte_len));
    start..end.max(start)
}

fn check_tensor(
    name: &str,
    t: &TensorRef,
    storages: &HashMap<Arc<str>, Range<usize>>,
) -> Result<(), PickleError> {
    let record = storages.get(&t.storage.key).ok_or_else(|| {
        PickleError::Malformed(format!(
            "tensor `{name}`: storage `{}` is missing",
            t.storage.key
        ))
    })?;
    let element = t.storage.dtype.size() as u64;
    let held = storage_bytes(t, record.len()).len() as u64 / element;
    let needed = element_range(t)?;
    if needed.end > held {
        return bad(format!(
            "tensor `{name}` ({:?}, stride {:?}, offset {}) reads elements up to {}, but its storage holds {held}",
            t.size, t.stride, t.offset, needed.end,
        ));
    }
    match numel(t) {
        Some(n) if n <= held => Ok(()),
        n => bad(format!(
            "tensor `{name}` ({:?}, stride {:?}) has {} elements, but its storage holds only \
             {held}: an overlapping or broadcast view, which would take {} bytes once copied; \
             refused",
            t.size,
            t.stride,
            n.map_or("too many".to_string(), |n| n.to_string()),
            n.and_then(|n| n.checked_mul(element))
                .map_or("too many".to_string(), |b| b.to_string()),
        )),
    }
}

/// The name -> tensor entries of a state dict (or of its `state_dict` entry).
fn state_dict(
    value: &Value,
    budget: &mut Budget,
) -> Result<Vec<(String, Arc<TensorRef>)>, PickleError> {
    let Value::Dict(dict) = value else {
        return bad("the checkpoint does not hold a dict of tensors");
    };
    let items = dict.items.borrow();
    if let Some((_, inner @ Value::Dict(_))) =
        items.iter().find(|(k, _)| k.as_str() == Some("state_dict"))
    {
        return state_dict(inner, budget);
    }
    let mut out = Vec::new();
    for (k, v) in items.iter() {
        if let (Some(name), Value::Tensor(t)) = (k.as_str(), v) {
            budget.charge(name.len())?;
            out.push((name.to_string(), t.clone()));
        }
    }
    if out.is_empty() {
        return bad("the checkpoint holds no tensors");
    }
    Ok(out)
}
fn index_zip(data: &[u8]) -> Result<Index, PickleError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(data))
        .map_err(|e| PickleError::Malformed(format!("broken zip archive: {e}")))?;
    // Every entry's bytes must be stored uncompressed inside the file, as torch writes
    // them (torch itself cannot read compressed entries either).
    let mut entries: HashMap<String, Range<usize>> = HashMap::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| PickleError::Malformed(format!("broken zip entry {i}: {e}")))?;
        let name = entry.name().to_string();
        if entry.compression() != zip::CompressionMethod::Stored {
            return bad(format!(
                "zip entry `{name}` is compressed; torch writes stored entries"
            ));
        }
        let start = entry
            .data_start()
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| {
                PickleError::Malformed(format!("zip entry `{name}` has no data offset"))
            })?;
        let len = usize::try_from(entry.size()).or_else(|_| bad("zip entry too large"))?;
        match start.checked_add(len) {
            Some(end) if end <= data.len() => entries.insert(name, start..end),
            _ => {
                return bad(format!(
                    "zip entry `{name}` runs past the end of the file (truncated?)"
                ));
            }
        };
    }
    let pkl = entries
        .keys()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .cloned()
        .ok_or_else(|| {
            PickleError::Malformed(
                "zip archive without data.pkl: not a torch.save checkpoint".into(),
            )
        })?;
    let prefix = &pkl[..pkl.len() - "data.pkl".len()];
    if let Some(order) = entries.get(&format!("{prefix}byteorder")) {
        if &data[order.clone()] != b"little" {
            return bad("big-endian checkpoints are not supported");
        }
    }
    let mut named = Storages::new(Layout::Zip);
    let (tensors, _) = unpickle(
        &data[entries[&pkl].clone()],
        0,
        Some(&mut named),
        state_dict,
    )?;
    let mut storages = HashMap::new();
    for key in named.roots.keys() {
        if let Some(range) = entries.get(&format!("{prefix}data/{key}")) {
            storages.insert(key.clone(), range.clone());
        }
    }
    Ok(Index { tensors, storages })
}

fn index_legacy(data: &[u8]) -> Result<Index, PickleError> {
    let (magic_ok, pos) = unpickle(data, 0, None, |v, _| {
        Ok(matches!(v, Value::BigInt(b) if **b == LEGACY_MAGIC))
    })?;
    if !magic_ok {
        return bad("legacy checkpoint with a wrong magic number");
    }
    let (protocol, pos) = unpickle(data, pos, None, |v, _| Ok(v.as_int()))?;
    if protocol != Some(LEGACY_PROTOCOL) {
        return bad(format!(
            "legacy checkpoint protocol {protocol:?}, expected {LEGACY_PROTOCOL}"
        ));
    }
    let (little, pos) = unpickle(data, pos, None, |v, _| {
        let Value::Dict(d) = v else {
            return bad("legacy system info is not a dict");
        };
        let items = d.items.borrow();
        Ok(items
            .iter()
            .find(|(k, _)| k.as_str() == Some("little_endian"))
            .map(|(_, v)| matches!(v, Value::Bool(true))))
    })?;
    if little == Some(false) {
        return bad("big-endian checkpoints are not supported");
    }
    let mut named = Storages::new(Layout::Legacy);
    let (tensors, pos) = unpickle(data, pos, Some(&mut named), state_dict)?;
    let (keys, mut pos) = unpickle(data, pos, None, |v, budget| {
        v.as_seq(budget)?
            .ok_or_else(|| PickleError::Malformed("legacy storage key list is not a list".into()))?
            .iter()
            .map(|k| {
                let key = k
                    .as_str()
                    .ok_or_else(|| PickleError::Malformed("storage key is not a string".into()))?;
                budget.charge(key.len())?;
                Ok(key.to_string())
            })
            .collect::<Result<Vec<String>, _>>()
    })?;
    // Then each listed storage: its element count, which torch requires to be the one
    // its persistent id declared, and its bytes.
    let mut storages = HashMap::new();
    let mut seen = HashSet::new();
    for key in keys {
        let Some((key, root)) = named.roots.get_key_value(key.as_str()) else {
            if named.is_view(&key) {
                return bad(format!(
                    "the storage list names `{key}`, a storage view, not a storage"
                ));
            }
            return bad(format!(
                "storage `{key}` is listed but the checkpoint never names it"
            ));
        };
        if !seen.insert(key.clone()) {
            return bad(format!("storage `{key}` is listed twice"));
        }
        let count = data
            .get(pos..pos.saturating_add(8))
            .ok_or_else(|| PickleError::Malformed(format!("truncated before storage `{key}`")))?;
        let count: [u8; 8] = count
            .try_into()
            .map_err(|_| PickleError::Malformed(format!("truncated before storage `{key}`")))?;
        let count = u64::from_le_bytes(count);
        let len = count
            .checked_mul(root.dtype.size() as u64)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| PickleError::Malformed(format!("storage `{key}` size overflows")))?;
        let start = pos + 8;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| {
                PickleError::Malformed(format!(
                    "storage `{key}` runs past the end of the file (truncated?)"
                ))
            })?;
        if count != root.numel {
            return bad(format!(
                "storage `{key}` holds {count} elements in the file but {} by its persistent id \
                 (torch refuses this too: wrong byte size)",
                root.numel
            ));
        }
        storages.insert(key.clone(), start..end);
        pos = end;
    }
    Ok(Index { tensors, storages })
}

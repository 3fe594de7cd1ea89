//! Fuzzes the checkpoint reader: the restricted unpickler and the zip / legacy indexing,
//! included from the library's own sources (they need neither libtorch nor the rest of
//! the crate). Any input must give an index or an error: no panic, no hang, no huge
//! allocation, no stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/checkpoint/pickle/mod.rs"]
mod pickle;

#[allow(dead_code)]
#[path = "../../src/checkpoint/index.rs"]
mod index;

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = index::index(data) {
        // Every tensor was checked against its storage's bytes: what it reads lies
        // inside them, and copying it takes no more bytes than they hold.
        for (_, t) in &found.tensors {
            let record = &found.storages[&t.storage.key];
            let bytes = index::storage_bytes(t, record.len()).len();
            let size = t.storage.dtype.size();
            let range = index::element_range(t).expect("checked");
            assert!(range.end as usize * size <= bytes);
            assert!(index::numel(t).expect("checked") as usize * size <= bytes);
        }
    }
    // Any single pickle, too, in either layout's dialect.
    let _ = pickle::unpickle(data, 0, None, |_, _| Ok(()));
    for layout in [pickle::Layout::Zip, pickle::Layout::Legacy] {
        let mut storages = pickle::Storages::new(layout);
        let _ = pickle::unpickle(data, 0, Some(&mut storages), |_, _| Ok(()));
    }
});

//! Fuzzes the checkpoint reader: the restricted unpickler and the zip / legacy indexing,
//! included from the library's own sources (they need neither libtorch nor the rest of
//! the crate). Any input must give an index or an error: no panic, no hang, no huge
//! allocation, no stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/checkpoint/pickle.rs"]
mod pickle;

#[allow(dead_code)]
#[path = "../../src/checkpoint/index.rs"]
mod index;

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = index::index(data) {
        // Every tensor's view was checked against its storage's bytes.
        for (_, t) in &found.tensors {
            let range = index::element_range(t).expect("checked");
            let bytes = &found.storages[&t.storage.key];
            assert!(range.end as usize * t.storage.dtype.size() <= bytes.len());
        }
    }
    // Any single pickle, too.
    let _ = pickle::unpickle(data, 0, |_| Ok(()));
});

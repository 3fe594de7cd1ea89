//! A restricted unpickler: exactly what a PyTorch state dict needs and nothing more.
//!
//! Nothing is ever executed. `GLOBAL` names outside a short allow-list (ordered dicts,
//! torch's tensor-rebuild functions, storage types) are refused by name; `REDUCE` may
//! only call allowed names. Lengths are checked against the input before anything is
//! allocated, nesting is bounded, copies of shared values are bounded by the input's
//! length, and every malformed stream is an error, not a panic.
//!
//! - `opcodes`: the opcodes, named as in Python's `pickletools`;
//! - `reader`: bounds-checked operand reads;
//! - `value`: the values on the stack and in the memo;
//! - `globals`: the allow-list;
//! - `torch`: storages (persistent ids, legacy views) and tensor rebuilds;
//! - `machine`: the opcode loop.
//!
//! These files depend on `std` alone, so that the fuzz target can include them as they are.

pub mod globals;
pub mod machine;
pub mod opcodes;
pub mod reader;
pub mod torch;
pub mod value;

use std::fmt;

pub use globals::Dtype;
pub use torch::{Layout, Storages, TensorRef};
pub use value::{Budget, Value};

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum PickleError {
    /// A global outside the allow-list (`module.name`).
    Forbidden(String),
    /// Anything else wrong with the stream.
    Malformed(String),
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PickleError::Forbidden(name) => write!(f, "forbidden global `{name}`"),
            PickleError::Malformed(why) => f.write_str(why),
        }
    }
}

pub fn bad<T>(why: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError::Malformed(why.into()))
}

/// Unpickles one pickle starting at `data[start..]` and hands its value to `extract`
/// (with what is left of the copy budget); returns what `extract` made of it and the
/// offset just past the `STOP` opcode. Persistent ids (storages) are resolved through
/// `storages`; without it, they are refused.
///
/// Values are taken apart before returning, whatever happened, so that dropping deeply
/// nested containers never recurses.
pub fn unpickle<T>(
    data: &[u8],
    start: usize,
    storages: Option<&mut Storages>,
    extract: impl FnOnce(&Value, &mut Budget) -> Result<T, PickleError>,
) -> Result<(T, usize), PickleError> {
    let budget = Budget::for_input(data.len().saturating_sub(start));
    let mut machine = machine::Machine::new(budget, storages);
    let result = machine.run(data, start).and_then(|(value, end)| {
        let out = extract(&value, &mut machine.budget);
        machine.stack.push(value);
        Ok((out?, end))
    });
    let machine::Machine { stack, memo, .. } = machine;
    value::dismantle(stack.into_iter().chain(memo.into_values()).collect());
    result
}

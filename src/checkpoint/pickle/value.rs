//! What the machine's stack and memo hold: the few Python values a state dict is made
//! of, with their nesting depth tracked so that no container grows deeper than
//! [`MAX_DEPTH`], and a budget on the values copied out of shared ones.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use super::globals::Global;
use super::torch::{StorageRef, TensorRef};
use super::{PickleError, bad};

/// Deeper than any state dict (which nests 3 or 4 levels); bounds recursion in drop.
pub const MAX_DEPTH: usize = 64;

/// A mutable container (list or dict), shared between the stack and the memo.
#[derive(Debug)]
pub struct Shared<T> {
    depth: Cell<usize>,
    pub items: RefCell<Vec<T>>,
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, as little-endian two's complement bytes.
    BigInt(Rc<Vec<u8>>),
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<(usize, Vec<Value>)>),
    List(Rc<Shared<Value>>),
    Dict(Rc<Shared<(Value, Value)>>),
    Global(Global),
    Storage(Arc<StorageRef>),
    Tensor(Arc<TensorRef>),
}

impl Value {
    pub fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.0,
            Value::List(l) => l.depth.get(),
            Value::Dict(d) => d.depth.get(),
            _ => 0,
        }
    }

    pub fn tuple(items: Vec<Value>) -> Result<Value, PickleError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(depth)?;
        Ok(Value::Tuple(Rc::new((depth, items))))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float => "float",
            Value::Str(_) => "str",
            Value::Bytes => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// Items of a tuple or list, copied: charged to `budget`.
    pub fn as_seq(&self, budget: &mut Budget) -> Result<Option<Vec<Value>>, PickleError> {
        let items = match self {
            Value::Tuple(t) => {
                budget.charge(t.1.len())?;
                t.1.clone()
            }
            Value::List(l) => {
                let items = l.items.borrow();
                budget.charge(items.len())?;
                items.clone()
            }
            _ => return Ok(None),
        };
        Ok(Some(items))
    }
}

/// How many values (or bytes of names) may still be copied out of shared ones. A pickle
/// can name one large value many times for a few bytes each (memo, DUP); copies of it
/// are bounded by the length of the input, so memory stays proportional to the file.
#[derive(Debug)]
pub struct Budget {
    left: usize,
}

impl Budget {
    /// A budget as large as the input it is for (and a little more for tiny inputs).
    pub fn for_input(len: usize) -> Budget {
        Budget {
            left: len.saturating_add(1024),
        }
    }

    pub fn charge(&mut self, n: usize) -> Result<(), PickleError> {
        match self.left.checked_sub(n) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => bad(
                "the pickle copies more values than its length allows (the same large value \
                 used over and over)",
            ),
        }
    }
}

pub fn check_depth(depth: usize) -> Result<(), PickleError> {
    if depth > MAX_DEPTH {
        bad(format!("nesting deeper than {MAX_DEPTH}"))
    } else {
        Ok(())
    }
}

pub fn shared<T>() -> Rc<Shared<T>> {
    Rc::new(Shared {
        depth: Cell::new(1),
        items: RefCell::new(Vec::new()),
    })
}

/// Records that `container` now holds a child `child_depth` deep.
pub fn grow<T>(container: &Shared<T>, child_depth: usize) -> Result<(), PickleError> {
    let depth = container.depth.get().max(child_depth + 1);
    check_depth(depth)?;
    container.depth.set(depth);
    Ok(())
}

pub fn text(bytes: &[u8]) -> Result<Value, PickleError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Value::Str(Rc::from(s))),
        Err(_) => bad("string is not UTF-8"),
    }
}

/// A `LONG1`/`LONG4` integer: little-endian two's complement.
pub fn long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = [if negative { 0xff } else { 0 }; 8];
        buf[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(Rc::new(bytes.to_vec()))
}

/// Empties every list and dict reachable from `roots` without recursion, so that
/// dropping them afterwards is shallow (containers can be nested arbitrarily deep
/// through later mutation, and dropping them naively would recurse).
pub fn dismantle(mut work: Vec<Value>) {
    let mut seen_tuples = std::collections::HashSet::new();
    while let Some(value) = work.pop() {
        match value {
            Value::Dict(d) => {
                for (k, v) in std::mem::take(&mut *d.items.borrow_mut()) {
                    work.push(k);
                    work.push(v);
                }
            }
            Value::List(l) => work.extend(std::mem::take(&mut *l.items.borrow_mut())),
            Value::Tuple(t) if seen_tuples.insert(Rc::as_ptr(&t) as usize) => {
                work.extend(t.1.iter().cloned());
            }
            _ => {}
        }
    }
}

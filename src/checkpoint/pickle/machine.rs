//! The pickle machine: a stack, a memo and marks, driven opcode by opcode. Only the
//! opcodes a state dict uses are implemented; any other is an error naming it.

use std::collections::HashMap;

use super::globals::allowed_global;
use super::opcodes::*;
use super::reader::Reader;
use super::torch::{Storages, reduce};
use super::value::{Budget, Value, grow, long, shared, text};
use super::{PickleError, bad};

/// Everything one run of the machine works on.
pub struct Machine<'s> {
    pub stack: Vec<Value>,
    pub memo: HashMap<u32, Value>,
    marks: Vec<usize>,
    pub budget: Budget,
    storages: Option<&'s mut Storages>,
}

impl<'s> Machine<'s> {
    pub fn new(budget: Budget, storages: Option<&'s mut Storages>) -> Machine<'s> {
        Machine {
            stack: Vec::new(),
            memo: HashMap::new(),
            marks: Vec::new(),
            budget,
            storages,
        }
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack
            .pop()
            .ok_or_else(|| PickleError::Malformed("stack underflow".into()))
    }

    /// The items pushed since the last `MARK`, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| PickleError::Malformed("no MARK".into()))?;
        if mark > self.stack.len() {
            return bad("MARK above the stack");
        }
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        self.stack
            .last_mut()
            .ok_or_else(|| PickleError::Malformed("stack underflow".into()))
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let Value::Dict(dict) = self.top()? else {
            let kind = self.top()?.kind();
            return bad(format!("SETITEM(S) on a {kind}"));
        };
        if items.len() % 2 != 0 {
            return bad("SETITEMS with an odd number of items");
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            grow(dict, k.depth().max(v.depth()))?;
            dict.items.borrow_mut().push((k, v));
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        let Value::List(list) = self.top()? else {
            let kind = self.top()?.kind();
            return bad(format!("APPEND(S) on a {kind}"));
        };
        for v in items {
            grow(list, v.depth())?;
            list.items.borrow_mut().push(v);
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let value = self.top()?.clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        let value = self
            .memo
            .get(&key)
            .ok_or_else(|| PickleError::Malformed(format!("memo key {key} not set")))?
            .clone();
        self.push(value);
        Ok(())
    }

    fn tuple_of_top(&mut self, n: usize) -> Result<(), PickleError> {
        if self.stack.len() < n {
            return bad("stack underflow");
        }
        let items = self.stack.split_off(self.stack.len() - n);
        self.push(Value::tuple(items)?);
        Ok(())
    }

    /// Runs from `data[start..]` to `STOP`; returns the value left and the offset just
    /// past `STOP`.
    pub fn run(&mut self, data: &[u8], start: usize) -> Result<(Value, usize), PickleError> {
        if start > data.len() {
            return bad("pickle starts past the end of the input");
        }
        let mut r = Reader { data, pos: start };
        loop {
            let at = r.pos;
            let op = r.byte()?;
            match op {
                PROTO => {
                    let proto = r.byte()?;
                    if proto > HIGHEST_PROTOCOL {
                        return bad(format!("unknown pickle protocol {proto}"));
                    }
                }
                FRAME => {
                    r.u64()?; // a length hint only
                }
                STOP => {
                    let value = self.pop()?;
                    return Ok((value, r.pos));
                }
                MARK => self.marks.push(self.stack.len()),
                EMPTY_DICT => self.push(Value::Dict(shared())),
                EMPTY_LIST => self.push(Value::List(shared())),
                EMPTY_TUPLE => self.push(Value::tuple(Vec::new())?),
                NONE => self.push(Value::None),
                NEWTRUE => self.push(Value::Bool(true)),
                NEWFALSE => self.push(Value::Bool(false)),
                BININT => self.push(Value::Int(i64::from(r.u32()? as i32))),
                BININT1 => self.push(Value::Int(i64::from(r.byte()?))),
                BININT2 => self.push(Value::Int(i64::from(r.u16()?))),
                LONG1 => {
                    let n = usize::from(r.byte()?);
                    self.push(long(r.take(n)?));
                }
                LONG4 => {
                    let n = r.u32()? as usize;
                    self.push(long(r.take(n)?));
                }
                BINFLOAT => {
                    r.take(8)?;
                    self.push(Value::Float);
                }
                BINUNICODE => {
                    let n = r.u32()? as usize;
                    self.push(text(r.take(n)?)?);
                }
                SHORT_BINUNICODE => {
                    let n = usize::from(r.byte()?);
                    self.push(text(r.take(n)?)?);
                }
                BINUNICODE8 => {
                    let n = r.len_u64()?;
                    self.push(text(r.take(n)?)?);
                }
                // Python 2 byte strings: text when they decode, bytes otherwise.
                SHORT_BINSTRING | BINSTRING => {
                    let n = if op == SHORT_BINSTRING {
                        usize::from(r.byte()?)
                    } else {
                        r.u32()? as usize
                    };
                    let raw = r.take(n)?;
                    self.push(text(raw).unwrap_or(Value::Bytes));
                }
                SHORT_BINBYTES => {
                    let n = usize::from(r.byte()?);
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                BINBYTES => {
                    let n = r.u32()? as usize;
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                BINBYTES8 => {
                    let n = r.len_u64()?;
                    r.take(n)?;
                    self.push(Value::Bytes);
                }
                TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Value::tuple(items)?);
                }
                TUPLE1 => self.tuple_of_top(1)?,
                TUPLE2 => self.tuple_of_top(2)?,
                TUPLE3 => self.tuple_of_top(3)?,
                GLOBAL => {
                    let module = r.line()?;
                    let name = r.line()?;
                    self.push(Value::Global(allowed_global(module, name)?));
                }
                STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => self.push(Value::Global(allowed_global(m, n)?)),
                        _ => return bad("STACK_GLOBAL without two strings"),
                    }
                }
                BINPERSID => {
                    let pid = self.pop()?;
                    let storage = match self.storages.as_deref_mut() {
                        Some(storages) => storages.persistent_load(&pid)?,
                        None => return bad("a persistent id outside the object pickle"),
                    };
                    self.push(storage);
                }
                REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = reduce(&callable, &args, &mut self.budget)?;
                    self.push(value);
                }
                BUILD => {
                    // BUILD sets attributes: state dicts carry `_metadata` on their
                    // OrderedDict, which the weights do not need.
                    let _state = self.pop()?;
                    let target = self.top()?;
                    if !matches!(target, Value::Dict(_)) {
                        return bad(format!("BUILD on a {}", target.kind()));
                    }
                }
                BINPUT => {
                    let key = u32::from(r.byte()?);
                    self.memo_put(key)?;
                }
                LONG_BINPUT => {
                    let key = r.u32()?;
                    self.memo_put(key)?;
                }
                MEMOIZE => {
                    let key = self.memo.len() as u32;
                    self.memo_put(key)?;
                }
                BINGET => {
                    let key = u32::from(r.byte()?);
                    self.memo_get(key)?;
                }
                LONG_BINGET => {
                    let key = r.u32()?;
                    self.memo_get(key)?;
                }
                SETITEM => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                SETITEMS => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                APPEND => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                APPENDS => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                POP => {
                    self.pop()?;
                }
                POP_MARK => {
                    self.pop_mark()?;
                }
                DUP => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                _ => {
                    let name = name(op).unwrap_or("unknown");
                    return bad(format!(
                        "unsupported pickle opcode {name} (0x{op:02x}) at offset {at} (not used by state dicts)"
                    ));
                }
            }
        }
    }
}

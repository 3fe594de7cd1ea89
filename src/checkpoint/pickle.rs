//! A restricted unpickler: exactly what a PyTorch state dict needs and nothing more.
//!
//! Nothing is ever executed. `GLOBAL` names outside a short allow-list (ordered dicts,
//! torch's tensor-rebuild functions, storage types) are refused by name; `REDUCE` may
//! only call allowed names. Lengths are checked against the input before anything is
//! allocated, nesting is bounded, and every malformed stream is an error, not a panic.
//!
//! This file depends on `std` alone, so that the fuzz target can include it as is.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Deeper than any state dict (which nests 3 or 4 levels); bounds recursion in drop.
const MAX_DEPTH: usize = 64;

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

fn bad<T>(why: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError::Malformed(why.into()))
}

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

/// The callables a state dict may name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    Storage(Dtype),
}

fn allowed_global(module: &str, name: &str) -> Result<Global, PickleError> {
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor") => Ok(Global::RebuildTensor),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", storage) => Dtype::from_storage_name(storage)
            .map(Global::Storage)
            .ok_or_else(|| PickleError::Forbidden(format!("{module}.{name}"))),
        _ => Err(PickleError::Forbidden(format!("{module}.{name}"))),
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, numel, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: Dtype,
    pub numel: u64,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

/// A mutable container (list or dict), shared between the stack and the memo.
#[derive(Debug)]
pub struct Shared<T> {
    depth: std::cell::Cell<usize>,
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
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(t) => t.0,
            Value::List(l) => l.depth.get(),
            Value::Dict(d) => d.depth.get(),
            _ => 0,
        }
    }

    fn tuple(items: Vec<Value>) -> Result<Value, PickleError> {
        let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(depth)?;
        Ok(Value::Tuple(Rc::new((depth, items))))
    }

    fn kind(&self) -> &'static str {
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

    /// Items of a tuple or list.
    pub fn as_seq(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.1.clone()),
            Value::List(l) => Some(l.items.borrow().clone()),
            _ => None,
        }
    }
}

fn check_depth(depth: usize) -> Result<(), PickleError> {
    if depth > MAX_DEPTH {
        bad(format!("nesting deeper than {MAX_DEPTH}"))
    } else {
        Ok(())
    }
}

fn shared<T>() -> Rc<Shared<T>> {
    Rc::new(Shared {
        depth: std::cell::Cell::new(1),
        items: RefCell::new(Vec::new()),
    })
}

fn grow<T>(container: &Shared<T>, child_depth: usize) -> Result<(), PickleError> {
    let depth = container.depth.get().max(child_depth + 1);
    check_depth(depth)?;
    container.depth.set(depth);
    Ok(())
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if n > self.data.len() - self.pos {
            return bad(format!(
                "truncated: {n} bytes wanted at offset {}, {} left",
                self.pos,
                self.data.len() - self.pos
            ));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(self.u64()?).or_else(|_| bad("length does not fit in memory"))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PickleError::Malformed("unterminated GLOBAL name".into()))?;
        let line =
            std::str::from_utf8(&rest[..end]).or_else(|_| bad("GLOBAL name is not UTF-8"))?;
        self.pos += end + 1;
        Ok(line)
    }
}

fn text(bytes: &[u8]) -> Result<Value, PickleError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Value::Str(Rc::from(s))),
        Err(_) => bad("string is not UTF-8"),
    }
}

fn long(bytes: &[u8]) -> Value {
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

/// Unpickles one pickle starting at `data[start..]` and hands its value to `extract`;
/// returns what `extract` made of it and the offset just past the STOP opcode.
///
/// Values are taken apart before returning, whatever happened: containers can be nested
/// arbitrarily deep through later mutation, and dropping them naively would recurse.
pub fn unpickle<T>(
    data: &[u8],
    start: usize,
    extract: impl FnOnce(&Value) -> Result<T, PickleError>,
) -> Result<(T, usize), PickleError> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    let result = run(data, start, &mut stack, &mut memo).and_then(|(value, end)| {
        let out = extract(&value);
        stack.push(value);
        Ok((out?, end))
    });
    dismantle(stack.into_iter().chain(memo.into_values()).collect());
    result
}

/// Empties every list and dict reachable from `roots` without recursion, so that
/// dropping them afterwards is shallow.
fn dismantle(mut work: Vec<Value>) {
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

fn run(
    data: &[u8],
    start: usize,
    stack: &mut Vec<Value>,
    memo: &mut HashMap<u32, Value>,
) -> Result<(Value, usize), PickleError> {
    if start > data.len() {
        return bad("pickle starts past the end of the input");
    }
    let mut r = Reader { data, pos: start };
    let mut marks: Vec<usize> = Vec::new();

    fn pop(stack: &mut Vec<Value>) -> Result<Value, PickleError> {
        stack
            .pop()
            .ok_or_else(|| PickleError::Malformed("stack underflow".into()))
    }
    fn pop_mark(stack: &mut Vec<Value>, marks: &mut Vec<usize>) -> Result<Vec<Value>, PickleError> {
        let mark = marks
            .pop()
            .ok_or_else(|| PickleError::Malformed("no MARK".into()))?;
        if mark > stack.len() {
            return bad("MARK above the stack");
        }
        Ok(stack.split_off(mark))
    }
    fn top(stack: &mut [Value]) -> Result<&mut Value, PickleError> {
        stack
            .last_mut()
            .ok_or_else(|| PickleError::Malformed("stack underflow".into()))
    }
    fn set_items(target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        let Value::Dict(dict) = target else {
            return bad(format!("SETITEM(S) on a {}", target.kind()));
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
    fn append(target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        let Value::List(list) = target else {
            return bad(format!("APPEND(S) on a {}", target.kind()));
        };
        for v in items {
            grow(list, v.depth())?;
            list.items.borrow_mut().push(v);
        }
        Ok(())
    }

    loop {
        let at = r.pos;
        let op = r.byte()?;
        match op {
            0x80 => {
                let proto = r.byte()?;
                if proto > 5 {
                    return bad(format!("unknown pickle protocol {proto}"));
                }
            }
            0x95 => {
                r.u64()?; // FRAME: a length hint only
            }
            b'.' => {
                let value = pop(stack)?;
                return Ok((value, r.pos));
            }
            b'(' => marks.push(stack.len()),
            b'}' => stack.push(Value::Dict(shared())),
            b']' => stack.push(Value::List(shared())),
            b')' => stack.push(Value::tuple(Vec::new())?),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(i64::from(r.u32()? as i32))),
            b'K' => stack.push(Value::Int(i64::from(r.byte()?))),
            b'M' => stack.push(Value::Int(i64::from(r.u16()?))),
            0x8a => {
                let n = usize::from(r.byte()?);
                stack.push(long(r.take(n)?));
            }
            0x8b => {
                let n = r.u32()? as usize;
                stack.push(long(r.take(n)?));
            }
            b'G' => {
                r.take(8)?;
                stack.push(Value::Float);
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(text(r.take(n)?)?);
            }
            0x8c => {
                let n = usize::from(r.byte()?);
                stack.push(text(r.take(n)?)?);
            }
            0x8d => {
                let n = r.len_u64()?;
                stack.push(text(r.take(n)?)?);
            }
            // Python 2 byte strings: text when they decode, bytes otherwise.
            b'U' | b'T' => {
                let n = if op == b'U' {
                    usize::from(r.byte()?)
                } else {
                    r.u32()? as usize
                };
                let raw = r.take(n)?;
                stack.push(text(raw).unwrap_or(Value::Bytes));
            }
            b'C' => {
                let n = usize::from(r.byte()?);
                r.take(n)?;
                stack.push(Value::Bytes);
            }
            b'B' => {
                let n = r.u32()? as usize;
                r.take(n)?;
                stack.push(Value::Bytes);
            }
            0x8e => {
                let n = r.len_u64()?;
                r.take(n)?;
                stack.push(Value::Bytes);
            }
            b't' => {
                let items = pop_mark(stack, &mut marks)?;
                stack.push(Value::tuple(items)?);
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                if stack.len() < n {
                    return bad("stack underflow");
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::tuple(items)?);
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(allowed_global(module, name)?));
            }
            0x93 => {
                let name = pop(stack)?;
                let module = pop(stack)?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => stack.push(Value::Global(allowed_global(m, n)?)),
                    _ => return bad("STACK_GLOBAL without two strings"),
                }
            }
            b'Q' => {
                let pid = pop(stack)?;
                stack.push(persistent_load(&pid)?);
            }
            b'R' => {
                let args = pop(stack)?;
                let callable = pop(stack)?;
                stack.push(reduce(&callable, &args)?);
            }
            b'b' => {
                // BUILD sets attributes: state dicts carry `_metadata` on their
                // OrderedDict, which the weights do not need.
                let _state = pop(stack)?;
                let target = top(stack)?;
                if !matches!(target, Value::Dict(_)) {
                    return bad(format!("BUILD on a {}", target.kind()));
                }
            }
            b'q' => {
                let key = u32::from(r.byte()?);
                memo.insert(key, top(stack)?.clone());
            }
            b'r' => {
                let key = r.u32()?;
                memo.insert(key, top(stack)?.clone());
            }
            0x94 => {
                let key = memo.len() as u32;
                memo.insert(key, top(stack)?.clone());
            }
            b'h' | b'j' => {
                let key = if op == b'h' {
                    u32::from(r.byte()?)
                } else {
                    r.u32()?
                };
                let value = memo
                    .get(&key)
                    .ok_or_else(|| PickleError::Malformed(format!("memo key {key} not set")))?;
                stack.push(value.clone());
            }
            b's' => {
                let v = pop(stack)?;
                let k = pop(stack)?;
                set_items(top(stack)?, vec![k, v])?;
            }
            b'u' => {
                let items = pop_mark(stack, &mut marks)?;
                set_items(top(stack)?, items)?;
            }
            b'a' => {
                let v = pop(stack)?;
                append(top(stack)?, vec![v])?;
            }
            b'e' => {
                let items = pop_mark(stack, &mut marks)?;
                append(top(stack)?, items)?;
            }
            b'0' => {
                pop(stack)?;
            }
            b'1' => {
                pop_mark(stack, &mut marks)?;
            }
            b'2' => {
                let v = top(stack)?.clone();
                stack.push(v);
            }
            _ => {
                return bad(format!(
                    "unsupported pickle opcode 0x{op:02x} at offset {at} (not used by state dicts)"
                ));
            }
        }
    }
}

fn persistent_load(pid: &Value) -> Result<Value, PickleError> {
    let items = match pid {
        Value::Tuple(t) => &t.1,
        other => return bad(format!("persistent id is a {}, not a tuple", other.kind())),
    };
    match items.as_slice() {
        [
            tag,
            Value::Global(Global::Storage(dtype)),
            key,
            _location,
            numel,
            ..,
        ] if tag.as_str() == Some("storage") => {
            let key = key
                .as_str()
                .ok_or_else(|| PickleError::Malformed("storage key is not a string".into()))?;
            let numel = numel
                .as_int()
                .filter(|&n| n >= 0)
                .ok_or_else(|| PickleError::Malformed("storage size is not a count".into()))?;
            Ok(Value::Storage(Rc::new(StorageRef {
                key: key.to_string(),
                dtype: *dtype,
                numel: numel as u64,
            })))
        }
        _ => bad("persistent id is not ('storage', <storage type>, key, location, size)"),
    }
}

fn int_tuple(v: &Value, what: &str) -> Result<Vec<i64>, PickleError> {
    let items = v.as_seq().ok_or_else(|| {
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

fn reduce(callable: &Value, args: &Value) -> Result<Value, PickleError> {
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
                .as_seq()
                .ok_or_else(|| PickleError::Malformed("OrderedDict from a non-sequence".into()))?;
            let dict = shared();
            for pair in pairs {
                match pair.as_seq().as_deref() {
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
            let size = int_tuple(&args[2], "size")?;
            let stride = int_tuple(&args[3], "stride")?;
            if size.len() != stride.len() {
                return bad(format!(
                    "tensor size {size:?} and stride {stride:?} differ in rank"
                ));
            }
            Ok(Value::Tensor(Rc::new(TensorRef {
                storage: (**storage).clone(),
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

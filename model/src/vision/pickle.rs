//! A Python pickle reader that builds data and never runs code.
//!
//! PyTorch checkpoints are pickles: `GLOBAL` names a class or function and
//! `REDUCE`/`NEWOBJ`/`BUILD` ask Python to call it. Here those opcodes only
//! record the call, so a checkpoint (or a hostile file) is read as a tree
//! that the caller inspects. Containers live in an arena and the stack holds
//! indices, so an object mutated after it was memoised (a dict filled by
//! `SETITEMS`, a module given its state by `BUILD`) is the same object
//! wherever the pickle refers to it, and strings and bytes are shared, not
//! copied, when `DUP` or a memo get repeats them: a hostile file of a few
//! kilobytes can't make the reader allocate more than the file holds.

use std::collections::HashMap;
use std::sync::Arc;

/// A pickle that is not one: what went wrong and where.
#[derive(Debug, thiserror::Error)]
#[error("not a readable pickle (byte {offset}): {reason}")]
pub struct PickleError {
    pub offset: usize,
    pub reason: String,
}

/// Limits that keep a hostile file from exhausting memory: far above what
/// a checkpoint uses (a ResNet-50 state_dict holds a few thousand objects,
/// and pickle batches its lists and dicts a thousand items at a time).
const MAX_STACK: usize = 1 << 20;
const MAX_MARKS: usize = 1 << 16;
const MAX_OBJECTS: usize = 1 << 20;

/// A value on the pickle stack. Containers and calls are `Object`s in the
/// arena, referred to by index.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    Object(usize),
}

/// What an arena slot holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `module.name` as written by `GLOBAL`.
    Global {
        module: String,
        name: String,
    },
    /// `callee(*args)` as `REDUCE` or `NEWOBJ` asked for it, plus the
    /// state `BUILD` gave it, if any.
    Call {
        callee: Value,
        args: Value,
        state: Option<Value>,
    },
    /// A reference to data stored outside the pickle (tensor storages).
    Persistent(Value),
}

/// A read pickle: the top value plus the arena it points into.
#[derive(Debug)]
pub struct Pickle {
    pub root: Value,
    objects: Vec<Object>,
}

impl Pickle {
    /// The object a value refers to, if it is one.
    pub fn object(&self, value: &Value) -> Option<&Object> {
        match value {
            Value::Object(i) => self.objects.get(*i),
            _ => None,
        }
    }

    /// The entries of a dict (or of an `OrderedDict(...)` call filled by
    /// `SETITEMS`, which this reader turns into a dict).
    pub fn dict(&self, value: &Value) -> Option<&[(Value, Value)]> {
        match self.object(value)? {
            Object::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items(&self, value: &Value) -> Option<&[Value]> {
        match self.object(value)? {
            Object::Tuple(items) | Object::List(items) => Some(items),
            _ => None,
        }
    }

    /// `module.name` of a global.
    pub fn global(&self, value: &Value) -> Option<(&str, &str)> {
        match self.object(value)? {
            Object::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// Every object in the arena, for callers that look for one kind.
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// The value of a string key in a dict.
    pub fn get<'a>(&'a self, dict: &Value, key: &str) -> Option<&'a Value> {
        self.dict(dict)?
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if &**s == key))
            .map(|(_, v)| v)
    }
}

/// Reads one pickle from the start of `bytes`; returns it and how many
/// bytes it took (legacy PyTorch files hold several pickles back to back).
pub fn read(bytes: &[u8]) -> Result<(Pickle, usize), PickleError> {
    let mut machine = Machine {
        input: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
    };
    let root = machine.run()?;
    Ok((
        Pickle {
            root,
            objects: machine.objects,
        },
        machine.pos,
    ))
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
}

impl Machine<'_> {
    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        match end {
            Some(end) => {
                let slice = &self.input[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => self.fail(format!("the file ends inside a {n}-byte field")),
        }
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.input[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                let text = String::from_utf8_lossy(&rest[..n]).into_owned();
                self.pos += n + 1;
                Ok(text)
            }
            None => self.fail("a text field has no end of line"),
        }
    }

    fn text(&mut self, n: usize) -> Result<String, PickleError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.fail("a string is not UTF-8"),
        }
    }

    fn push(&mut self, value: Value) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.fail("the stack grows past any real checkpoint");
        }
        self.stack.push(value);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.fail("an opcode needs a value but the stack is empty"),
        }
    }

    fn top(&mut self) -> Result<&Value, PickleError> {
        match self.stack.last() {
            Some(v) => Ok(v),
            None => self.fail("an opcode needs a value but the stack is empty"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        match self.marks.pop() {
            Some(mark) if mark <= self.stack.len() => Ok(self.stack.split_off(mark)),
            _ => self.fail("a mark is missing"),
        }
    }

    fn alloc(&mut self, object: Object) -> Result<Value, PickleError> {
        if self.objects.len() >= MAX_OBJECTS {
            return self.fail("more objects than any real checkpoint holds");
        }
        self.objects.push(object);
        Ok(Value::Object(self.objects.len() - 1))
    }

    fn object_mut(&mut self, value: &Value) -> Option<&mut Object> {
        match value {
            Value::Object(i) => self.objects.get_mut(*i),
            _ => None,
        }
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v)
            }
            None => self.fail(format!("memo entry {key} was never stored")),
        }
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    /// `GLOBAL`/`REDUCE`: a call to a known dict type becomes a dict, so
    /// `SETITEMS` can fill it; anything else is recorded as a call.
    fn call(&mut self, callee: Value, args: Value) -> Result<Value, PickleError> {
        let is_dict = matches!(
            self.object_mut(&callee),
            Some(Object::Global { module, name })
                if module == "collections" && (name == "OrderedDict" || name == "defaultdict")
        );
        if is_dict {
            return self.alloc(Object::Dict(Vec::new()));
        }
        self.alloc(Object::Call {
            callee,
            args,
            state: None,
        })
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.fail("a dict gets a key without a value");
        }
        let mut pairs = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        match self.object_mut(target) {
            Some(Object::Dict(entries)) => {
                entries.extend(pairs);
                Ok(())
            }
            // Items set on another object (a dict subclass) are kept as its state.
            Some(Object::Call { state, .. }) if state.is_none() => {
                let dict = self.alloc(Object::Dict(pairs))?;
                if let Some(Object::Call { state, .. }) = self.object_mut(target) {
                    *state = Some(dict);
                }
                Ok(())
            }
            _ => self.fail("SETITEM on something that is not a dict"),
        }
    }

    fn append(&mut self, target: &Value, items: Vec<Value>) -> Result<(), PickleError> {
        match self.object_mut(target) {
            Some(Object::List(list)) => {
                list.extend(items);
                Ok(())
            }
            // Appending to a list subclass or a set: keep the items as state.
            Some(Object::Call { state, .. }) if state.is_none() => {
                let list = self.alloc(Object::List(items))?;
                if let Some(Object::Call { state, .. }) = self.object_mut(target) {
                    *state = Some(list);
                }
                Ok(())
            }
            _ => self.fail("APPEND on something that is not a list"),
        }
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    self.byte()?; // PROTO: the version changes nothing here.
                }
                0x95 => {
                    self.u64()?; // FRAME: a length hint.
                }
                b'.' => return self.pop(),
                b'(' => {
                    if self.marks.len() >= MAX_MARKS {
                        return self.fail("marks nest deeper than any real checkpoint");
                    }
                    self.marks.push(self.stack.len());
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v)?;
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'K' => {
                    let v = self.byte()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Value::Int(i64::from(v)))?;
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.byte()?)
                    } else {
                        self.u32()? as usize
                    };
                    let bytes = self.take(n)?.to_vec();
                    self.push(long(&bytes))?;
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let digits = line.trim_end_matches('L');
                    let v = match digits {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => match digits.parse::<i64>() {
                            Ok(v) => Value::Int(v),
                            Err(_) => Value::Float(digits.parse().unwrap_or(f64::NAN)),
                        },
                    };
                    self.push(v)?;
                }
                b'G' => {
                    let v = f64::from_bits(self.u64()?.swap_bytes());
                    self.push(Value::Float(v))?;
                }
                b'F' => {
                    let line = self.line()?;
                    self.push(Value::Float(line.trim().parse().unwrap_or(f64::NAN)))?;
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.text(n)?;
                    self.push(Value::Str(s.into()))?;
                }
                0x8c => {
                    let n = usize::from(self.byte()?);
                    let s = self.text(n)?;
                    self.push(Value::Str(s.into()))?;
                }
                0x8d => {
                    let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
                    let s = self.text(n)?;
                    self.push(Value::Str(s.into()))?;
                }
                b'V' => {
                    let s = self.line()?;
                    self.push(Value::Str(s.into()))?;
                }
                b'S' => {
                    let s = self.line()?;
                    let s = s.trim_matches(|c| c == '\'' || c == '"');
                    self.push(Value::Str(s.into()))?;
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    self.push(bytes_or_str(op, bytes))?;
                }
                b'U' | b'C' => {
                    let n = usize::from(self.byte()?);
                    let bytes = self.take(n)?.to_vec();
                    self.push(bytes_or_str(op, bytes))?;
                }
                0x8e | 0x96 => {
                    let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
                    let bytes: Arc<[u8]> = self.take(n)?.into();
                    self.push(Value::Bytes(bytes))?;
                }
                b'}' => {
                    let v = self.alloc(Object::Dict(Vec::new()))?;
                    self.push(v)?;
                }
                b']' | 0x8f => {
                    let v = self.alloc(Object::List(Vec::new()))?;
                    self.push(v)?;
                }
                b')' => {
                    let v = self.alloc(Object::Tuple(Vec::new()))?;
                    self.push(v)?;
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Dict(Vec::new()))?;
                    self.set_items(&v, items)?;
                    self.push(v)?;
                }
                b'l' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::List(items))?;
                    self.push(v)?;
                }
                b't' => {
                    let items = self.pop_mark()?;
                    let v = self.alloc(Object::Tuple(items))?;
                    self.push(v)?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return self.fail("a tuple needs more values than the stack has");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    let v = self.alloc(Object::Tuple(items))?;
                    self.push(v)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let target = self.top()?.clone();
                    self.append(&target, vec![item])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.append(&target, items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let v = self.alloc(Object::Global { module, name })?;
                    self.push(v)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.fail("STACK_GLOBAL needs two strings");
                    };
                    let v = self.alloc(Object::Global {
                        module: module.to_string(),
                        name: name.to_string(),
                    })?;
                    self.push(v)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callee = self.pop()?;
                    let v = self.call(callee, args)?;
                    self.push(v)?;
                }
                0x92 => {
                    self.pop()?; // NEWOBJ_EX keyword arguments
                    let args = self.pop()?;
                    let callee = self.pop()?;
                    let v = self.call(callee, args)?;
                    self.push(v)?;
                }
                b'b' => {
                    let new_state = self.pop()?;
                    let target = self.top()?.clone();
                    match self.object_mut(&target) {
                        Some(Object::Call { state, .. }) => *state = Some(new_state),
                        // An OrderedDict's BUILD carries attributes such as
                        // `_metadata`; the entries are what matter.
                        Some(Object::Dict(_)) => {}
                        _ => return self.fail("BUILD on something that is not an object"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.alloc(Object::Persistent(pid))?;
                    self.push(v)?;
                }
                b'P' => {
                    let pid = self.line()?;
                    let v = self.alloc(Object::Persistent(Value::Str(pid.into())))?;
                    self.push(v)?;
                }
                b'q' => {
                    let key = u32::from(self.byte()?);
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.u32()?;
                    self.memo_put(key)?;
                }
                b'p' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(key) => self.memo_put(key)?,
                        Err(_) => return self.fail("PUT needs a number"),
                    }
                }
                0x94 => {
                    let key = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(key)?;
                }
                b'h' => {
                    let key = u32::from(self.byte()?);
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.u32()?;
                    self.memo_get(key)?;
                }
                b'g' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(key) => self.memo_get(key)?,
                        Err(_) => return self.fail("GET needs a number"),
                    }
                }
                other => {
                    self.pos -= 1;
                    return self.fail(format!("unknown opcode 0x{other:02x}"));
                }
            }
        }
    }
}

/// `LONG1`/`LONG4`: little-endian two's complement of any length.
fn long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() > 8 {
        // Only the legacy magic number is this long; its value is compared
        // as bytes by the caller.
        return Value::Bytes(bytes.into());
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut full = if negative { [0xff; 8] } else { [0; 8] };
    full[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(full))
}

fn bytes_or_str(op: u8, bytes: Vec<u8>) -> Value {
    // Python 2's str (`T`, `U`) is text in the checkpoints that use it.
    match op {
        b'T' | b'U' => match String::from_utf8(bytes) {
            Ok(s) => Value::Str(s.into()),
            Err(e) => Value::Bytes(e.into_bytes().into()),
        },
        _ => Value::Bytes(bytes.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(collections.OrderedDict([("a", 1), ("b", [2.5, None])]), protocol=2)`
    const ORDERED_DICT: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02K\x01X\x01\x00\x00\x00bq\x03]q\x04(G@\x04\x00\x00\x00\x00\x00\x00Neu.";

    #[test]
    fn reads_an_ordered_dict_as_data() {
        let (pickle, used) = read(ORDERED_DICT).unwrap();
        assert_eq!(used, ORDERED_DICT.len());
        assert_eq!(pickle.get(&pickle.root, "a"), Some(&Value::Int(1)));
        let b = pickle.get(&pickle.root, "b").unwrap();
        assert_eq!(
            pickle.items(b).unwrap(),
            &[Value::Float(2.5), Value::None][..]
        );
    }

    #[test]
    fn a_call_is_recorded_not_run() {
        // `os.system("echo hi")` as a pickle: `cos\nsystem\n(X...tR.`
        let evil = b"cos\nsystem\n(X\x07\x00\x00\x00echo hitR.";
        let (pickle, _) = read(evil).unwrap();
        let Some(Object::Call { callee, args, .. }) = pickle.object(&pickle.root) else {
            panic!("expected a recorded call");
        };
        assert_eq!(pickle.global(callee), Some(("os", "system")));
        assert_eq!(
            pickle.items(args).unwrap(),
            &[Value::Str("echo hi".into())][..]
        );
    }

    #[test]
    fn broken_input_is_an_error_not_a_panic() {
        for cut in 0..ORDERED_DICT.len() - 1 {
            assert!(read(&ORDERED_DICT[..cut]).is_err(), "cut at {cut}");
        }
        for bad in [&b"\x80\x02h\x05."[..], b"s.", b"\xff", b"0", b"u."] {
            assert!(read(bad).is_err());
        }
    }

    #[test]
    fn memoised_objects_see_later_changes() {
        // d = {}; pickle.dumps([d, d]) after d gets an item via SETITEM
        // written by hand: EMPTY_LIST, MARK, EMPTY_DICT, BINPUT 1, BINGET 1, APPENDS,
        // then BINGET 1, 'k', 7, SETITEM on the memoised dict.
        let bytes = b"\x80\x02](}q\x01h\x01eh\x01X\x01\x00\x00\x00kK\x07s0.";
        let (pickle, _) = read(bytes).unwrap();
        let items = pickle.items(&pickle.root).unwrap();
        assert_eq!(items.len(), 2);
        for item in items {
            assert_eq!(pickle.get(item, "k"), Some(&Value::Int(7)));
        }
    }
}

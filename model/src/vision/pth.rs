//! PyTorch `.pth` files in every form students save: the zip format
//! (torch >= 1.6) and the legacy format before it; a state_dict, a
//! checkpoint dict holding one, a DataParallel state_dict (`module.`), or a
//! whole pickled module. The pickles are read as data, never run, and on a
//! budget: each container is walked once (a cycle or a shared sub-tree
//! can't make the walk loop or blow up), zip entries may not inflate past
//! what the file could hold, and a tensor's shape and strides are checked
//! against its storage before anything is allocated for it.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Cursor, Read};

use candle_core::{DType, Device, Tensor};

use super::pickle::{self, Object, Pickle, Value};

/// Why a `.pth` file gave no tensors.
#[derive(Debug, thiserror::Error)]
pub enum PthError {
    #[error(transparent)]
    Pickle(#[from] pickle::PickleError),
    #[error("the zip archive is damaged: {0}")]
    Zip(String),
    #[error("{0}")]
    Format(String),
}

fn format_error<T>(reason: impl Into<String>) -> Result<T, PthError> {
    Err(PthError::Format(reason.into()))
}

/// The first bytes of a legacy file: `pickle.dumps(0x1950a86a20f9469cfc6c)`.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Modules whose functions a weights file has no reason to name: a pickle
/// that does is an attack (or not a model), so it is refused outright.
const CODE_MODULES: [&str; 14] = [
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "pty",
    "ctypes",
    "webbrowser",
    "code",
    "marshal",
];
/// Builtins that run or reach code; `set`, `slice` and the like are data.
const CODE_BUILTINS: [&str; 12] = [
    "eval",
    "exec",
    "compile",
    "open",
    "__import__",
    "getattr",
    "setattr",
    "delattr",
    "globals",
    "locals",
    "vars",
    "breakpoint",
];

/// Where a checkpoint dict keeps the model's state_dict.
const CHECKPOINT_KEYS: [&str; 5] = ["state_dict", "model_state_dict", "model", "net", "module"];
/// How many checkpoint dicts may wrap the state_dict.
const MAX_CHECKPOINT_NESTING: usize = 4;
/// How deep modules may nest (torchvision's deepest is under 10).
const MAX_MODULE_NESTING: usize = 64;
/// What a zip's entries may inflate to beyond the archive's own size:
/// PyTorch stores them uncompressed, so more is a zip bomb.
const MAX_INFLATION: u64 = 1 << 20;

/// Reads the named float tensors of a `.pth` file, as f32 on the CPU.
/// Integer buffers (BatchNorm's `num_batches_tracked`) are left out.
pub fn read_pth(bytes: &[u8]) -> Result<HashMap<String, Tensor>, PthError> {
    let (pickle, storages) = if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes)?
    } else {
        read_legacy(bytes)?
    };
    refuse_code(&pickle)?;
    let mut found = BTreeMap::new();
    let root = state_dict_root(&pickle, &pickle.root);
    collect(
        &pickle,
        root,
        String::new(),
        &mut found,
        &mut HashSet::new(),
        0,
    )?;
    if found.is_empty() {
        return format_error(
            "it holds no tensors: save the model with torch.save(model.state_dict(), \"model.pth\")",
        );
    }
    let mut tensors = HashMap::with_capacity(found.len());
    let mut elements = HashMap::new();
    for (name, value) in found {
        if let Some(tensor) = rebuild(&pickle, value, &storages, &mut elements, &name)? {
            tensors.insert(name, tensor);
        }
    }
    Ok(strip_data_parallel(tensors))
}

/// The storages of a file by key: borrowed from the file's bytes where
/// they lie there as they are (PyTorch stores zip entries uncompressed), so
/// a model is not held twice while it loads.
type Storages<'a> = HashMap<String, Cow<'a, [u8]>>;

fn read_zip(bytes: &[u8]) -> Result<(Pickle, Storages<'_>), PthError> {
    let zip_error = |e: zip::result::ZipError| PthError::Zip(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_error)?;
    let Some(data_pkl) = names.iter().find(|n| n.ends_with("data.pkl")) else {
        return format_error("the zip archive has no data.pkl: it is not a PyTorch file");
    };
    let prefix = data_pkl.trim_end_matches("data.pkl").to_string();
    let mut budget = bytes.len() as u64 + MAX_INFLATION;
    let pickle_bytes = read_entry(&mut archive, bytes, data_pkl, &mut budget)?;
    let (pickle, _) = pickle::read(&pickle_bytes)?;
    let mut storages = HashMap::new();
    for key in storage_keys(&pickle) {
        let entry = format!("{prefix}data/{key}");
        if !names.contains(&entry) {
            return format_error(format!("the archive lacks the storage {entry}"));
        }
        storages.insert(key, read_entry(&mut archive, bytes, &entry, &mut budget)?);
    }
    Ok((pickle, storages))
}

/// One entry's bytes, of the archive's `bytes`, taken from what `budget`
/// of inflated bytes is left.
fn read_entry<'a>(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    bytes: &'a [u8],
    name: &str,
    budget: &mut u64,
) -> Result<Cow<'a, [u8]>, PthError> {
    let file = archive
        .by_name(name)
        .map_err(|e| PthError::Zip(e.to_string()))?;
    if file.size() > *budget {
        return Err(PthError::Zip(format!(
            "{name} inflates to {} bytes, more than the file could hold",
            file.size()
        )));
    }
    let stored = file
        .data_start()
        .and_then(|start| usize::try_from(start).ok())
        .zip(usize::try_from(file.size()).ok())
        .filter(|_| file.compression() == zip::CompressionMethod::Stored)
        .filter(|_| file.size() == file.compressed_size())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?));
    if let Some(stored) = stored {
        *budget -= stored.len() as u64;
        return Ok(Cow::Borrowed(stored));
    }
    let mut out = Vec::new();
    // The declared size may lie: never read past the budget either way.
    file.take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| PthError::Zip(format!("{name}: {e}")))?;
    if out.len() as u64 > *budget {
        return Err(PthError::Zip(format!(
            "{name} inflates to more than the file could hold"
        )));
    }
    *budget -= out.len() as u64;
    Ok(Cow::Owned(out))
}

fn refuse_code(pickle: &Pickle) -> Result<(), PthError> {
    for object in pickle.objects() {
        if let Object::Global { module, name } = object {
            let root = module.split('.').next().unwrap_or_default();
            let builtin = matches!(root, "builtins" | "__builtin__");
            if CODE_MODULES.contains(&root)
                || (builtin && CODE_BUILTINS.contains(&name.as_str()))
                || (module == "torch" && name == "load")
            {
                return format_error(format!(
                    "it asks Python to run {module}.{name} when loaded; this is not a model file, and nothing in it was run"
                ));
            }
        }
    }
    Ok(())
}

/// Legacy layout: magic, protocol version, system info, the object, the
/// list of storage keys, then each storage as an 8-byte element count and
/// its raw bytes.
fn read_legacy(bytes: &[u8]) -> Result<(Pickle, Storages<'_>), PthError> {
    let not_pytorch =
        || PthError::Format("it is neither a zip nor a legacy PyTorch file".to_string());
    let (magic, mut pos) = pickle::read(bytes).map_err(|_| not_pytorch())?;
    if magic.root != Value::Bytes(LEGACY_MAGIC.into()) {
        refuse_code(&magic)?;
        return Err(not_pytorch());
    }
    for _ in 0..2 {
        let (_, used) = pickle::read(&bytes[pos..])?;
        pos += used;
    }
    let (pickle, used) = pickle::read(&bytes[pos..])?;
    pos += used;
    let (keys, used) = pickle::read(&bytes[pos..])?;
    pos += used;
    let element_sizes: HashMap<String, usize> = storage_descriptors(&pickle)
        .into_iter()
        .map(|(key, dtype)| (key, dtype.size_in_bytes()))
        .collect();
    let mut storages = HashMap::new();
    for key in keys.items(&keys.root).unwrap_or_default() {
        let Value::Str(key) = key else {
            return format_error("a storage key is not a string");
        };
        let Some(count) = bytes.get(pos..pos + 8) else {
            return format_error(format!("the file ends before storage {key}"));
        };
        let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
        let size = element_sizes.get(&**key).copied().unwrap_or(4);
        let span = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .and_then(|len| Some((pos + 8, (pos + 8).checked_add(len)?)))
            .filter(|&(_, end)| end <= bytes.len());
        let Some((start, end)) = span else {
            return format_error(format!("the file ends inside storage {key}"));
        };
        storages.insert(key.to_string(), Cow::Borrowed(&bytes[start..end]));
        pos = end;
    }
    Ok((pickle, storages))
}

fn storage_keys(pickle: &Pickle) -> Vec<String> {
    storage_descriptors(pickle)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Every persistent storage reference: `('storage', torch.FloatStorage, key, location, numel[, view])`.
fn storage_descriptors(pickle: &Pickle) -> Vec<(String, DType)> {
    let mut out: Vec<(String, DType)> = pickle
        .objects()
        .iter()
        .filter_map(|o| match o {
            Object::Persistent(pid) => storage_of(pickle, pid),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

fn storage_of(pickle: &Pickle, pid: &Value) -> Option<(String, DType)> {
    let items = pickle.items(pid)?;
    let (Value::Str(kind), Some(class), Some(Value::Str(key))) =
        (items.first()?, items.get(1), items.get(2))
    else {
        return None;
    };
    if &**kind != "storage" {
        return None;
    }
    let (_, class) = pickle.global(class)?;
    Some((key.to_string(), storage_dtype(class)?))
}

fn storage_dtype(class: &str) -> Option<DType> {
    Some(match class {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "ByteStorage" | "BoolStorage" | "UntypedStorage" => DType::U8,
        _ => return None,
    })
}

/// Follows a checkpoint dict to the state_dict inside it (a few levels at
/// most: a dict that holds itself under `model` ends the search).
fn state_dict_root<'a>(pickle: &'a Pickle, mut value: &'a Value) -> &'a Value {
    for _ in 0..MAX_CHECKPOINT_NESTING {
        let inner = CHECKPOINT_KEYS.iter().find_map(|key| {
            pickle.get(value, key).filter(|inner| {
                pickle.dict(inner).is_some() || module_state(pickle, inner).is_some()
            })
        });
        match inner {
            Some(inner) => value = inner,
            None => break,
        }
    }
    value
}

/// The `__dict__` of a pickled `nn.Module`: a dict with `_parameters`.
fn module_state<'a>(pickle: &'a Pickle, value: &'a Value) -> Option<&'a Value> {
    match pickle.object(value)? {
        Object::Call {
            state: Some(state), ..
        } if pickle.get(state, "_parameters").is_some() => Some(state),
        _ => None,
    }
}

/// Names every tensor under `value`: dict entries, and a module's
/// parameters, buffers and submodules, joined with dots. Each container is
/// walked once (`walked`): a tensor may have two names (tied weights), a
/// dict or module only the first path that reached it.
fn collect<'a>(
    pickle: &'a Pickle,
    value: &'a Value,
    prefix: String,
    found: &mut BTreeMap<String, &'a Value>,
    walked: &mut HashSet<usize>,
    depth: usize,
) -> Result<(), PthError> {
    if depth > MAX_MODULE_NESTING {
        return format_error("modules nest deeper than any real network");
    }
    let container = module_state(pickle, value).is_some() || pickle.dict(value).is_some();
    if let (true, Value::Object(index)) = (container, value)
        && !walked.insert(*index)
    {
        return Ok(());
    }
    if let Some(state) = module_state(pickle, value) {
        for part in ["_parameters", "_buffers", "_modules"] {
            if let Some(inner) = pickle.get(state, part) {
                collect(pickle, inner, prefix.clone(), found, walked, depth + 1)?;
            }
        }
        return Ok(());
    }
    if let Some(entries) = pickle.dict(value) {
        for (key, inner) in entries {
            let key = match key {
                Value::Str(s) => s.to_string(),
                Value::Int(i) => i.to_string(),
                _ => continue,
            };
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            collect(pickle, inner, name, found, walked, depth + 1)?;
        }
        return Ok(());
    }
    if tensor_call(pickle, value).is_some() {
        found.insert(prefix, value);
    }
    Ok(())
}

/// The arguments of a tensor-building call, unwrapping `Parameter`s (a
/// parameter of a parameter at most: a call that wraps itself is no tensor).
fn tensor_call<'a>(pickle: &'a Pickle, mut value: &'a Value) -> Option<&'a [Value]> {
    for _ in 0..3 {
        let Object::Call { callee, args, .. } = pickle.object(value)? else {
            return None;
        };
        let (module, name) = pickle.global(callee)?;
        let args = pickle.items(args)?;
        match (module, name) {
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2") => return Some(args),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state")
            | ("torch.nn.parameter", "Parameter") => value = args.first()?,
            _ => return None,
        }
    }
    None
}

/// Builds one tensor from `(storage, offset, size, stride, ...)`; `None` for
/// integer buffers, which no model here reads.
fn rebuild(
    pickle: &Pickle,
    value: &Value,
    storages: &Storages,
    elements: &mut HashMap<String, Vec<f32>>,
    name: &str,
) -> Result<Option<Tensor>, PthError> {
    let bad = |reason: &str| PthError::Format(format!("tensor {name}: {reason}"));
    let args = tensor_call(pickle, value).ok_or_else(|| bad("not a tensor"))?;
    let storage = match args.first().and_then(|v| pickle.object(v)) {
        Some(Object::Persistent(pid)) => pid,
        _ => return Err(bad("its data is not a stored tensor")),
    };
    let (key, dtype) = storage_of(pickle, storage).ok_or_else(|| bad("unknown storage type"))?;
    if !matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Ok(None);
    }
    let bytes = storages
        .get(&key)
        .ok_or_else(|| bad("its storage is missing"))?;
    let offset = match args.get(1) {
        Some(Value::Int(o)) => usize::try_from(*o).map_err(|_| bad("negative offset"))?,
        _ => return Err(bad("no storage offset")),
    };
    let ints = |v: Option<&Value>| -> Option<Vec<usize>> {
        pickle
            .items(v?)?
            .iter()
            .map(|x| match x {
                Value::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect()
    };
    let shape = ints(args.get(2)).ok_or_else(|| bad("no shape"))?;
    let stride = ints(args.get(3)).ok_or_else(|| bad("no strides"))?;
    if shape.len() != stride.len() {
        return Err(bad("shape and strides differ in length"));
    }
    // Converted once per storage: many tensors may view one.
    let elements = elements
        .entry(key)
        .or_insert_with(|| elements_as_f32(bytes, dtype));
    let values = gather(elements, offset, &shape, &stride)
        .ok_or_else(|| bad("its shape reaches past its storage"))?;
    Tensor::from_vec(values, shape, &Device::Cpu)
        .map(Some)
        .map_err(|e| bad(&e.to_string()))
}

fn elements_as_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    match dtype {
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()) as f32)
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

/// The elements of a strided view, in row-major order; `None` when the
/// view reaches outside the storage or has more elements than it (strides
/// of 0 repeating one value a billion times).
fn gather(storage: &[f32], offset: usize, shape: &[usize], stride: &[usize]) -> Option<Vec<f32>> {
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    if count == 0 {
        return Some(Vec::new());
    }
    if count > storage.len() {
        return None;
    }
    let last = shape
        .iter()
        .zip(stride)
        .try_fold(offset, |a, (&d, &s)| a.checked_add((d - 1).checked_mul(s)?))?;
    if last >= storage.len() {
        return None;
    }
    let contiguous = shape
        .iter()
        .zip(stride)
        .rev()
        .try_fold(1usize, |expected, (&d, &s)| {
            (d == 1 || s == expected).then_some(expected * d)
        })
        .is_some();
    if contiguous {
        return Some(storage[offset..offset + count].to_vec());
    }
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let at = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(storage[at]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Some(out)
}

/// `nn.DataParallel` saves every name under `module.`.
fn strip_data_parallel(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    if !tensors.keys().all(|k| k.starts_with("module.")) {
        return tensors;
    }
    tensors
        .into_iter()
        .map(|(k, v)| (k["module.".len()..].to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_strided_views() {
        let storage: Vec<f32> = (0..6).map(|x| x as f32).collect();
        // a 2x3 matrix and its transpose
        assert_eq!(
            gather(&storage, 0, &[2, 3], &[3, 1]).unwrap(),
            vec![0., 1., 2., 3., 4., 5.]
        );
        assert_eq!(
            gather(&storage, 0, &[3, 2], &[1, 3]).unwrap(),
            vec![0., 3., 1., 4., 2., 5.]
        );
        assert_eq!(gather(&storage, 4, &[2], &[1]).unwrap(), vec![4., 5.]);
        assert!(gather(&storage, 5, &[2], &[1]).is_none());
        assert!(gather(&storage, 0, &[usize::MAX, 2], &[1, 1]).is_none());
        assert!(
            gather(&storage, 0, &[1_000_000_000], &[0]).is_none(),
            "a stride-0 view would allocate 4 GB from 24 bytes"
        );
    }

    /// A `.pth` in the zip format around `pickle` as its data.pkl.
    fn zipped(pickle: &[u8], method: zip::CompressionMethod) -> Vec<u8> {
        use std::io::Write;
        let mut archive = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        archive.start_file("archive/data.pkl", options).unwrap();
        archive.write_all(pickle).unwrap();
        archive.finish().unwrap().into_inner()
    }

    /// A `.pth` whose pickle ends with the dict it built, after `ops`:
    /// protocol 2, EMPTY_DICT, BINPUT 0, then `ops`, then STOP.
    fn dict_pickle(ops: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x80\x02}q\x00".to_vec();
        bytes.extend_from_slice(ops);
        bytes.push(b'.');
        zipped(&bytes, zip::CompressionMethod::Stored)
    }

    /// `SHORT_BINUNICODE key` then BINGET 0: the dict as a value under `key`.
    fn self_under(key: &str) -> Vec<u8> {
        let mut ops = vec![0x8c, key.len() as u8];
        ops.extend_from_slice(key.as_bytes());
        ops.extend_from_slice(b"h\x00");
        ops
    }

    #[test]
    fn a_checkpoint_that_holds_itself_ends_the_search() {
        // d["model"] = d: following checkpoint keys used to recurse forever.
        let mut ops = self_under("model");
        ops.push(b's');
        let err = read_pth(&dict_pickle(&ops)).unwrap_err().to_string();
        assert!(err.contains("holds no tensors"), "{err}");
    }

    #[test]
    fn a_dict_that_holds_itself_twice_is_walked_once() {
        // d["a"] = d; d["b"] = d: walking both keys 64 deep is 2^64 visits.
        let mut ops = b"(".to_vec();
        ops.extend(self_under("a"));
        ops.extend(self_under("b"));
        ops.push(b'u');
        let started = std::time::Instant::now();
        let err = read_pth(&dict_pickle(&ops)).unwrap_err().to_string();
        assert!(err.contains("holds no tensors"), "{err}");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    }

    #[test]
    fn repeated_strings_are_shared_not_copied() {
        // A 1 MB string and 200,000 DUPs: 200 GB if each DUP copied it.
        let text = "x".repeat(1 << 20);
        let mut bytes = b"\x80\x02X".to_vec();
        bytes.extend_from_slice(&(text.len() as u32).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend(std::iter::repeat_n(b'2', 200_000));
        bytes.push(b'.');
        let (pickle, _) = pickle::read(&bytes).unwrap();
        assert!(matches!(pickle.root, Value::Str(ref s) if s.len() == text.len()));
        let err = read_pth(&zipped(&bytes, zip::CompressionMethod::Stored))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no tensors"), "{err}");
    }

    #[test]
    fn a_zip_bomb_is_refused_before_it_inflates() {
        let bytes = zipped(&vec![0u8; 64 << 20], zip::CompressionMethod::Deflated);
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        let err = read_pth(&bytes).unwrap_err().to_string();
        assert!(err.contains("inflates to"), "{err}");
    }

    #[test]
    fn a_pickle_that_runs_a_command_is_refused() {
        // `torch.save` of an object whose __reduce__ returns (os.system, ("echo pwned",))
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = read_pth(evil).unwrap_err().to_string();
        assert!(err.contains("posix.system"), "{err}");
        assert!(err.contains("nothing in it was run"), "{err}");
    }

    #[test]
    fn builtins_that_run_code_are_refused() {
        // `builtins.eval("1+1")`
        let evil = b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.";
        let err = read_pth(evil).unwrap_err().to_string();
        assert!(err.contains("builtins.eval"), "{err}");
    }

    #[test]
    fn garbage_is_named_not_a_panic() {
        for bytes in [&b""[..], b"hello", b"PK\x03\x04broken", b"\x80\x02K\x01."] {
            let err = read_pth(bytes).unwrap_err();
            assert!(!err.to_string().is_empty());
        }
    }
}

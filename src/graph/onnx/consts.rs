//! Constants known at load time: decoding `TensorProto`s and the few index operations
//! that fold shape arithmetic (`Shape → Gather → Concat → Reshape`) without running the
//! model. Values are kept as `f64`, exact for every integer a shape can hold.

use super::R;
use onnx_protobuf::TensorProto;

/// Constants with more elements than this keep only their shape: they are weights, and
/// no shape computation reads that many values.
pub const FOLD_LIMIT: u64 = 1 << 16;

#[derive(Debug, Clone)]
pub struct Const {
    pub name: String,
    pub shape: Vec<u64>,
    /// Integer or boolean element type (index tensors, shapes, masks).
    pub int: bool,
    /// The elements in row-major order, when small enough to fold and stored in the file.
    pub data: Option<Vec<f64>>,
    /// The constant this one is a reshaped/transposed view of (itself for an original), so
    /// that two views of one initializer are one set of parameters.
    pub root: usize,
}

impl Const {
    /// A constant computed by folding (a new root; the importer sets `root`).
    pub fn new(name: &str, shape: Vec<u64>, int: bool, data: Option<Vec<f64>>) -> Const {
        Const { name: name.to_string(), shape, int, data, root: usize::MAX }
    }

    pub fn from_tensor(t: &TensorProto) -> R<Const> {
        let shape = t.dims.iter().map(|&d| u64::try_from(d).map_err(|_| format!("negative dimension {d}"))).collect::<R<Vec<u64>>>()?;
        let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or("too many elements")?;
        let data = if numel <= FOLD_LIMIT { decode(t, numel as usize)? } else { None };
        Ok(Const::new(&t.name, shape, is_int_or_bool(t.data_type), data))
    }

    pub fn numel(&self) -> u64 {
        super::shape::numel(&self.shape)
    }

    /// The elements as integers (shape arithmetic).
    pub fn ints(&self) -> Option<Vec<i64>> {
        self.data.as_ref().map(|d| d.iter().map(|&x| x as i64).collect())
    }
}

const FLOAT: i32 = 1;
const UINT8: i32 = 2;
const INT8: i32 = 3;
const UINT16: i32 = 4;
const INT16: i32 = 5;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const FLOAT16: i32 = 10;
const DOUBLE: i32 = 11;
const UINT32: i32 = 12;
const UINT64: i32 = 13;
const BFLOAT16: i32 = 16;

/// Integer element types: inputs of these types are index tensors (token ids).
pub fn is_int_type(t: i32) -> bool {
    matches!(t, UINT8 | INT8 | UINT16 | INT16 | INT32 | INT64 | UINT32 | UINT64)
}

pub fn is_int_or_bool(t: i32) -> bool {
    is_int_type(t) || t == BOOL
}

/// The elements of a tensor, or `None` when the file does not store them (external data,
/// strings, an element type we never need to fold). Wrong lengths are errors.
fn decode(t: &TensorProto, numel: usize) -> R<Option<Vec<f64>>> {
    if t.data_location.value() == 1 {
        return Ok(None); // EXTERNAL: the weights live in another file
    }
    if !t.raw_data.is_empty() {
        return decode_raw(t.data_type, &t.raw_data, numel);
    }
    let v: Vec<f64> = match t.data_type {
        FLOAT => t.float_data.iter().map(|&x| x as f64).collect(),
        INT32 | INT16 | INT8 | UINT16 | UINT8 | BOOL => t.int32_data.iter().map(|&x| x as f64).collect(),
        FLOAT16 => t.int32_data.iter().map(|&x| half(x as u16)).collect(),
        BFLOAT16 => t.int32_data.iter().map(|&x| f32::from_bits((x as u32) << 16) as f64).collect(),
        INT64 => t.int64_data.iter().map(|&x| x as f64).collect(),
        DOUBLE => t.double_data.clone(),
        UINT32 | UINT64 => t.uint64_data.iter().map(|&x| x as f64).collect(),
        _ => return Ok(None),
    };
    if v.is_empty() && numel > 0 {
        return Ok(None); // weight-stripped: shape only
    }
    if v.len() != numel {
        return Err(format!("has {} values for {numel} elements", v.len()));
    }
    Ok(Some(v))
}

fn decode_raw(dtype: i32, raw: &[u8], numel: usize) -> R<Option<Vec<f64>>> {
    let size = match dtype {
        UINT8 | INT8 | BOOL => 1,
        UINT16 | INT16 | FLOAT16 | BFLOAT16 => 2,
        FLOAT | INT32 | UINT32 => 4,
        INT64 | DOUBLE | UINT64 => 8,
        _ => return Ok(None),
    };
    if raw.len() != numel * size {
        return Err(format!("has {} bytes of raw data for {numel} elements of {size} bytes", raw.len()));
    }
    let v = raw
        .chunks_exact(size)
        .map(|b| match dtype {
            UINT8 | BOOL => b[0] as f64,
            INT8 => b[0] as i8 as f64,
            UINT16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            INT16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            FLOAT16 => half(u16::from_le_bytes([b[0], b[1]])),
            BFLOAT16 => f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16) as f64,
            FLOAT => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            INT32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            UINT32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            INT64 => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64,
            UINT64 => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64,
            _ => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
        })
        .collect();
    Ok(Some(v))
}

/// IEEE half precision bits → value.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 => {
            if frac == 0.0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        }
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Row-major flat offset of a multi-index.
pub fn flat(shape: &[u64], idx: &[u64]) -> usize {
    shape.iter().zip(idx).fold(0u64, |a, (&d, &i)| a * d + i) as usize
}

/// Builds the elements of `shape` by calling `f` with each multi-index in row-major order.
pub fn build(shape: &[u64], mut f: impl FnMut(&[u64]) -> f64) -> Vec<f64> {
    let n: u64 = shape.iter().product();
    let mut idx = vec![0u64; shape.len()];
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        out.push(f(&idx));
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The element of `data` (of `shape`) that broadcasts to output index `out_idx`.
pub fn broadcast_at(data: &[f64], shape: &[u64], out_idx: &[u64]) -> f64 {
    let off = out_idx.len() - shape.len();
    let idx: Vec<u64> = shape.iter().enumerate().map(|(i, &d)| if d == 1 { 0 } else { out_idx[off + i] }).collect();
    data[flat(shape, &idx)]
}

/// `data` (of `shape`) at a multi-index.
pub fn at(data: &[f64], shape: &[u64], idx: &[u64]) -> f64 {
    data[flat(shape, idx)]
}

//! The op table: which function imports each ONNX op (`compute`, `movement`, and the
//! constant ops here), computing its output shapes (our own inference) and its `GraphOp`.
//!
//! Mapping conventions, chosen so that the lowering sees what a framework would launch:
//! - `Conv` → `Conv2d` (1-D as a 1×L image); `Gemm` and `MatMul` → `MatMul` (a `MatMul`
//!   of two activations, as in attention scores, is a batched matmul).
//! - pointwise ops → `Elementwise` with the `ELEMENTWISE_FNS` entry of the same arithmetic
//!   class (`Erf` costs like `tanh`, `Log` like `exp`, comparisons like `sub`); a scalar
//!   constant operand is passed as a literal (`mul_scalar`), as PyTorch does.
//! - windowed ops (pools, `LRN`) → `Pool`; axis reductions → `Reduce`.
//! - ops that move data into a new tensor (`Transpose`, `Concat`, `Slice`, `Gather`,
//!   `Split`, `Pad`, `Resize`, `Expand`, `Tile`) → `Copy`, except that a `Gather` from a
//!   weight along axis 0 is an `Embedding`; reshapes → `View`.
//! - ops on constants whose result a shape depends on are folded at load time.

use super::consts::{Const, FOLD_LIMIT};
use super::{attr, compute, movement, shape, Importer, Value, R};
use onnx_protobuf::NodeProto;

pub fn import(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    match n.op_type.as_str() {
        "Conv" => compute::conv(imp, n),
        "Gemm" => compute::gemm(imp, n),
        "MatMul" => compute::matmul(imp, n),
        "BatchNormalization" => compute::batch_norm(imp, n),
        "InstanceNormalization" | "GroupNormalization" => compute::group_norm(imp, n),
        "LayerNormalization" => compute::layer_norm(imp, n),
        "MaxPool" | "AveragePool" | "LpPool" => compute::pool(imp, n),
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => compute::global_pool(imp, n),
        "LRN" => compute::lrn(imp, n),
        "Softmax" | "LogSoftmax" | "Hardmax" => compute::softmax(imp, n),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2" | "ReduceLogSum"
        | "ReduceLogSumExp" | "ReduceSumSquare" => compute::reduce(imp, n),
        "ArgMax" | "ArgMin" => compute::arg_reduce(imp, n),
        "Identity" => Ok(vec![imp.input(n, 0)?]),
        "Reshape" => movement::reshape(imp, n),
        "Flatten" => movement::flatten(imp, n),
        "Squeeze" => movement::squeeze(imp, n),
        "Unsqueeze" => movement::unsqueeze(imp, n),
        "Transpose" => movement::transpose(imp, n),
        "Concat" => movement::concat(imp, n),
        "Split" => movement::split(imp, n),
        "Slice" => movement::slice(imp, n),
        "Gather" => movement::gather(imp, n),
        "Pad" => movement::pad(imp, n),
        "Resize" | "Upsample" => movement::resize(imp, n),
        "Expand" => movement::expand(imp, n),
        "Tile" => movement::tile(imp, n),
        "Constant" => constant(imp, n),
        "ConstantOfShape" => constant_of_shape(imp, n),
        "Shape" => shape_of(imp, n),
        "Size" => size(imp, n),
        "Range" => range(imp, n),
        "Cast" => compute::cast(imp, n),
        "Dropout" => compute::dropout(imp, n),
        op => match compute::elementwise_fn(op) {
            Some(func) => compute::elementwise(imp, n, func),
            None => Err(format!("unsupported ONNX op '{op}'")),
        },
    }
}

// ---- helpers on the importer that only ops use ----

impl Importer {
    pub(super) fn in_shape(&self, n: &NodeProto, i: usize) -> R<(Value, Vec<u64>)> {
        let v = self.input(n, i)?;
        Ok((v, self.shape(v).to_vec()))
    }

    /// An optional constant input holding integers (axes, steps, sizes).
    pub(super) fn opt_const_ints(&self, n: &NodeProto, i: usize) -> R<Option<Vec<i64>>> {
        match self.opt_input(n, i)? {
            Some(_) => self.const_data(n, i).map(Some),
            None => Ok(None),
        }
    }

    /// An optional constant input holding floats (resize scales); empty counts as absent.
    pub(super) fn opt_const_floats(&self, n: &NodeProto, i: usize) -> R<Option<Vec<f64>>> {
        let Some(v) = self.opt_input(n, i)? else { return Ok(None) };
        let c = self.konst(v).ok_or_else(|| format!("input '{}' must be a constant known at load time", n.input[i]))?;
        let d = c.data.clone().ok_or_else(|| format!("the value of constant '{}' is not stored in the file", n.input[i]))?;
        Ok(if d.is_empty() { None } else { Some(d) })
    }

    /// A constant computed from constant `src` by a reshape or transpose: same elements,
    /// so the same parameters.
    pub(super) fn alias(&mut self, src: usize, n: &NodeProto, shape: Vec<u64>, data: Option<Vec<f64>>, int: bool) -> Value {
        let root = self.consts[src].root;
        let mut c = Const::new(out_name(n), shape, int, data);
        c.root = root;
        self.new_const(c)
    }

    /// A new constant folded from constant inputs.
    pub(super) fn folded(&mut self, n: &NodeProto, shape: Vec<u64>, int: bool, data: Option<Vec<f64>>) -> Value {
        self.new_const(Const::new(out_name(n), shape, int, data))
    }

    /// Every value as (elements, shape, integer) when all are constants with stored data
    /// (the folding case).
    pub(super) fn all_data(&self, vals: &[Value]) -> Option<Vec<Known>> {
        vals.iter()
            .map(|&v| self.konst(v).and_then(|c| c.data.clone().map(|d| (d, c.shape.clone(), c.int))))
            .collect()
    }

    pub(super) fn warn(&mut self, n: &NodeProto, msg: String) {
        self.g.warnings.push(format!("{} ({}): {msg}", super::node_label(n), n.op_type));
    }
}

type Known = (Vec<f64>, Vec<u64>, bool);

fn out_name(n: &NodeProto) -> &str {
    n.output.first().map(String::as_str).unwrap_or("")
}

fn constant(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let c = if let Some(t) = attr::tensor(n, "value")? {
        Const::from_tensor(t)?
    } else if attr::has(n, "value_float") {
        Const::new("", vec![], false, Some(vec![attr::float(n, "value_float", 0.0)? as f64]))
    } else if let Some(v) = attr::floats(n, "value_floats")? {
        Const::new("", vec![v.len() as u64], false, Some(v.iter().map(|&x| x as f64).collect()))
    } else if attr::has(n, "value_int") {
        Const::new("", vec![], true, Some(vec![attr::int(n, "value_int", 0)? as f64]))
    } else if let Some(v) = attr::ints(n, "value_ints")? {
        Const::new("", vec![v.len() as u64], true, Some(v.iter().map(|&x| x as f64).collect()))
    } else {
        return Err("no supported value attribute (value, value_float(s), value_int(s))".into());
    };
    Ok(vec![imp.folded(n, c.shape, c.int, c.data)])
}

/// Weight-stripped models build their weights with `ConstantOfShape`: a constant of the
/// given shape, a parameter once a compute op reads it.
fn constant_of_shape(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let spec = imp.const_data(n, 0)?;
    let shape: Vec<u64> = spec.iter().map(|&d| u64::try_from(d).map_err(|_| format!("negative dimension in {spec:?}"))).collect::<R<_>>()?;
    let (value, int) = match attr::tensor(n, "value")? {
        Some(t) => {
            let c = Const::from_tensor(t)?;
            (c.data.and_then(|d| d.first().copied()).unwrap_or(0.0), c.int)
        }
        None => (0.0, false),
    };
    let numel = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or("too many elements")?;
    let data = (numel <= FOLD_LIMIT).then(|| vec![value; numel as usize]);
    Ok(vec![imp.folded(n, shape, int, data)])
}

/// Every shape is known at load time, so `Shape` is a constant (`start`/`end` from 15).
fn shape_of(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (_, xs) = imp.in_shape(n, 0)?;
    let (s, len) = shape::slice_axis(xs.len() as u64, attr::int(n, "start", 0)?, attr::int(n, "end", i64::MAX)?, 1)?;
    let dims: Vec<f64> = xs.iter().skip(s as usize).take(len as usize).map(|&d| d as f64).collect();
    Ok(vec![imp.folded(n, vec![dims.len() as u64], true, Some(dims))])
}

fn size(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (_, xs) = imp.in_shape(n, 0)?;
    Ok(vec![imp.folded(n, vec![], true, Some(vec![shape::numel(&xs) as f64]))])
}

fn range(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let scalar = |i: usize| -> R<(f64, bool)> {
        let v = imp.input(n, i)?;
        let c = imp.konst(v).ok_or_else(|| format!("input '{}' must be a constant known at load time", n.input[i]))?;
        let d = c.data.as_ref().and_then(|d| d.first().copied()).ok_or_else(|| format!("constant '{}' has no value", n.input[i]))?;
        Ok((d, c.int))
    };
    let ((start, int), (limit, _), (delta, _)) = (scalar(0)?, scalar(1)?, scalar(2)?);
    let count = ((limit - start) / delta).ceil();
    if !(count.is_finite()) || count > FOLD_LIMIT as f64 {
        return Err(format!("range({start}, {limit}, {delta}) is not a small finite sequence"));
    }
    let count = count.max(0.0) as u64;
    let data = (0..count).map(|i| start + i as f64 * delta).collect();
    Ok(vec![imp.folded(n, vec![count], int, Some(data))])
}

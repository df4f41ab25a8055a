//! One function per op family: the output shapes (our own inference) and the `GraphOp`.
//!
//! Mapping conventions, chosen so that the lowering sees what a framework would launch:
//! - `Conv` → `Conv2d` (1-D as a 1×L image); `Gemm` and `MatMul` → `MatMul` (a `MatMul`
//!   of two activations, as in attention scores, is a batched matmul).
//! - pointwise ops → `Elementwise` with the `ELEMENTWISE_FNS` entry of the same arithmetic
//!   class (`Erf` costs like `tanh`, `Log` like `exp`, comparisons like `sub`); a scalar
//!   constant operand is passed as a literal (`mul_scalar`), as PyTorch does.
//! - windowed ops (pools, `LRN`) → `Pool`; axis reductions → `Reduce`.
//! - ops that move data into a new tensor (`Transpose`, `Concat`, `Slice`, `Gather`,
//!   `Split`, `Pad`, `Resize`, `Expand`, `Tile`) → `Copy`; reshapes → `View`.
//! - ops on constants whose result a shape depends on are folded at load time.

use super::consts::{self, Const, FOLD_LIMIT};
use super::{attr, shape, Importer, Value, R};
use crate::graph::GraphOp;
use onnx_protobuf::NodeProto;

pub fn import(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    match n.op_type.as_str() {
        "Conv" => conv(imp, n),
        "Gemm" => gemm(imp, n),
        "MatMul" => matmul(imp, n),
        "BatchNormalization" => batch_norm(imp, n),
        "InstanceNormalization" | "GroupNormalization" => group_norm(imp, n),
        "LayerNormalization" => layer_norm(imp, n),
        "MaxPool" | "AveragePool" | "LpPool" => pool(imp, n),
        "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" => global_pool(imp, n),
        "LRN" => lrn(imp, n),
        "Softmax" | "LogSoftmax" | "Hardmax" => softmax(imp, n),
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2" | "ReduceLogSum"
        | "ReduceLogSumExp" | "ReduceSumSquare" => reduce(imp, n),
        "ArgMax" | "ArgMin" => arg_reduce(imp, n),
        "Identity" => Ok(vec![imp.input(n, 0)?]),
        "Reshape" => reshape(imp, n),
        "Flatten" => flatten(imp, n),
        "Squeeze" => squeeze(imp, n),
        "Unsqueeze" => unsqueeze(imp, n),
        "Transpose" => transpose(imp, n),
        "Concat" => concat(imp, n),
        "Split" => split(imp, n),
        "Slice" => slice(imp, n),
        "Gather" => gather(imp, n),
        "Pad" => pad(imp, n),
        "Resize" | "Upsample" => resize(imp, n),
        "Expand" => expand(imp, n),
        "Tile" => tile(imp, n),
        "Constant" => constant(imp, n),
        "ConstantOfShape" => constant_of_shape(imp, n),
        "Shape" => shape_of(imp, n),
        "Size" => size(imp, n),
        "Range" => range(imp, n),
        "Cast" => cast(imp, n),
        "Dropout" => dropout(imp, n),
        op => match elementwise_fn(op) {
            Some(func) => elementwise(imp, n, func),
            None => Err(format!("unsupported ONNX op '{op}'")),
        },
    }
}

// ---- helpers on the importer that only ops use ----

impl Importer {
    fn in_shape(&self, n: &NodeProto, i: usize) -> R<(Value, Vec<u64>)> {
        let v = self.input(n, i)?;
        Ok((v, self.shape(v).to_vec()))
    }

    /// An optional constant input holding integers (axes, steps, sizes).
    fn opt_const_ints(&self, n: &NodeProto, i: usize) -> R<Option<Vec<i64>>> {
        match self.opt_input(n, i)? {
            Some(_) => self.const_data(n, i).map(Some),
            None => Ok(None),
        }
    }

    /// An optional constant input holding floats (resize scales); empty counts as absent.
    fn opt_const_floats(&self, n: &NodeProto, i: usize) -> R<Option<Vec<f64>>> {
        let Some(v) = self.opt_input(n, i)? else { return Ok(None) };
        let c = self.konst(v).ok_or_else(|| format!("input '{}' must be a constant known at load time", n.input[i]))?;
        let d = c.data.clone().ok_or_else(|| format!("the value of constant '{}' is not stored in the file", n.input[i]))?;
        Ok(if d.is_empty() { None } else { Some(d) })
    }

    /// A constant computed from constant `src` by a reshape or transpose: same elements,
    /// so the same parameters.
    fn alias(&mut self, src: usize, n: &NodeProto, shape: Vec<u64>, data: Option<Vec<f64>>, int: bool) -> Value {
        let root = self.consts[src].root;
        let mut c = Const::new(out_name(n), shape, int, data);
        c.root = root;
        self.new_const(c)
    }

    /// A new constant folded from constant inputs.
    fn folded(&mut self, n: &NodeProto, shape: Vec<u64>, int: bool, data: Option<Vec<f64>>) -> Value {
        self.new_const(Const::new(out_name(n), shape, int, data))
    }

    /// Data of every value when all are constants with stored data (the folding case).
    fn all_data(&self, vals: &[Value]) -> Option<Vec<(Vec<f64>, Vec<u64>, bool)>> {
        vals.iter()
            .map(|&v| self.konst(v).and_then(|c| c.data.clone().map(|d| (d, c.shape.clone(), c.int))))
            .collect()
    }

    fn warn(&mut self, n: &NodeProto, msg: String) {
        self.g.warnings.push(format!("{} ({}): {msg}", super::node_label(n), n.op_type));
    }
}

fn out_name(n: &NodeProto) -> &str {
    n.output.first().map(String::as_str).unwrap_or("")
}

// ---- compute ops ----

/// The resolved sliding window of a Conv or pooling node.
struct Window {
    strides: Vec<u64>,
    dilations: Vec<u64>,
    pads: Vec<(u64, u64)>,
    out: Vec<u64>,
}

fn window(n: &NodeProto, input: &[u64], kernel: &[u64], ceil: bool) -> R<Window> {
    let r = input.len();
    let strides = attr::per_axis(n, "strides", r, 1)?;
    let dilations = attr::per_axis(n, "dilations", r, 1)?;
    let auto_pad = attr::string(n, "auto_pad")?.unwrap_or_default();
    let pads: Vec<(u64, u64)> = match auto_pad.as_str() {
        "" | "NOTSET" => {
            let p = attr::per_axis(n, "pads", 2 * r, 0)?;
            (0..r).map(|i| (p[i], p[i + r])).collect()
        }
        "VALID" => vec![(0, 0); r],
        "SAME_UPPER" | "SAME_LOWER" => (0..r)
            .map(|i| shape::same_pads(input[i], kernel[i], strides[i], dilations[i], auto_pad == "SAME_UPPER"))
            .collect::<R<_>>()?,
        other => return Err(format!("unknown auto_pad '{other}'")),
    };
    let out = (0..r).map(|i| shape::window_out(input[i], kernel[i], strides[i], dilations[i], pads[i], ceil)).collect::<R<_>>()?;
    Ok(Window { strides, dilations, pads, out })
}

fn conv(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let (w, ws) = imp.in_shape(n, 1)?;
    let bias = imp.opt_input(n, 2)?;
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(format!("input {xs:?} and weight {ws:?} are not feature maps and a filter bank of the same rank"));
    }
    let sp = xs.len() - 2;
    if sp > 2 {
        return Err(format!("{sp}-D convolution is not supported (the cost model has 1-D and 2-D convolutions)"));
    }
    let groups = u64::try_from(attr::int(n, "group", 1)?).ok().filter(|&g| g > 0).ok_or("group must be positive")?;
    let (batch, c, k) = (xs[0], xs[1], ws[0]);
    if ws[1].checked_mul(groups) != Some(c) || k % groups != 0 {
        return Err(format!("weight {ws:?} with {groups} group(s) does not fit input {xs:?}"));
    }
    if let Some(ks) = attr::ints(n, "kernel_shape")? {
        if ks.iter().map(|&d| d as u64).ne(ws[2..].iter().copied()) {
            return Err(format!("kernel_shape {ks:?} differs from the weight {ws:?}"));
        }
    }
    let win = window(n, &xs[2..], &ws[2..], false)?;
    let mut out = vec![batch, k];
    out.extend(&win.out);
    // In 2-D terms; a 1-D convolution is a 1×L image.
    let (h, wd, r, s, oh, ow) = if sp == 2 { (xs[2], xs[3], ws[2], ws[3], win.out[0], win.out[1]) } else { (1, xs[2], 1, ws[2], 1, win.out[0]) };
    let p = win.pads[0].0;
    let uniform = sp == 2 && win.strides[0] == win.strides[1] && win.dilations.iter().all(|&d| d == 1) && win.pads.iter().all(|&q| q == (p, p));
    let op = if uniform {
        GraphOp::Conv2d { n: batch, c, h, w: wd, k, r, s, stride: win.strides[0], pad: p, groups, bias: bias.is_some() }
    } else {
        // One stride and one symmetric pad cannot say this window, so the op reads the
        // padded input an explicitly padded convolution would: the output and the MACs
        // stay exact.
        if win.dilations.iter().any(|&d| d > 1) {
            imp.warn(n, format!("dilation {:?} is modelled as a dense {r}x{s} convolution with the same output and MACs", win.dilations));
        }
        if sp == 2 && win.strides[0] != win.strides[1] {
            imp.warn(n, format!("strides {:?} are modelled with one stride {} over an input sized to give the same output", win.strides, win.strides[0]));
        }
        let st = win.strides[0];
        GraphOp::Conv2d { n: batch, c, h: (oh - 1) * st + r, w: (ow - 1) * st + s, k, r, s, stride: st, pad: 0, groups, bias: bias.is_some() }
    };
    let mut ins = vec![x, w];
    ins.extend(bias);
    imp.emit(n, op, &ins, vec![out])
}

fn gemm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (a, sa) = imp.in_shape(n, 0)?;
    let (b, sb) = imp.in_shape(n, 1)?;
    let c = imp.opt_input(n, 2)?;
    if sa.len() != 2 || sb.len() != 2 {
        return Err(format!("Gemm needs 2-D operands, got {sa:?} and {sb:?}"));
    }
    let (m, k) = if attr::int(n, "transA", 0)? != 0 { (sa[1], sa[0]) } else { (sa[0], sa[1]) };
    let (kb, nn) = if attr::int(n, "transB", 0)? != 0 { (sb[1], sb[0]) } else { (sb[0], sb[1]) };
    if k != kb {
        return Err(format!("inner dimensions differ: {sa:?} · {sb:?}"));
    }
    if let Some(c) = c {
        if shape::broadcast(&[&[m, nn], imp.shape(c)])? != [m, nn] {
            return Err(format!("bias {:?} does not broadcast to [{m}, {nn}]", imp.shape(c)));
        }
    }
    let mut ins = vec![a, b];
    ins.extend(c);
    imp.emit(n, GraphOp::MatMul { b: 1, m, n: nn, k, bias: c.is_some() }, &ins, vec![vec![m, nn]])
}

fn matmul(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (a, sa) = imp.in_shape(n, 0)?;
    let (b, sb) = imp.in_shape(n, 1)?;
    let (out, batch, m, nn, k) = shape::matmul(&sa, &sb)?;
    imp.emit(n, GraphOp::MatMul { b: batch, m, n: nn, k, bias: false }, &[a, b], vec![out])
}

/// Scale and shift are parameters; the running mean and variance fold into them at
/// inference (every runtime does so) and get no gradient, so they are neither graph
/// tensors nor counted as parameters.
fn batch_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    if xs.len() < 2 {
        return Err(format!("input {xs:?} has no channel dimension"));
    }
    let mut ins = vec![x, imp.input(n, 1)?, imp.input(n, 2)?];
    for i in 3..=4 {
        if let v @ Value::Tensor(_) = imp.input(n, i)? {
            ins.push(v); // statistics computed at run time: a real dependency
        }
    }
    let op = GraphOp::BatchNorm { numel: shape::numel(&xs), channels: xs[1] };
    imp.emit(n, op, &ins, vec![xs])
}

/// Instance norm is group norm with one channel per group.
fn group_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    if xs.len() < 3 {
        return Err(format!("input {xs:?} is not a batch of feature maps"));
    }
    let groups = if n.op_type == "GroupNormalization" {
        u64::try_from(attr::int(n, "num_groups", 0)?).ok().filter(|&g| g > 0 && xs[1] % g == 0).ok_or("num_groups must divide the channels")?
    } else {
        xs[1]
    };
    let rows = xs[0] * groups;
    let op = GraphOp::GroupNorm { rows, cols: shape::numel(&xs) / rows };
    let ins = [x, imp.input(n, 1)?, imp.input(n, 2)?];
    imp.emit(n, op, &ins, vec![xs])
}

fn layer_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let ax = shape::axis(attr::int(n, "axis", -1)?, xs.len())?;
    let cols = shape::numel(&xs[ax..]);
    let op = GraphOp::LayerNorm { rows: shape::numel(&xs) / cols, cols };
    let mut ins = vec![x, imp.input(n, 1)?];
    ins.extend(imp.opt_input(n, 2)?);
    imp.emit(n, op, &ins, vec![xs])
}

fn pool(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    if xs.len() < 3 {
        return Err(format!("input {xs:?} is not a batch of feature maps"));
    }
    if !attr::has(n, "kernel_shape") {
        return Err("attribute 'kernel_shape' is missing".into());
    }
    let kernel = attr::per_axis(n, "kernel_shape", xs.len() - 2, 0)?;
    let win = window(n, &xs[2..], &kernel, attr::int(n, "ceil_mode", 0)? != 0)?;
    let mut out = xs[..2].to_vec();
    out.extend(&win.out);
    let op = GraphOp::Pool { numel_in: shape::numel(&xs), numel_out: shape::numel(&out) };
    // MaxPool's optional second output (indices) has the output's shape.
    let outputs = n.output.iter().take(2).filter(|o| !o.is_empty()).count().max(1);
    imp.emit(n, op, &[x], vec![out; outputs])
}

fn global_pool(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    if xs.len() < 3 {
        return Err(format!("input {xs:?} is not a batch of feature maps"));
    }
    let mut out = xs[..2].to_vec();
    out.resize(xs.len(), 1);
    let op = GraphOp::Pool { numel_in: shape::numel(&xs), numel_out: shape::numel(&out) };
    imp.emit(n, op, &[x], vec![out])
}

/// Local response normalisation: a window over neighbouring channels, like a pool that
/// writes as much as it reads.
fn lrn(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let numel = shape::numel(&xs);
    imp.emit(n, GraphOp::Pool { numel_in: numel, numel_out: numel }, &[x], vec![xs])
}

/// Before opset 13 the input is flattened to 2-D at `axis` (default 1); from 13 on the
/// softmax runs along `axis` (default -1).
fn softmax(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let old = imp.opset < 13;
    let ax = shape::axis(attr::int(n, "axis", if old { 1 } else { -1 })?, xs.len())?;
    let cols = if old { shape::numel(&xs[ax..]) } else { xs[ax] };
    let op = GraphOp::Softmax { rows: shape::numel(&xs) / cols, cols };
    imp.emit(n, op, &[x], vec![xs])
}

/// Axes come from the attribute (older opsets) or the second input; none means all.
fn reduce(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let list = match attr::ints(n, "axes")? {
        Some(a) => Some(a),
        None => imp.opt_const_ints(n, 1)?,
    };
    let axes = match list {
        Some(a) if !a.is_empty() => shape::axes(&a, xs.len())?,
        _ if attr::int(n, "noop_with_empty_axes", 0)? != 0 => return Ok(vec![x]),
        _ => (0..xs.len()).collect(),
    };
    reduce_to(imp, n, x, &xs, &axes)
}

fn arg_reduce(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let ax = shape::axis(attr::int(n, "axis", 0)?, xs.len())?;
    reduce_to(imp, n, x, &xs, &[ax])
}

fn reduce_to(imp: &mut Importer, n: &NodeProto, x: Value, xs: &[u64], axes: &[usize]) -> R<Vec<Value>> {
    let keep = attr::int(n, "keepdims", 1)? != 0;
    let out: Vec<u64> = (0..xs.len()).filter_map(|i| if !axes.contains(&i) { Some(xs[i]) } else if keep { Some(1) } else { None }).collect();
    let op = GraphOp::Reduce { numel_in: shape::numel(xs), numel_out: shape::numel(&out) };
    imp.emit(n, op, &[x], vec![out])
}

/// The ELEMENTWISE_FNS entry with the same arithmetic per element as the ONNX op.
fn elementwise_fn(op: &str) -> Option<&'static str> {
    Some(match op {
        "Add" | "Sum" | "Mean" => "add",
        "Sub" | "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" => "sub",
        "Mul" | "And" | "Or" | "Xor" => "mul",
        "Div" | "Reciprocal" | "Softsign" | "Mod" => "div",
        "Pow" => "pow",
        "Sqrt" => "pow_scalar",
        "Neg" => "mul_scalar",
        "Relu" | "LeakyRelu" | "PRelu" | "Clip" | "ThresholdedRelu" | "HardSigmoid" | "HardSwish" | "Abs" | "Sign" | "Floor"
        | "Ceil" | "Round" | "Max" | "Min" | "IsNaN" | "IsInf" => "relu",
        "Sigmoid" => "sigmoid",
        "Tanh" | "Erf" | "Mish" => "tanh",
        "Gelu" => "gelu",
        "Exp" | "Log" | "Softplus" | "Elu" | "Selu" | "Celu" | "Sin" | "Cos" => "exp",
        "Where" => "where",
        _ => return None,
    })
}

/// Shape arithmetic on constants (`Div(Shape(x)[2], heads)`) is folded; anything else is a
/// pointwise node over the broadcast shape.
fn elementwise(imp: &mut Importer, n: &NodeProto, func: &str) -> R<Vec<Value>> {
    let mut vals = Vec::new();
    for i in 0..n.input.len() {
        vals.extend(imp.opt_input(n, i)?); // Clip's min and max are optional
    }
    if vals.is_empty() {
        return Err("no inputs".into());
    }
    let shapes: Vec<Vec<u64>> = vals.iter().map(|&v| imp.shape(v).to_vec()).collect();
    let out = shape::broadcast(&shapes.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
    if let Some(v) = fold_elementwise(imp, n, &vals, &out) {
        return Ok(vec![v]);
    }
    let is_literal = |v: &Value| imp.konst(*v).is_some_and(|c| c.numel() == 1);
    let mut operands: Vec<Value> = vals.iter().copied().filter(|v| !is_literal(v)).collect();
    if operands.is_empty() {
        operands = vals.clone();
    }
    let func = if vals.len() == 2 && operands.len() == 1 && matches!(func, "add" | "sub" | "mul" | "div" | "pow") {
        format!("{func}_scalar")
    } else {
        func.to_string()
    };
    let op = GraphOp::Elementwise { func, numel: shape::numel(&out), inputs: operands.len() as u64 };
    imp.emit(n, op, &operands, vec![out])
}

fn fold_elementwise(imp: &mut Importer, n: &NodeProto, vals: &[Value], out: &[u64]) -> Option<Value> {
    if shape::numel(out) > FOLD_LIMIT {
        return None;
    }
    let inputs = imp.all_data(vals)?;
    let op = n.op_type.as_str();
    let f: fn(&[f64]) -> f64 = match op {
        "Add" | "Sum" => |x| x.iter().sum(),
        "Mean" => |x| x.iter().sum::<f64>() / x.len() as f64,
        "Sub" => |x| x[0] - x[1],
        "Mul" => |x| x.iter().product(),
        "Div" => |x| x[0] / x[1],
        "Pow" => |x| x[0].powf(x[1]),
        "Max" => |x| x.iter().copied().fold(f64::MIN, f64::max),
        "Min" => |x| x.iter().copied().fold(f64::MAX, f64::min),
        "Neg" => |x| -x[0],
        "Abs" => |x| x[0].abs(),
        "Sqrt" => |x| x[0].sqrt(),
        "Floor" => |x| x[0].floor(),
        "Ceil" => |x| x[0].ceil(),
        "Equal" => |x| (x[0] == x[1]) as u8 as f64,
        "Less" => |x| (x[0] < x[1]) as u8 as f64,
        "Greater" => |x| (x[0] > x[1]) as u8 as f64,
        "LessOrEqual" => |x| (x[0] <= x[1]) as u8 as f64,
        "GreaterOrEqual" => |x| (x[0] >= x[1]) as u8 as f64,
        "Not" => |x| (x[0] == 0.0) as u8 as f64,
        "And" => |x| (x[0] != 0.0 && x[1] != 0.0) as u8 as f64,
        "Or" => |x| (x[0] != 0.0 || x[1] != 0.0) as u8 as f64,
        "Where" => |x| if x[0] != 0.0 { x[1] } else { x[2] },
        _ => return None,
    };
    let int = match op {
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or" => true,
        "Where" => inputs.get(1).is_some_and(|i| i.2),
        _ => inputs.iter().all(|i| i.2),
    };
    let mut args = vec![0.0; inputs.len()];
    let data = consts::build(out, |idx| {
        for (a, (d, s, _)) in args.iter_mut().zip(&inputs) {
            *a = consts::broadcast_at(d, s, idx);
        }
        let v = f(&args);
        if int {
            v.trunc()
        } else {
            v
        }
    });
    Some(imp.folded(n, out.to_vec(), int, Some(data)))
}

/// ONNX `Dropout` is the identity at inference; the graph keeps it as the model computes
/// it in training (as the transformer builder does), and the lowering decides its cost.
fn dropout(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let op = GraphOp::Elementwise { func: "dropout".into(), numel: shape::numel(&xs), inputs: 1 };
    imp.emit(n, op, &[x], vec![xs])
}

/// A type conversion: folded on constants, a pointwise copy on tensors.
fn cast(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let to = attr::int(n, "to", 0)? as i32;
    let int = consts::is_int_or_bool(to);
    match x {
        Value::Const(c) => {
            let data = imp.consts[c].data.as_ref().map(|d| d.iter().map(|&v| if to == 9 { (v != 0.0) as u8 as f64 } else if int { v.trunc() } else { v }).collect());
            Ok(vec![imp.alias(c, n, xs, data, int)])
        }
        Value::Tensor(_) => {
            let op = GraphOp::Elementwise { func: "copy".into(), numel: shape::numel(&xs), inputs: 1 };
            imp.emit(n, op, &[x], vec![xs])
        }
    }
}

// ---- reshapes and data movement ----

/// A reshape: a constant stays a constant with the same elements; a tensor gets a `View`.
fn view(imp: &mut Importer, n: &NodeProto, x: Value, out: Vec<u64>) -> R<Vec<Value>> {
    match x {
        Value::Const(c) => {
            let (data, int) = (imp.consts[c].data.clone(), imp.consts[c].int);
            Ok(vec![imp.alias(c, n, out, data, int)])
        }
        Value::Tensor(_) => imp.emit(n, GraphOp::View, &[x], vec![out]),
    }
}

fn reshape(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let spec = match attr::ints(n, "shape")? {
        Some(s) => s, // opset < 5
        None => imp.const_data(n, 1)?,
    };
    let out = shape::reshape(&xs, &spec, attr::int(n, "allowzero", 0)? != 0)?;
    view(imp, n, x, out)
}

fn flatten(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let a = attr::int(n, "axis", 1)?;
    let ax = if a == xs.len() as i64 { xs.len() } else { shape::axis(a, xs.len())? };
    view(imp, n, x, vec![shape::numel(&xs[..ax]), shape::numel(&xs[ax..])])
}

/// Axes from the attribute (opset < 13) or the second input.
fn axes_arg(imp: &Importer, n: &NodeProto) -> R<Option<Vec<i64>>> {
    match attr::ints(n, "axes")? {
        Some(a) => Ok(Some(a)),
        None => imp.opt_const_ints(n, 1),
    }
}

fn squeeze(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let out = match axes_arg(imp, n)? {
        Some(a) => {
            let axes = shape::axes(&a, xs.len())?;
            if let Some(&bad) = axes.iter().find(|&&i| xs[i] != 1) {
                return Err(format!("cannot squeeze axis {bad} of {xs:?}"));
            }
            (0..xs.len()).filter(|i| !axes.contains(i)).map(|i| xs[i]).collect()
        }
        None => xs.iter().copied().filter(|&d| d != 1).collect(),
    };
    view(imp, n, x, out)
}

fn unsqueeze(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let a = axes_arg(imp, n)?.ok_or("no axes")?;
    let rank = xs.len() + a.len();
    let axes = shape::axes(&a, rank)?;
    let mut rest = xs.iter();
    let out = (0..rank).map(|i| if axes.contains(&i) { 1 } else { rest.next().copied().unwrap_or(1) }).collect();
    view(imp, n, x, out)
}

fn transpose(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let perm: Vec<usize> = match attr::ints(n, "perm")? {
        Some(p) => {
            let p = shape::axes(&p, xs.len())?;
            if p.len() != xs.len() {
                return Err(format!("perm {p:?} does not permute rank {}", xs.len()));
            }
            p
        }
        None => (0..xs.len()).rev().collect(),
    };
    let out: Vec<u64> = perm.iter().map(|&p| xs[p]).collect();
    match x {
        Value::Const(c) => {
            let k = &imp.consts[c];
            let data = k.data.as_ref().map(|d| {
                let mut src = vec![0u64; xs.len()];
                consts::build(&out, |idx| {
                    for (i, &p) in perm.iter().enumerate() {
                        src[p] = idx[i];
                    }
                    consts::at(d, &xs, &src)
                })
            });
            let int = k.int;
            Ok(vec![imp.alias(c, n, out, data, int)])
        }
        Value::Tensor(_) => imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out]),
    }
}

fn concat(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let vals = (0..n.input.len()).map(|i| imp.input(n, i)).collect::<R<Vec<_>>>()?;
    let shapes: Vec<Vec<u64>> = vals.iter().map(|&v| imp.shape(v).to_vec()).collect();
    let first = shapes.first().ok_or("no inputs")?;
    let ax = shape::axis(attr::int(n, "axis", i64::MAX)?, first.len()).map_err(|_| "attribute 'axis' is missing or out of range".to_string())?;
    let mut out = first.clone();
    out[ax] = 0;
    for s in &shapes {
        if s.len() != first.len() || (0..s.len()).any(|i| i != ax && s[i] != first[i]) {
            return Err(format!("inputs {shapes:?} do not concatenate along axis {ax}"));
        }
        out[ax] = out[ax].checked_add(s[ax]).ok_or("concatenated size overflows")?;
    }
    if shape::numel(&out) <= FOLD_LIMIT {
        if let Some(inputs) = imp.all_data(&vals) {
            let int = inputs.iter().all(|i| i.2);
            let mut src = Vec::new();
            let data = consts::build(&out, |idx| {
                src.clear();
                src.extend_from_slice(idx);
                for (d, s, _) in &inputs {
                    if src[ax] < s[ax] {
                        return consts::at(d, s, &src);
                    }
                    src[ax] -= s[ax];
                }
                0.0
            });
            return Ok(vec![imp.folded(n, out, int, Some(data))]);
        }
    }
    // Empty pieces (a common leftover of shape arithmetic) move nothing.
    let ins: Vec<Value> = vals.into_iter().filter(|&v| shape::numel(imp.shape(v)) > 0).collect();
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &ins, vec![out])
}

fn split(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let ax = shape::axis(attr::int(n, "axis", 0)?, xs.len())?;
    let outputs = n.output.len().max(1) as u64;
    let dim = xs[ax];
    let sizes: Vec<u64> = match (attr::ints(n, "split")?, imp.opt_const_ints(n, 1)?) {
        (Some(s), _) | (None, Some(s)) => s.iter().map(|&d| u64::try_from(d).map_err(|_| format!("negative split {d}"))).collect::<R<_>>()?,
        (None, None) => {
            let parts = match attr::int(n, "num_outputs", 0)? {
                p if p > 0 => p as u64,
                _ => outputs,
            };
            let each = dim.div_ceil(parts);
            (0..parts).map(|i| each.min(dim.saturating_sub(i * each))).collect()
        }
    };
    if sizes.iter().sum::<u64>() != dim || sizes.len() as u64 != outputs {
        return Err(format!("split {sizes:?} does not divide axis {ax} of {xs:?} into {outputs} outputs"));
    }
    let shapes: Vec<Vec<u64>> = sizes
        .iter()
        .map(|&d| {
            let mut s = xs.clone();
            s[ax] = d;
            s
        })
        .collect();
    match imp.konst(x).map(|c| (c.data.clone(), c.int)) {
        Some((data, int)) => {
            let mut offset = 0;
            let mut outs = Vec::new();
            for (i, s) in shapes.into_iter().enumerate() {
                let piece = data.as_ref().map(|d| {
                    let mut src = Vec::new();
                    consts::build(&s, |idx| {
                        src.clear();
                        src.extend_from_slice(idx);
                        src[ax] += offset;
                        consts::at(d, &xs, &src)
                    })
                });
                offset += sizes[i];
                let name = n.output.get(i).cloned().unwrap_or_default();
                outs.push(imp.new_const(Const::new(&name, s, int, piece)));
            }
            Ok(outs)
        }
        None => imp.emit(n, GraphOp::Copy { numel: shape::numel(&xs) }, &[x], shapes),
    }
}

/// Starts, ends, axes and steps come from attributes before opset 10, inputs after.
fn slice(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let (starts, ends, axes, steps) = if attr::has(n, "starts") {
        let get = |k| attr::ints(n, k).and_then(|v| v.ok_or(format!("attribute '{k}' is missing")));
        (get("starts")?, get("ends")?, attr::ints(n, "axes")?, None)
    } else {
        (imp.const_data(n, 1)?, imp.const_data(n, 2)?, imp.opt_const_ints(n, 3)?, imp.opt_const_ints(n, 4)?)
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let axes = shape::axes(&axes, xs.len())?;
    let (mut out, mut begin, mut step) = (xs.clone(), vec![0u64; xs.len()], vec![1i64; xs.len()]);
    for (i, &a) in axes.iter().enumerate() {
        let (s, len) = shape::slice_axis(xs[a], starts[i], ends[i], steps[i])?;
        (out[a], begin[a], step[a]) = (len, s, steps[i]);
    }
    if let Some(c) = imp.konst(x).filter(|c| c.data.is_some()) {
        let (d, int) = (c.data.clone().unwrap_or_default(), c.int);
        let mut src = vec![0u64; xs.len()];
        let data = consts::build(&out, |idx| {
            for i in 0..idx.len() {
                src[i] = (begin[i] as i64 + idx[i] as i64 * step[i]) as u64;
            }
            consts::at(&d, &xs, &src)
        });
        return Ok(vec![imp.folded(n, out, int, Some(data))]);
    }
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

/// Gather along `axis`. On a weight along axis 0 it is an embedding lookup.
fn gather(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let (i, is) = imp.in_shape(n, 1)?;
    let ax = shape::axis(attr::int(n, "axis", 0)?, xs.len())?;
    let mut out = xs[..ax].to_vec();
    out.extend(&is);
    out.extend(&xs[ax + 1..]);
    if shape::numel(&out) <= FOLD_LIMIT {
        if let Some(inputs) = imp.all_data(&[x, i]) {
            let (data, idx_data, int) = (&inputs[0].0, &inputs[1].0, inputs[0].2);
            let dim = xs[ax] as i64;
            let index: Vec<u64> = idx_data
                .iter()
                .map(|&j| {
                    let j = j as i64;
                    let j = if j < 0 { j + dim } else { j };
                    u64::try_from(j).ok().filter(|&j| j < xs[ax]).ok_or(format!("index {j} out of range for {xs:?} axis {ax}"))
                })
                .collect::<R<_>>()?;
            let mut src = vec![0u64; xs.len()];
            let data = consts::build(&out, |idx| {
                src[..ax].copy_from_slice(&idx[..ax]);
                src[ax] = index[consts::flat(&is, &idx[ax..ax + is.len()])];
                src[ax + 1..].copy_from_slice(&idx[ax + is.len()..]);
                consts::at(data, &xs, &src)
            });
            return Ok(vec![imp.folded(n, out, int, Some(data))]);
        }
    }
    let op = if ax == 0 && matches!(x, Value::Const(_)) {
        GraphOp::Embedding { tokens: shape::numel(&is), dim: shape::numel(&xs[1..]), vocab: xs[0] }
    } else {
        GraphOp::Copy { numel: shape::numel(&out) }
    };
    let ins = if matches!(op, GraphOp::Embedding { .. }) { [i, x] } else { [x, i] };
    imp.emit(n, op, &ins, vec![out])
}

/// Pads from the attribute (opset < 11) or the second input; negative pads crop.
fn pad(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let pads = match attr::ints(n, "pads")? {
        Some(p) => p,
        None => imp.const_data(n, 1)?,
    };
    let axes = match imp.opt_const_ints(n, 3)? {
        Some(a) => shape::axes(&a, xs.len())?,
        None => (0..xs.len()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("pads {pads:?} do not match {} axes", axes.len()));
    }
    let mut out = xs.clone();
    for (i, &a) in axes.iter().enumerate() {
        let d = (xs[a] as i64).saturating_add(pads[i]).saturating_add(pads[i + axes.len()]);
        out[a] = u64::try_from(d).map_err(|_| format!("pads {pads:?} remove more than axis {a} of {xs:?}"))?;
    }
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

/// Output sizes win over scales. Inputs: `Upsample(X, scales)` (opset 9; an attribute
/// before), `Resize(X, scales)` (opset 10), `Resize(X, roi, scales, sizes)` (11+).
fn resize(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let (scales, sizes) = if let Some(s) = attr::floats(n, "scales")? {
        (Some(s.iter().map(|&v| v as f64).collect()), None)
    } else if n.op_type == "Upsample" || imp.opset < 11 {
        (imp.opt_const_floats(n, 1)?, None)
    } else {
        (imp.opt_const_floats(n, 2)?, imp.opt_const_ints(n, 3)?.filter(|s| !s.is_empty()))
    };
    let axes = match attr::ints(n, "axes")? {
        Some(a) => shape::axes(&a, xs.len())?,
        None => (0..xs.len()).collect(),
    };
    let mut out = xs.clone();
    if let Some(sizes) = sizes {
        if sizes.len() != axes.len() {
            return Err(format!("sizes {sizes:?} do not match {} axes", axes.len()));
        }
        for (&a, &s) in axes.iter().zip(&sizes) {
            out[a] = u64::try_from(s).map_err(|_| format!("negative size {s}"))?;
        }
    } else if let Some(scales) = scales {
        if scales.len() != axes.len() || scales.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err(format!("scales {scales:?} do not give {} positive factors", axes.len()));
        }
        for (&a, &s) in axes.iter().zip(&scales) {
            out[a] = (xs[a] as f64 * s).floor() as u64;
        }
    } else {
        return Err("neither scales nor sizes are given".into());
    }
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

fn expand(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let spec = imp.const_data(n, 1)?;
    let spec: Vec<u64> = spec.iter().map(|&d| u64::try_from(d).map_err(|_| format!("negative dimension in {spec:?}"))).collect::<R<_>>()?;
    let out = shape::broadcast(&[&xs, &spec])?;
    if shape::numel(&out) <= FOLD_LIMIT {
        if let Some(inputs) = imp.all_data(&[x]) {
            let (d, int) = (&inputs[0].0, inputs[0].2);
            let data = consts::build(&out, |idx| consts::broadcast_at(d, &xs, idx));
            return Ok(vec![imp.folded(n, out, int, Some(data))]);
        }
    }
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

fn tile(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let reps = imp.const_data(n, 1)?;
    if reps.len() != xs.len() || reps.iter().any(|&r| r < 0) {
        return Err(format!("repeats {reps:?} do not fit {xs:?}"));
    }
    let out: Vec<u64> = xs.iter().zip(&reps).map(|(&d, &r)| d.saturating_mul(r as u64)).collect();
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

// ---- constants and shape queries ----

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

//! Ops that compute: convolutions, matmuls, normalisations, pools, reductions and
//! pointwise functions (see `ops` for how ONNX maps onto `GraphOp`).

use super::consts::{self, FOLD_LIMIT};
use super::{attr, shape, Importer, Value, R};
use crate::graph::GraphOp;
use onnx_protobuf::NodeProto;

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

pub(super) fn conv(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
    if ws[1].checked_mul(groups) != Some(c) || !k.is_multiple_of(groups) {
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

pub(super) fn gemm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn matmul(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (a, sa) = imp.in_shape(n, 0)?;
    let (b, sb) = imp.in_shape(n, 1)?;
    let (out, batch, m, nn, k) = shape::matmul(&sa, &sb)?;
    imp.emit(n, GraphOp::MatMul { b: batch, m, n: nn, k, bias: false }, &[a, b], vec![out])
}

/// Scale and shift are parameters; the running mean and variance fold into them at
/// inference (every runtime does so) and get no gradient, so they are neither graph
/// tensors nor counted as parameters.
pub(super) fn batch_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

/// The element count of `xs` divided by `by` (rows of a row-wise op, or the elements of
/// one row); an empty input (a constant can be) is an error, not a division by zero.
fn per_row(xs: &[u64], by: u64) -> R<u64> {
    shape::numel(xs).checked_div(by).ok_or_else(|| format!("input {xs:?} is empty"))
}

/// Instance norm is group norm with one channel per group.
pub(super) fn group_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    if xs.len() < 3 {
        return Err(format!("input {xs:?} is not a batch of feature maps"));
    }
    let groups = if n.op_type == "GroupNormalization" {
        u64::try_from(attr::int(n, "num_groups", 0)?).ok().filter(|&g| g > 0 && xs[1].is_multiple_of(g)).ok_or("num_groups must divide the channels")?
    } else {
        xs[1]
    };
    let rows = xs[0] * groups;
    let op = GraphOp::GroupNorm { rows, cols: per_row(&xs, rows)? };
    let ins = [x, imp.input(n, 1)?, imp.input(n, 2)?];
    imp.emit(n, op, &ins, vec![xs])
}

pub(super) fn layer_norm(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let ax = shape::axis(attr::int(n, "axis", -1)?, xs.len())?;
    let cols = shape::numel(&xs[ax..]);
    let op = GraphOp::LayerNorm { rows: per_row(&xs, cols)?, cols };
    let mut ins = vec![x, imp.input(n, 1)?];
    ins.extend(imp.opt_input(n, 2)?);
    imp.emit(n, op, &ins, vec![xs])
}

pub(super) fn pool(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn global_pool(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
pub(super) fn lrn(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let numel = shape::numel(&xs);
    imp.emit(n, GraphOp::Pool { numel_in: numel, numel_out: numel }, &[x], vec![xs])
}

/// Before opset 13 the input is flattened to 2-D at `axis` (default 1); from 13 on the
/// softmax runs along `axis` (default -1).
pub(super) fn softmax(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let old = imp.opset < 13;
    let ax = shape::axis(attr::int(n, "axis", if old { 1 } else { -1 })?, xs.len())?;
    let cols = if old { shape::numel(&xs[ax..]) } else { xs[ax] };
    let op = GraphOp::Softmax { rows: per_row(&xs, cols)?, cols };
    imp.emit(n, op, &[x], vec![xs])
}

/// Axes come from the attribute (older opsets) or the second input; none means all.
pub(super) fn reduce(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn arg_reduce(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let ax = shape::axis(attr::int(n, "axis", 0)?, xs.len())?;
    reduce_to(imp, n, x, &xs, &[ax])
}

pub(super) fn reduce_to(imp: &mut Importer, n: &NodeProto, x: Value, xs: &[u64], axes: &[usize]) -> R<Vec<Value>> {
    let keep = attr::int(n, "keepdims", 1)? != 0;
    let out: Vec<u64> = (0..xs.len()).filter_map(|i| if !axes.contains(&i) { Some(xs[i]) } else if keep { Some(1) } else { None }).collect();
    let op = GraphOp::Reduce { numel_in: shape::numel(xs), numel_out: shape::numel(&out) };
    imp.emit(n, op, &[x], vec![out])
}

/// The ELEMENTWISE_FNS entry with the same arithmetic per element as the ONNX op.
pub fn elementwise_fn(op: &str) -> Option<&'static str> {
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
        "Where" | "Trilu" => "where",
        "CumSum" => "cumsum",
        _ => return None,
    })
}

/// Shape arithmetic on constants (`Div(Shape(x)[2], heads)`) is folded; anything else is a
/// pointwise node over the broadcast shape.
pub(super) fn elementwise(imp: &mut Importer, n: &NodeProto, func: &str) -> R<Vec<Value>> {
    let mut vals = Vec::new();
    for i in 0..n.input.len() {
        vals.extend(imp.opt_input(n, i)?); // Clip's min and max are optional
    }
    if vals.is_empty() {
        return Err("no inputs".into());
    }
    if let Some(k) = fixed_arity(&n.op_type) {
        if vals.len() != k {
            return Err(format!("{} takes {k} input{}, got {}", n.op_type, if k == 1 { "" } else { "s" }, vals.len()));
        }
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

/// The number of inputs an ONNX element-wise op takes, where the standard fixes it (the
/// variadic ones, `Sum`, `Max` …, and `Clip` with its optional bounds have none).
fn fixed_arity(op: &str) -> Option<usize> {
    match op {
        "Neg" | "Abs" | "Sqrt" | "Floor" | "Ceil" | "Not" => Some(1),
        "Sub" | "Div" | "Pow" | "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" => Some(2),
        "Where" => Some(3),
        _ => None,
    }
}

pub(super) fn fold_elementwise(imp: &mut Importer, n: &NodeProto, vals: &[Value], out: &[u64]) -> Option<Value> {
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
pub(super) fn dropout(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let op = GraphOp::Elementwise { func: "dropout".into(), numel: shape::numel(&xs), inputs: 1 };
    imp.emit(n, op, &[x], vec![xs])
}

/// A type conversion: folded on constants, a pointwise copy on tensors.
pub(super) fn cast(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

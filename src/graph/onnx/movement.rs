//! Reshapes (`View`, or a folded constant) and ops that move data into a new tensor
//! (`Copy`, or folded when the input is a constant with known elements).

use super::consts::{self, Const, FOLD_LIMIT};
use super::{attr, shape, Importer, Value, R};
use crate::graph::GraphOp;
use onnx_protobuf::NodeProto;

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

pub(super) fn reshape(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let spec = match attr::ints(n, "shape")? {
        Some(s) => s, // opset < 5
        None => imp.const_data(n, 1)?,
    };
    let out = shape::reshape(&xs, &spec, attr::int(n, "allowzero", 0)? != 0)?;
    view(imp, n, x, out)
}

pub(super) fn flatten(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let a = attr::int(n, "axis", 1)?;
    let ax = if a == xs.len() as i64 { xs.len() } else { shape::axis(a, xs.len())? };
    view(imp, n, x, vec![shape::numel(&xs[..ax]), shape::numel(&xs[ax..])])
}

/// Axes from the attribute (opset < 13) or the second input.
pub(super) fn axes_arg(imp: &Importer, n: &NodeProto) -> R<Option<Vec<i64>>> {
    match attr::ints(n, "axes")? {
        Some(a) => Ok(Some(a)),
        None => imp.opt_const_ints(n, 1),
    }
}

pub(super) fn squeeze(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn unsqueeze(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let a = axes_arg(imp, n)?.ok_or("no axes")?;
    let rank = xs.len() + a.len();
    let axes = shape::axes(&a, rank)?;
    let mut rest = xs.iter();
    let out = (0..rank).map(|i| if axes.contains(&i) { 1 } else { rest.next().copied().unwrap_or(1) }).collect();
    view(imp, n, x, out)
}

pub(super) fn transpose(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn concat(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn split(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
pub(super) fn slice(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
pub(super) fn gather(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
pub(super) fn pad(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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
pub(super) fn resize(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn expand(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
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

pub(super) fn tile(imp: &mut Importer, n: &NodeProto) -> R<Vec<Value>> {
    let (x, xs) = imp.in_shape(n, 0)?;
    let reps = imp.const_data(n, 1)?;
    if reps.len() != xs.len() || reps.iter().any(|&r| r < 0) {
        return Err(format!("repeats {reps:?} do not fit {xs:?}"));
    }
    let out: Vec<u64> = xs.iter().zip(&reps).map(|(&d, &r)| d.saturating_mul(r as u64)).collect();
    imp.emit(n, GraphOp::Copy { numel: shape::numel(&out) }, &[x], vec![out])
}

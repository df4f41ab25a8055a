//! Shape rules of the ONNX operators, as pure functions of shapes and attribute values.
//! Every arithmetic step on file data is checked: a malformed model is an error, never an
//! overflow or a panic.

use super::R;

/// The largest element count a tensor may have (exactly representable in `f64`).
const MAX_NUMEL: u64 = 1 << 53;

/// Element count, saturating: an absurd shape from a malformed file stays absurd (and is
/// rejected by `check_activation`) instead of wrapping to a small number.
pub fn numel(shape: &[u64]) -> u64 {
    shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
}

/// An activation must have positive dimensions and a plausible size.
pub fn check_activation(shape: &[u64]) -> R<()> {
    if shape.contains(&0) {
        return Err(format!("an output would be empty (shape {shape:?})"));
    }
    match shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_NUMEL => Ok(()),
        _ => Err(format!("an output would have an implausible size (shape {shape:?})")),
    }
}

/// A possibly negative axis, counted from the end, as an index below `rank`.
pub fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// Several axes, normalised and free of repeats.
pub fn axes(list: &[i64], rank: usize) -> R<Vec<usize>> {
    let mut out = Vec::with_capacity(list.len());
    for &a in list {
        let a = axis(a, rank)?;
        if out.contains(&a) {
            return Err(format!("axis {a} is repeated"));
        }
        out.push(a);
    }
    Ok(out)
}

/// Multidirectional (numpy) broadcasting.
pub fn broadcast(shapes: &[&[u64]]) -> R<Vec<u64>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1u64; rank];
    for s in shapes {
        let off = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[off + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("shapes {:?} do not broadcast", shapes));
            }
        }
    }
    Ok(out)
}

/// `Reshape` target: `0` copies the input dimension (unless `allowzero`), `-1` takes the
/// remaining elements.
pub fn reshape(input: &[u64], spec: &[i64], allowzero: bool) -> R<Vec<u64>> {
    let total = numel(input);
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| format!("reshape {spec:?}: no input dimension {i} to copy"))?),
            d if d >= 0 => out.push(d as u64),
            _ => return Err(format!("reshape {spec:?}: invalid dimension {d}")),
        }
    }
    let known = out.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).ok_or("reshape overflows")?;
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {input:?} to {spec:?}"));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {input:?} ({total} elements) to {spec:?}"));
    }
    Ok(out)
}

/// Output length of a sliding window (convolution, pooling) along one axis.
pub fn window_out(input: u64, kernel: u64, stride: u64, dilation: u64, pads: (u64, u64), ceil: bool) -> R<u64> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return Err("kernel, strides and dilations must be positive".into());
    }
    let too_big = || "window sizes overflow".to_string();
    let span = (kernel - 1).checked_mul(dilation).and_then(|x| x.checked_add(1)).ok_or_else(too_big)?;
    let padded = input.checked_add(pads.0).and_then(|x| x.checked_add(pads.1)).ok_or_else(too_big)?;
    if padded < span {
        return Err(format!("window of {span} is larger than the padded input {padded}"));
    }
    let steps = if ceil { (padded - span).div_ceil(stride) } else { (padded - span) / stride };
    let mut out = steps + 1;
    // PyTorch and ONNX: with ceil mode, the last window must start inside the input or
    // the leading padding.
    if ceil && (out - 1) * stride >= input + pads.0 {
        out -= 1;
    }
    if out == 0 {
        return Err(format!("window of {span} leaves no output over an input of {input}"));
    }
    Ok(out)
}

/// Padding `auto_pad = SAME_UPPER/SAME_LOWER` chooses: output = ⌈input / stride⌉.
pub fn same_pads(input: u64, kernel: u64, stride: u64, dilation: u64, upper: bool) -> R<(u64, u64)> {
    if stride == 0 || kernel == 0 {
        return Err("kernel and strides must be positive".into());
    }
    let out = input.div_ceil(stride).max(1);
    let span = (kernel - 1).saturating_mul(dilation).saturating_add(1);
    let total = (out - 1).saturating_mul(stride).saturating_add(span).saturating_sub(input);
    let small = total / 2;
    Ok(if upper { (small, total - small) } else { (total - small, small) })
}

/// `MatMul` with numpy semantics: returns (output shape, batch, m, n, k). Batch dimensions
/// broadcast; a right operand without batch dimensions folds the left batch into `m`, as
/// frameworks do for a linear layer.
pub fn matmul(a: &[u64], b: &[u64]) -> R<(Vec<u64>, u64, u64, u64, u64)> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul of a scalar".into());
    }
    let a2: Vec<u64> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<u64> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != kb {
        return Err(format!("inner dimensions differ: {a:?} · {b:?}"));
    }
    let (ba, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let batch = broadcast(&[ba, bb])?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    let (nb, m_eff) = if numel(bb) == 1 { (1, numel(&batch) * m) } else { (numel(&batch), m) };
    Ok((out, nb, m_eff, n, k))
}

/// One axis of a `Slice`: the first index taken and the number of elements.
pub fn slice_axis(dim: u64, start: i64, end: i64, step: i64) -> R<(u64, u64)> {
    if step == 0 {
        return Err("slice step is 0".into());
    }
    if dim == 0 {
        return Ok((0, 0));
    }
    let (d, step) = (dim as i128, step as i128);
    let norm = |x: i64| if x < 0 { x as i128 + d } else { x as i128 };
    let (s, e) = (norm(start), norm(end));
    if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        let len = if e > s { (e - s + step - 1) / step } else { 0 };
        Ok((s as u64, len as u64))
    } else {
        let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
        let len = if s > e { (s - e - step - 1) / -step } else { 0 };
        Ok((s.max(0) as u64, len as u64))
    }
}

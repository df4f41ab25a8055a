//! The kinds of work a kernel does, with their shapes: the `op` and `shape` columns of
//! the canonical trace format, parsed and checked.

use crate::error::{closest, Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Fp32,
    Tf32,
    Fp16,
    Bf16,
    Fp8,
    Int8,
}

impl Dtype {
    pub fn parse(s: &str) -> Result<Dtype> {
        Ok(match s.trim().to_lowercase().as_str() {
            "fp32" | "float32" | "float" | "f32" => Dtype::Fp32,
            "tf32" => Dtype::Tf32,
            "fp16" | "float16" | "half" | "f16" => Dtype::Fp16,
            "bf16" | "bfloat16" => Dtype::Bf16,
            "fp8" | "e4m3" | "e5m2" | "float8" => Dtype::Fp8,
            "int8" | "i8" => Dtype::Int8,
            _ => return Err(Error::UnknownDtype(s.to_string())),
        })
    }
    /// Bytes per element in memory (tf32 is stored as fp32).
    pub fn bytes(self) -> f64 {
        match self {
            Dtype::Fp32 | Dtype::Tf32 => 4.0,
            Dtype::Fp16 | Dtype::Bf16 => 2.0,
            Dtype::Fp8 | Dtype::Int8 => 1.0,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Fp32 => "fp32",
            Dtype::Tf32 => "tf32",
            Dtype::Fp16 => "fp16",
            Dtype::Bf16 => "bf16",
            Dtype::Fp8 => "fp8",
            Dtype::Int8 => "int8",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Element-wise functions of the `elementwise` op.
pub const ELEMENTWISE_FNS: &[&str] = &[
    "add", "mul", "div", "pow", "sub", "add_scalar", "mul_scalar", "div_scalar", "pow_scalar", "sub_scalar",
    "relu", "gelu", "tanh", "sigmoid", "silu", "exp", "dropout", "contiguous", "copy", "cumsum", "where",
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Gemm { b: u64, m: u64, n: u64, k: u64, bias: bool },
    /// A GEMM whose weight (`B`, k×n) is stored as `bits`-bit integers with one fp16
    /// scale per 128 weights, dequantised in the main loop (weight-only W4A16/W8A16).
    QuantGemm { m: u64, n: u64, k: u64, bits: u64, bias: bool },
    Conv2d { n: u64, c: u64, h: u64, w: u64, k: u64, r: u64, s: u64, stride: u64, pad: u64 },
    Attention { b: u64, hq: u64, hkv: u64, sq: u64, skv: u64, d: u64, causal: bool },
    Elementwise { func: String, numel: u64, inputs: u64 },
    Softmax { rows: u64, cols: u64 },
    Layernorm { rows: u64, cols: u64 },
    Rmsnorm { rows: u64, cols: u64 },
    SiluMul { tokens: u64, cols: u64 },
    Rope { tokens: u64, hq: u64, hkv: u64, d: u64 },
    Embedding { tokens: u64, dim: u64, vocab: u64 },
    AllReduce { bytes: u64, gpus: u64, nodes: u64, gpus_per_node: u64 },
    SendRecv { bytes: u64, gpus: u64, nodes: u64, gpus_per_node: u64 },
}

/// Size limits of `Op::check_size`.
pub const MAX_ELEMENTS: u64 = 1 << 48;
pub const MAX_MACS: u64 = 1 << 60;
pub const MAX_INPUTS: u64 = 64;
pub const MAX_COLLECTIVE_BYTES: u64 = 1 << 44;
pub const MAX_GPUS: u64 = 1 << 20;

pub const OP_NAMES: &[&str] = &[
    "gemm", "quant_gemm", "conv2d", "attention", "elementwise", "softmax", "layernorm", "rmsnorm", "silu_mul", "rope",
    "embedding", "all_reduce", "send_recv",
];

/// Parses `k=v` pairs separated by `;` or `,`.
pub fn parse_kv(op: &str, shape: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for part in shape.split([';', ',']).map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| Error::Shape {
            op: op.to_string(),
            msg: format!("'{part}' is not key=value"),
        })?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(map)
}

struct Keys<'a> {
    op: &'a str,
    map: BTreeMap<String, String>,
}

impl Keys<'_> {
    fn int(&self, key: &str) -> Result<u64> {
        let v = self.map.get(key).ok_or_else(|| Error::Shape {
            op: self.op.to_string(),
            msg: format!("missing key '{key}' (expected keys: {})", expected_keys(self.op)),
        })?;
        let n: i128 = v.parse().map_err(|_| Error::Shape {
            op: self.op.to_string(),
            msg: format!("{key}={v} is not an integer"),
        })?;
        if n <= 0 || n > u64::MAX as i128 / 4 {
            return Err(Error::Shape { op: self.op.to_string(), msg: format!("{key}={v} must be a positive integer") });
        }
        Ok(n as u64)
    }
    fn int_or(&self, key: &str, default: u64) -> Result<u64> {
        if self.map.contains_key(key) {
            self.int(key)
        } else {
            Ok(default)
        }
    }
    /// A 0/1 flag (0 is allowed here).
    fn flag(&self, key: &str) -> Result<bool> {
        match self.map.get(key).map(String::as_str) {
            None | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(v) => Err(Error::Shape { op: self.op.to_string(), msg: format!("{key}={v} must be 0 or 1") }),
        }
    }
    /// Non-negative integer (pad may be 0).
    fn nonneg(&self, key: &str) -> Result<u64> {
        match self.map.get(key) {
            Some(v) if v == "0" => Ok(0),
            _ => self.int(key),
        }
    }
}

pub fn expected_keys(op: &str) -> &'static str {
    match op {
        "gemm" => "b,m,n,k,bias",
        "quant_gemm" => "m,n,k,bits,bias",
        "conv2d" => "n,c,h,w,k,r,s,stride,pad",
        "attention" => "b,hq,hkv,sq,skv,d,causal",
        "elementwise" => "fn,numel,inputs",
        "softmax" | "layernorm" | "rmsnorm" => "rows,cols",
        "silu_mul" => "tokens,cols",
        "rope" => "tokens,hq,hkv,d",
        "embedding" => "tokens,dim,vocab",
        "all_reduce" | "send_recv" => "bytes,gpus,nodes,gpus_per_node",
        _ => "",
    }
}

impl Op {
    /// Builds an op from its name and `k=v;…` shape, checking every size.
    pub fn parse(op: &str, shape: &str) -> Result<Op> {
        let name = op.trim().to_lowercase();
        if !OP_NAMES.contains(&name.as_str()) {
            return Err(Error::UnknownOp { name: op.to_string(), suggestions: closest(op, OP_NAMES.iter().copied()) });
        }
        let k = Keys { op: OP_NAMES.iter().find(|n| **n == name).unwrap(), map: parse_kv(&name, shape)? };
        let expected = expected_keys(k.op);
        if let Some(extra) = k.map.keys().find(|key| !expected.split(',').any(|e| e == key.as_str())) {
            // An ignored key would silently describe another kernel (groups, dilation…).
            return Err(Error::Shape { op: name, msg: format!("unknown key '{extra}' (expected keys: {expected})") });
        }
        let op = match name.as_str() {
            "gemm" => Op::Gemm { b: k.int_or("b", 1)?, m: k.int("m")?, n: k.int("n")?, k: k.int("k")?, bias: k.flag("bias")? },
            "quant_gemm" => {
                let bits = k.int("bits")?;
                if bits != 4 && bits != 8 {
                    return Err(Error::Shape { op: name, msg: format!("bits={bits}: weight-only GEMMs store 4- or 8-bit weights") });
                }
                Op::QuantGemm { m: k.int("m")?, n: k.int("n")?, k: k.int("k")?, bits, bias: k.flag("bias")? }
            }
            "conv2d" => {
                let op = Op::Conv2d {
                    n: k.int("n")?,
                    c: k.int("c")?,
                    h: k.int("h")?,
                    w: k.int("w")?,
                    k: k.int("k")?,
                    r: k.int("r")?,
                    s: k.int("s")?,
                    stride: k.int_or("stride", 1)?,
                    pad: if k.map.contains_key("pad") { k.nonneg("pad")? } else { 0 },
                };
                if let Op::Conv2d { h, w, r, s, pad, .. } = op {
                    if h + 2 * pad < r || w + 2 * pad < s {
                        return Err(Error::Shape {
                            op: name,
                            msg: format!("filter {r}x{s} is larger than the padded input {}x{}", h + 2 * pad, w + 2 * pad),
                        });
                    }
                }
                op
            }
            "attention" => {
                let (hq, hkv, sq, skv) = (k.int("hq")?, k.int_or("hkv", k.int("hq")?)?, k.int("sq")?, k.int("skv")?);
                if hq % hkv != 0 {
                    return Err(Error::Shape { op: name, msg: format!("hq={hq} must be a multiple of hkv={hkv}") });
                }
                if sq > skv {
                    return Err(Error::Shape { op: name, msg: format!("sq={sq} new tokens cannot exceed skv={skv} keys") });
                }
                Op::Attention { b: k.int("b")?, hq, hkv, sq, skv, d: k.int("d")?, causal: k.flag("causal")? }
            }
            "elementwise" => {
                let func = k.map.get("fn").cloned().ok_or_else(|| Error::Shape {
                    op: name.clone(),
                    msg: format!("missing key 'fn' (expected keys: {})", expected_keys("elementwise")),
                })?;
                if !ELEMENTWISE_FNS.contains(&func.as_str()) {
                    return Err(Error::Shape {
                        op: name,
                        msg: format!("unknown fn '{func}'{}", {
                            let s = closest(&func, ELEMENTWISE_FNS.iter().copied());
                            if s.is_empty() { String::new() } else { format!(" (did you mean: {}?)", s.join(", ")) }
                        }),
                    });
                }
                let default_inputs = match func.as_str() {
                    "add" | "mul" | "div" | "pow" | "sub" | "where" => 2,
                    _ => 1,
                };
                Op::Elementwise { numel: k.int("numel")?, inputs: k.int_or("inputs", default_inputs)?, func }
            }
            "softmax" => Op::Softmax { rows: k.int("rows")?, cols: k.int("cols")? },
            "layernorm" => Op::Layernorm { rows: k.int("rows")?, cols: k.int("cols")? },
            "rmsnorm" => Op::Rmsnorm { rows: k.int("rows")?, cols: k.int("cols")? },
            "silu_mul" => Op::SiluMul { tokens: k.int("tokens")?, cols: k.int("cols")? },
            "rope" => {
                let hq = k.int("hq")?;
                Op::Rope { tokens: k.int("tokens")?, hq, hkv: k.int_or("hkv", hq)?, d: k.int("d")? }
            }
            "embedding" => Op::Embedding { tokens: k.int("tokens")?, dim: k.int("dim")?, vocab: k.int("vocab")? },
            "all_reduce" | "send_recv" => {
                let gpus = k.int("gpus")?;
                let nodes = k.int_or("nodes", 1)?;
                let gpn = k.int_or("gpus_per_node", gpus.div_ceil(nodes))?;
                if nodes > gpus {
                    return Err(Error::Shape { op: name, msg: format!("nodes={nodes} is more than gpus={gpus}: every node takes part with at least one GPU") });
                }
                if (nodes as u128) * (gpn as u128) < gpus as u128 {
                    return Err(Error::Shape {
                        op: name,
                        msg: format!("nodes={nodes} × gpus_per_node={gpn} is fewer than gpus={gpus}"),
                    });
                }
                let bytes = k.int("bytes")?;
                if name == "all_reduce" {
                    Op::AllReduce { bytes, gpus, nodes, gpus_per_node: gpn }
                } else {
                    Op::SendRecv { bytes, gpus, nodes, gpus_per_node: gpn }
                }
            }
            _ => unreachable!("checked against OP_NAMES"),
        };
        op.check_size()?;
        Ok(op)
    }

    /// Rejects sizes no GPU could hold or run: a tensor of more than `MAX_ELEMENTS`
    /// elements (2^48, hundreds of TB), more than `MAX_MACS` multiply-adds (2^60, most of
    /// an hour on the fastest GPU), more than `MAX_INPUTS` operands, a collective beyond
    /// `MAX_COLLECTIVE_BYTES` or `MAX_GPUS`. Every cost model relies on it: within these
    /// bounds no count it forms overflows.
    pub fn check_size(&self) -> Result<()> {
        let p = |xs: &[u64]| xs.iter().fold(1u128, |a, &x| a.saturating_mul(x as u128));
        let mut tensors: Vec<(&str, u128)> = vec![];
        let mut macs = 0u128;
        let mut counts: Vec<(&str, u64, u64)> = vec![];
        match *self {
            Op::Gemm { b, m, n, k, .. } => {
                tensors.extend([("A (b×m×k)", p(&[b, m, k])), ("B (b×k×n)", p(&[b, k, n])), ("C (b×m×n)", p(&[b, m, n]))]);
                macs = p(&[b, m, n, k]);
            }
            Op::QuantGemm { m, n, k, .. } => {
                tensors.extend([("A (m×k)", p(&[m, k])), ("B (k×n)", p(&[k, n])), ("C (m×n)", p(&[m, n]))]);
                macs = p(&[m, n, k]);
            }
            Op::Conv2d { n, c, h, w, k, r, s, stride, pad } => {
                let (hp, wp) = (h as u128 + 2 * pad as u128, w as u128 + 2 * pad as u128);
                tensors.extend([("input (n×c×h×w)", p(&[n, c, h, w])), ("filter (k×c×r×s)", p(&[k, c, r, s])), ("padded input", p(&[n, c]).saturating_mul(hp).saturating_mul(wp))]);
                let st = stride.max(1) as u128;
                let out = p(&[n, k]).saturating_mul(hp.saturating_sub(r as u128) / st + 1).saturating_mul(wp.saturating_sub(s as u128) / st + 1);
                tensors.push(("output", out));
                macs = out.saturating_mul(p(&[c, r, s]));
            }
            Op::Attention { b, hq, hkv, sq, skv, d, .. } => {
                // FlashAttention never holds the scores; the eager chain's score GEMMs are checked as GEMMs.
                tensors.extend([("q (b×hq×sq×d)", p(&[b, hq, sq, d])), ("k, v (b×hkv×skv×d)", p(&[b, hkv, skv, d]))]);
                macs = p(&[b, hq, sq, skv, d]);
            }
            Op::Elementwise { numel, inputs, .. } => {
                tensors.push(("numel", numel as u128));
                counts.push(("inputs", inputs, MAX_INPUTS));
            }
            Op::Softmax { rows, cols } | Op::Layernorm { rows, cols } | Op::Rmsnorm { rows, cols } => tensors.push(("rows×cols", p(&[rows, cols]))),
            Op::SiluMul { tokens, cols } => tensors.push(("tokens×2·cols", p(&[tokens, cols, 2]))),
            Op::Rope { tokens, hq, hkv, d } => tensors.push(("tokens×(hq+hkv)×d", p(&[tokens, d]).saturating_mul(hq as u128 + hkv as u128))),
            Op::Embedding { tokens, dim, vocab } => tensors.extend([("tokens×dim", p(&[tokens, dim])), ("vocab×dim", p(&[vocab, dim]))]),
            Op::AllReduce { bytes, gpus, nodes, gpus_per_node } | Op::SendRecv { bytes, gpus, nodes, gpus_per_node } => {
                counts.extend([("bytes", bytes, MAX_COLLECTIVE_BYTES), ("gpus", gpus, MAX_GPUS), ("nodes", nodes, MAX_GPUS), ("gpus_per_node", gpus_per_node, MAX_GPUS)]);
            }
        }
        let too_big = |msg: String| Err(Error::Shape { op: self.name().to_string(), msg });
        for (what, n) in tensors {
            if n > MAX_ELEMENTS as u128 {
                return too_big(format!("{what} has {n} elements, beyond any GPU (at most 2^48 = {MAX_ELEMENTS})"));
            }
        }
        if macs > MAX_MACS as u128 {
            return too_big(format!("{macs} multiply-adds, beyond any kernel (at most 2^60 = {MAX_MACS})"));
        }
        for (what, v, max) in counts {
            if v > max {
                return too_big(format!("{what}={v} is beyond any GPU system (at most {max})"));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Op::Gemm { .. } => "gemm",
            Op::QuantGemm { .. } => "quant_gemm",
            Op::Conv2d { .. } => "conv2d",
            Op::Attention { .. } => "attention",
            Op::Elementwise { .. } => "elementwise",
            Op::Softmax { .. } => "softmax",
            Op::Layernorm { .. } => "layernorm",
            Op::Rmsnorm { .. } => "rmsnorm",
            Op::SiluMul { .. } => "silu_mul",
            Op::Rope { .. } => "rope",
            Op::Embedding { .. } => "embedding",
            Op::AllReduce { .. } => "all_reduce",
            Op::SendRecv { .. } => "send_recv",
        }
    }

    /// Useful floating-point work (an FMA counts 2), for achieved TFLOP/s.
    pub fn flops(&self) -> f64 {
        match *self {
            Op::Gemm { b, m, n, k, .. } => 2.0 * (b * m * n) as f64 * k as f64,
            Op::QuantGemm { m, n, k, .. } => 2.0 * (m * n) as f64 * k as f64,
            Op::Conv2d { n, c, h, w, k, r, s, stride, pad } => {
                let (p, q) = conv_out(h, w, r, s, stride, pad);
                2.0 * (n * k) as f64 * (p * q) as f64 * (c * r * s) as f64
            }
            Op::Attention { b, hq, sq, skv, d, causal, .. } => 4.0 * (b * hq * d) as f64 * attended_pairs(sq, skv, causal),
            _ => 0.0,
        }
    }
}

/// Output height and width of a convolution.
pub fn conv_out(h: u64, w: u64, r: u64, s: u64, stride: u64, pad: u64) -> (u64, u64) {
    ((h + 2 * pad - r) / stride + 1, (w + 2 * pad - s) / stride + 1)
}

/// (query, key) pairs one head computes: all of them, or the causal lower triangle where
/// the `sq` new queries are the last `sq` of `skv` positions.
pub fn attended_pairs(sq: u64, skv: u64, causal: bool) -> f64 {
    let (sq, skv) = (sq as f64, skv as f64);
    if causal && sq > 1.0 {
        sq * (skv - sq) + sq * (sq + 1.0) / 2.0
    } else {
        sq * skv
    }
}

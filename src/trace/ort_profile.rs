//! ONNX Runtime profiles → canonical kernel rows.
//!
//! ONNX Runtime's profiler (`SessionOptions.enable_profiling`, or `profile` here) writes a
//! Chrome-trace JSON array. Per executed node it has one `cat: "Node"` event named
//! `<node>_kernel_time` with `dur` in µs and `args` giving `op_name`, `provider`,
//! `input_type_shape` and `output_type_shape` (`[{"float": [1, 3, 224, 224]}, …]`); each
//! `Session` event `model_run` spans one run. Other events (session initialisation, the
//! executor, `_fence_before`/`_fence_after` of older versions) are ignored.
//!
//! A node's time is the median over the profiled runs of its summed `dur` in that run; when
//! the profile holds two runs or more, the first is a warm-up and is dropped.
//!
//! Mapping (ONNX op → canonical `op`, the conventions of the ONNX importer and of the
//! inference lowering, so that a replay predicts what `benchmark` would for the same node):
//! - `Conv`, `FusedConv` → `conv2d` (`n,c,h,w` of the input, `k,r,s` of the filter; a
//!   grouped convolution as the lowering runs it, `n·g, c/g, k/g`, with `groups` in the
//!   tags; a 1-D convolution as a 1×L image). Stride and pad come from the node's
//!   attributes in the model file when the profile's node name is found there and the
//!   window is uniform; otherwise the smallest stride and pad that give the profiled output
//!   size, and when none does, the importer's explicit form (input cropped to the extent the
//!   output reads, pad 0). The tag `window` says which.
//! - `MatMul`, `FusedMatMul`, `Gemm`, `FusedGemm` → `gemm` (`m` folds the leading dims of
//!   A when B has no batch dims: a Linear; `bias=1` for a Gemm with C); transposes are read
//!   off the output shape.
//! - pointwise ops → `elementwise` with the importer's function class (`Erf` costs like
//!   `tanh`, comparisons like `sub`), `numel` = output elements, `inputs` = non-scalar
//!   inputs (one non-scalar operand of add/sub/mul/div/pow is the `_scalar` form);
//!   `BatchNormalization` → `elementwise mul` (inference folds it into a scale and shift),
//!   `Cast`, `Identity` copies and data movement (`Transpose`, `Concat`, `Slice`, `Split`,
//!   `Pad`, `Resize`, `Expand`, `Tile`, `Gather`, NCHWc `Reorder*`) → `elementwise copy` of
//!   the output; pools, `LRN` and reductions → `elementwise copy` of (in + out) / 2
//!   elements, as the lowering costs them; `Dropout` → `elementwise dropout`.
//! - `Gather` of rows of a 2-D float table by integer indices → `embedding`.
//! - `Softmax`, `LogSoftmax` → `softmax` (axis and the opset's flattening rule from the model
//!   file, else the last axis); `LayerNormalization` (and `SkipLayerNormalization`) →
//!   `layernorm`; `SimplifiedLayerNormalization`, `RMSNormalization` → `rmsnorm`;
//!   `InstanceNormalization`, `GroupNormalization` → `layernorm` over (n·groups) rows.
//! - anything else, views (`Reshape`, `Flatten`, `Squeeze`, `Unsqueeze`: no kernel in the
//!   simulator) and nodes on integer tensors only (shape arithmetic) keep a row with
//!   `op=onnx:<OpType>`, `shape=numel=<output elements>` and the reason in the `why` tag, so
//!   the trace still sums to the measured run; replay reports them as unknown ops.

use crate::error::{Error, Result};
use crate::graph::onnx::proto::{AttributeProto, ModelProto, NodeProto};
use crate::kernel::op::conv_out;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// A tensor in the profile: ONNX element type name and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorDesc {
    pub dtype: String,
    pub shape: Vec<u64>,
}

impl TensorDesc {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
    fn is_float(&self) -> bool {
        matches!(self.dtype.as_str(), "float" | "float16" | "bfloat16" | "double")
    }
    fn is_int(&self) -> bool {
        matches!(self.dtype.as_str(), "int64" | "int32" | "int16" | "int8" | "uint64" | "uint32" | "uint16" | "uint8")
    }
}

/// One node of the profiled graph, over the profiled runs.
#[derive(Debug, Clone)]
pub struct NodeProfile {
    /// The node name (the event name without `_kernel_time`).
    pub name: String,
    pub op: String,
    pub provider: String,
    pub inputs: Vec<TensorDesc>,
    pub outputs: Vec<TensorDesc>,
    /// Summed `dur` per profiled run it ran in, in µs.
    pub durs_us: Vec<f64>,
}

impl NodeProfile {
    /// Median over runs, in ms.
    pub fn measured_ms(&self) -> f64 {
        let mut v = self.durs_us.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let med = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        med / 1000.0
    }
}

/// A parsed profile: the nodes in execution order (of the last run).
#[derive(Debug, Clone)]
pub struct OrtProfile {
    pub nodes: Vec<NodeProfile>,
    /// Runs found in the profile, and how many of them were kept (the first of two or more
    /// is a warm-up).
    pub runs_found: usize,
    pub runs_kept: usize,
    /// Wall time of each kept run (`model_run` events), ms.
    pub run_ms: Vec<f64>,
}

fn bad(label: &str, msg: impl Into<String>) -> Error {
    Error::File { path: label.to_string(), msg: msg.into() }
}

/// `[{"float": [1, 3, 224, 224]}, …]` → tensors.
fn tensors(v: Option<&Value>) -> Vec<TensorDesc> {
    let Some(Value::Array(items)) = v else { return Vec::new() };
    items
        .iter()
        .filter_map(|t| {
            let (dtype, dims) = t.as_object()?.iter().next()?;
            let shape = dims.as_array()?.iter().map(|d| d.as_i64().map(|x| x.max(0) as u64)).collect::<Option<Vec<_>>>()?;
            Some(TensorDesc { dtype: dtype.clone(), shape })
        })
        .collect()
}

/// Parses the JSON text of an ONNX Runtime profile; `label` names it in errors.
pub fn parse(text: &str, label: &str) -> Result<OrtProfile> {
    let v: Value = serde_json::from_str(text).map_err(|e| bad(label, format!("not an ONNX Runtime profile (JSON: {e})")))?;
    let events = v.as_array().ok_or_else(|| bad(label, "not an ONNX Runtime profile: expected a JSON array of events"))?;
    let num = |e: &Value, k: &str| e.get(k).and_then(Value::as_f64);
    // Runs: the spans of the `model_run` session events, in time order.
    let mut runs: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e.get("cat").and_then(Value::as_str) == Some("Session") && e.get("name").and_then(Value::as_str) == Some("model_run"))
        .filter_map(|e| Some((num(e, "ts")?, num(e, "dur")?)))
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // (run index, ts, key, node) for every kernel event.
    struct Ev {
        run: usize,
        ts: f64,
        dur: f64,
        key: (String, String),
        node: NodeProfile,
    }
    let mut evs: Vec<Ev> = Vec::new();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for e in events {
        if e.get("cat").and_then(Value::as_str) != Some("Node") {
            continue;
        }
        let Some(name) = e.get("name").and_then(Value::as_str).and_then(|n| n.strip_suffix("_kernel_time")) else { continue };
        let args = e.get("args");
        let arg = |k: &str| args.and_then(|a| a.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
        let op = arg("op_name");
        let (Some(ts), Some(dur)) = (num(e, "ts"), num(e, "dur")) else { continue };
        let index = arg("node_index");
        let key = (if index.is_empty() { name.to_string() } else { index }, op.clone());
        let run = if runs.is_empty() {
            // No run events: the k-th time a node appears is run k.
            let k = seen.entry(key.clone()).or_insert(0);
            *k += 1;
            *k - 1
        } else {
            runs.iter().rposition(|(s, _)| *s <= ts).unwrap_or(0)
        };
        let node = NodeProfile {
            name: name.to_string(),
            op,
            provider: arg("provider"),
            inputs: tensors(args.and_then(|a| a.get("input_type_shape"))),
            outputs: tensors(args.and_then(|a| a.get("output_type_shape"))),
            durs_us: Vec::new(),
        };
        evs.push(Ev { run, ts, dur, key, node });
    }
    if evs.is_empty() {
        return Err(bad(label, "the profile has no node events (`<node>_kernel_time`): was it recorded with profiling on and at least one run?"));
    }
    let runs_found = if runs.is_empty() { evs.iter().map(|e| e.run + 1).max().unwrap_or(1) } else { runs.len() };
    let first_kept = usize::from(runs_found >= 2);
    let last = runs_found - 1;
    // Nodes in the order of the last run; per node, its summed time in each kept run.
    evs.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let mut order: Vec<(String, String)> = Vec::new();
    let mut per: HashMap<(String, String), (NodeProfile, BTreeMap<usize, f64>)> = HashMap::new();
    for e in evs.iter().filter(|e| e.run == last) {
        if !per.contains_key(&e.key) {
            order.push(e.key.clone());
            per.insert(e.key.clone(), (e.node.clone(), BTreeMap::new()));
        }
    }
    for e in evs.iter().filter(|e| e.run >= first_kept) {
        if let Some((_, d)) = per.get_mut(&e.key) {
            *d.entry(e.run).or_insert(0.0) += e.dur;
        }
    }
    let nodes = order
        .into_iter()
        .filter_map(|k| per.remove(&k))
        .map(|(mut n, d)| {
            n.durs_us = d.into_values().collect();
            n
        })
        .collect();
    let run_ms = runs.iter().skip(first_kept).map(|(_, d)| d / 1000.0).collect();
    Ok(OrtProfile { nodes, runs_found, runs_kept: runs_found - first_kept, run_ms })
}

/// What the model file says about its nodes: the opset and each named node's attributes.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub opset: Option<i64>,
    nodes: HashMap<String, NodeProto>,
}

impl ModelInfo {
    pub fn from_model(m: &ModelProto) -> ModelInfo {
        let opset = m.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map(|o| o.version);
        let mut nodes = HashMap::new();
        if let Some(g) = m.graph.as_ref() {
            for n in &g.node {
                if !n.name.is_empty() && n.op_type != "Constant" {
                    // Attributes only: tensors (Constant values) are not needed.
                    let slim = NodeProto { name: n.name.clone(), op_type: n.op_type.clone(), attribute: n.attribute.clone(), ..Default::default() };
                    nodes.insert(n.name.clone(), slim);
                }
            }
        }
        ModelInfo { opset, nodes }
    }

    fn node(&self, name: &str) -> Option<&NodeProto> {
        self.nodes.get(name)
    }
}

fn attr<'a>(n: Option<&'a NodeProto>, name: &str) -> Option<&'a AttributeProto> {
    n?.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(n: Option<&NodeProto>, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone()).filter(|v| !v.is_empty())
}

fn attr_int(n: Option<&NodeProto>, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i)
}

fn attr_str(n: Option<&NodeProto>, name: &str) -> Option<String> {
    attr(n, name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

/// One canonical kernel row.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonRow {
    pub gpu: String,
    pub op: String,
    pub dtype: String,
    pub shape: String,
    pub measured_ms: f64,
    pub source: String,
    pub tags: String,
    /// False for `onnx:<Op>` rows (no kernel model).
    pub mapped: bool,
    pub ort_op: String,
}

/// What a row carries besides the node: the device name per provider and the source.
pub struct RowContext<'a> {
    /// The `gpu` column for a node run by this provider.
    pub gpu_for: &'a dyn Fn(&str) -> String,
    pub source: &'a str,
    pub model: &'a str,
    /// Extra `k=v` tags appended to every row (e.g. the CPU model).
    pub extra_tags: &'a [(String, String)],
}

/// A tag value: no separators of the tag or shape syntax.
pub fn clean(s: &str) -> String {
    s.chars().map(|c| if matches!(c, ';' | '=' | ',' | '\n' | '\r' | '"') { '_' } else { c }).collect()
}

fn dims(s: &[u64]) -> String {
    if s.is_empty() {
        "scalar".into()
    } else {
        s.iter().map(u64::to_string).collect::<Vec<_>>().join("x")
    }
}

fn dtype_of(n: &NodeProfile) -> Option<&'static str> {
    let t = n.inputs.iter().chain(&n.outputs).find(|t| t.is_float() || t.dtype == "int8" || t.dtype == "uint8")?;
    Some(match t.dtype.as_str() {
        "float" => "fp32",
        "float16" => "fp16",
        "bfloat16" => "bf16",
        "double" => "fp64",
        _ => "int8",
    })
}

/// A mapped op: canonical op name, shape string, extra tags.
type Mapped = (&'static str, String, Vec<(&'static str, String)>);

/// Converts every profiled node into one canonical row (see the module docs for the rules).
pub fn to_rows(p: &OrtProfile, info: Option<&ModelInfo>, ctx: &RowContext) -> Vec<CanonRow> {
    p.nodes
        .iter()
        .map(|n| {
            let attrs = info.and_then(|i| i.node(&n.name));
            let opset = info.and_then(|i| i.opset);
            let dtype = dtype_of(n);
            let mapped = match dtype {
                Some("fp64") => Err("float64 tensors (no fp64 kernel model)".to_string()),
                Some(_) => map_node(n, attrs, opset),
                None => Err("integer tensors only (shape arithmetic)".to_string()),
            };
            let mut tags: Vec<(String, String)> = vec![
                ("model".into(), clean(ctx.model)),
                ("node".into(), clean(&n.name)),
                ("ort_op".into(), clean(&n.op)),
                ("provider".into(), clean(&n.provider)),
                ("runs".into(), n.durs_us.len().to_string()),
                ("in".into(), n.inputs.iter().map(|t| dims(&t.shape)).collect::<Vec<_>>().join("|")),
                ("out".into(), n.outputs.iter().map(|t| dims(&t.shape)).collect::<Vec<_>>().join("|")),
            ];
            let (op, shape, ok) = match mapped {
                Ok((op, shape, extra)) => {
                    tags.extend(extra.into_iter().map(|(k, v)| (k.to_string(), v)));
                    (op.to_string(), shape, true)
                }
                Err(why) => {
                    tags.push(("why".into(), clean(&why)));
                    let numel: u64 = n.outputs.iter().map(TensorDesc::numel).sum();
                    (format!("onnx:{}", clean(&n.op)), format!("numel={numel}"), false)
                }
            };
            tags.extend(ctx.extra_tags.iter().map(|(k, v)| (k.clone(), clean(v))));
            CanonRow {
                gpu: (ctx.gpu_for)(&n.provider),
                op,
                dtype: dtype.map(str::to_string).unwrap_or_else(|| n.inputs.first().or(n.outputs.first()).map(|t| t.dtype.clone()).unwrap_or_default()),
                shape,
                measured_ms: n.measured_ms(),
                source: ctx.source.to_string(),
                tags: tags.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"),
                mapped: ok,
                ort_op: n.op.clone(),
            }
        })
        .collect()
}

/// The canonical CSV of the rows (`gpu,op,dtype,shape,timing,measured_ms,source,tags`).
pub fn to_csv(rows: &[CanonRow]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(crate::trace::canonical::KERNEL_COLUMNS);
    for r in rows {
        let ms = format!("{:.6}", r.measured_ms);
        let _ = w.write_record([r.gpu.as_str(), &r.op, &r.dtype, &r.shape, "kernel", &ms, &r.source, &r.tags]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn input(n: &NodeProfile, i: usize) -> std::result::Result<&TensorDesc, String> {
    n.inputs.get(i).ok_or_else(|| format!("the profile gives no input {i}"))
}

fn output(n: &NodeProfile) -> std::result::Result<&TensorDesc, String> {
    n.outputs.first().ok_or_else(|| "the profile gives no output".to_string())
}

fn ew(func: &str, numel: u64, inputs: u64) -> std::result::Result<Mapped, String> {
    if numel == 0 {
        return Err("empty tensor".into());
    }
    Ok(("elementwise", format!("fn={func};numel={numel};inputs={inputs}"), vec![]))
}

fn map_node(n: &NodeProfile, attrs: Option<&NodeProto>, opset: Option<i64>) -> std::result::Result<Mapped, String> {
    let op = n.op.as_str();
    match op {
        "Conv" | "FusedConv" => conv(n, attrs),
        "MatMul" | "FusedMatMul" => matmul(n),
        "Gemm" | "FusedGemm" => gemm(n),
        "BatchNormalization" => ew("mul", output(n)?.numel(), 1),
        "Softmax" | "LogSoftmax" => {
            let x = &input(n, 0)?.shape;
            let old = opset.is_some_and(|o| o < 13);
            let ax = axis(attr_int(attrs, "axis").unwrap_or(if old { 1 } else { -1 }), x.len())?;
            let cols = if old { x[ax..].iter().product() } else { x[ax] };
            rows_cols("softmax", x, cols)
        }
        "LayerNormalization" | "SkipLayerNormalization" | "SimplifiedLayerNormalization" | "SkipSimplifiedLayerNormalization" | "RMSNormalization" => {
            let x = &input(n, 0)?.shape;
            let ax = axis(attr_int(attrs, "axis").unwrap_or(-1), x.len())?;
            let kind = if op.contains("Simplified") || op == "RMSNormalization" { "rmsnorm" } else { "layernorm" };
            rows_cols(kind, x, x[ax..].iter().product())
        }
        "InstanceNormalization" | "GroupNormalization" => {
            let x = &input(n, 0)?.shape;
            if x.len() < 3 {
                return Err(format!("input {x:?} is not a batch of feature maps"));
            }
            let groups = if op == "GroupNormalization" { attr_int(attrs, "num_groups").map(|g| g.max(1) as u64).ok_or("num_groups unknown (node not found in the model)")? } else { x[1] };
            let rows = x[0] * groups;
            rows_cols("layernorm", x, x.iter().product::<u64>() / rows.max(1))
        }
        "MaxPool" | "AveragePool" | "LpPool" | "GlobalAveragePool" | "GlobalMaxPool" | "GlobalLpPool" | "LRN" | "ReduceMean" | "ReduceSum" | "ReduceMax"
        | "ReduceMin" | "ReduceProd" | "ReduceL1" | "ReduceL2" | "ReduceLogSum" | "ReduceLogSumExp" | "ReduceSumSquare" | "ArgMax" | "ArgMin" => {
            let (i, o) = (input(n, 0)?.numel(), output(n)?.numel());
            ew("copy", (i + o).div_ceil(2), 1)
        }
        "Gather" => {
            let (data, idx) = (input(n, 0)?, input(n, 1)?);
            if data.shape.len() == 2 && data.is_float() && idx.is_int() && attr_int(attrs, "axis").unwrap_or(0) == 0 {
                let tokens = idx.numel().max(1);
                Ok(("embedding", format!("tokens={tokens};dim={};vocab={}", data.shape[1], data.shape[0]), vec![]))
            } else {
                ew("copy", output(n)?.numel(), 1)
            }
        }
        "Transpose" | "Concat" | "Slice" | "Split" | "Pad" | "Resize" | "Upsample" | "Expand" | "Tile" | "GatherElements" | "GatherND" | "ReorderInput"
        | "ReorderOutput" | "Cast" | "Identity" | "DepthToSpace" | "SpaceToDepth" => {
            ew("copy", n.outputs.iter().map(TensorDesc::numel).sum(), 1)
        }
        "Dropout" => ew("dropout", output(n)?.numel(), 1),
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => Err("a view: no kernel in the simulator".into()),
        "FastGelu" | "BiasGelu" | "QuickGelu" => ew("gelu", output(n)?.numel(), 1),
        "BiasAdd" => ew("add", output(n)?.numel(), 2),
        _ => match crate::graph::onnx::elementwise_fn(op) {
            Some(func) => {
                let big = n.inputs.iter().filter(|t| t.numel() > 1).count() as u64;
                let func = if n.inputs.len() == 2 && big == 1 && matches!(func, "add" | "sub" | "mul" | "div" | "pow") { format!("{func}_scalar") } else { func.to_string() };
                ew(&func, output(n)?.numel(), big.max(1))
            }
            None => Err("no kernel model for this op".into()),
        },
    }
}

fn axis(a: i64, rank: usize) -> std::result::Result<usize, String> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn rows_cols(kind: &'static str, x: &[u64], cols: u64) -> std::result::Result<Mapped, String> {
    let numel: u64 = x.iter().product();
    if cols == 0 || numel == 0 {
        return Err("empty tensor".into());
    }
    Ok((kind, format!("rows={};cols={cols}", numel / cols), vec![]))
}

fn matmul(n: &NodeProfile) -> std::result::Result<Mapped, String> {
    let (a, y) = (&input(n, 0)?.shape, &output(n)?.shape);
    let Some(b) = n.inputs.get(1).map(|t| &t.shape) else {
        // A constant B that the CPU kernel pre-packed is not in the profile: a Linear.
        let (k, nn) = (*a.last().ok_or("a scalar operand")?, *y.last().ok_or("a scalar output")?);
        let numel: u64 = y.iter().product();
        return Ok(("gemm", format!("b=1;m={};n={nn};k={k};bias=0", numel / nn.max(1)), vec![("b_input", "prepacked".into())]));
    };
    if a.is_empty() || b.is_empty() || y.len() < usize::from(a.len() > 1) + usize::from(b.len() > 1) {
        return Err(format!("shapes {a:?} · {b:?} → {y:?} are not a matrix product"));
    }
    let a2: Vec<u64> = if a.len() == 1 { vec![1, a[0]] } else { a.clone() };
    let b2: Vec<u64> = if b.len() == 1 { vec![b[0], 1] } else { b.clone() };
    // The output says which of A's last two dims is m (FusedMatMul may transpose).
    let (a0, a1) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (b0, b1) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    let m = if a.len() > 1 { y[y.len() - if b.len() > 1 { 2 } else { 1 }] } else { 1 };
    let nn = if b.len() > 1 { y[y.len() - 1] } else { 1 };
    let k = if a0 == m { a1 } else { a0 };
    if !((b0 == k && b1 == nn) || (b1 == k && b0 == nn)) {
        return Err(format!("shapes {a:?} · {b:?} → {y:?} are not a matrix product"));
    }
    let batch_a: u64 = a2[..a2.len() - 2].iter().product();
    let batch_b: u64 = b2[..b2.len() - 2].iter().product();
    let (bt, m_eff) = if batch_b == 1 { (1, batch_a * m) } else { (batch_a.max(batch_b), m) };
    Ok(("gemm", format!("b={bt};m={m_eff};n={nn};k={k};bias=0"), vec![]))
}

/// `Y = A·B (+ C)`. The CPU kernel pre-packs a constant B, and the profile then lists
/// only A and C: B is the 2-D input whose dims are {k, n}, and any other input is C.
fn gemm(n: &NodeProfile) -> std::result::Result<Mapped, String> {
    let (a, y) = (&input(n, 0)?.shape, &output(n)?.shape);
    if a.len() != 2 || y.len() != 2 {
        return Err(format!("Gemm needs 2-D operands, got {a:?} → {y:?}"));
    }
    let (m, nn) = (y[0], y[1]);
    let k = if a[0] == m { a[1] } else { a[0] };
    let is_b = |t: &TensorDesc| t.shape.len() == 2 && ((t.shape[0] == k && t.shape[1] == nn) || (t.shape[0] == nn && t.shape[1] == k));
    let has_b = n.inputs.get(1).is_some_and(is_b);
    let bias = u8::from(n.inputs.len() > 1 + usize::from(has_b));
    let tags = if has_b { vec![] } else { vec![("b_input", "prepacked".to_string())] };
    Ok(("gemm", format!("b=1;m={m};n={nn};k={k};bias={bias}"), tags))
}

/// The smallest stride, then pad (< filter), giving output `p` from input `h` and filter `r`
/// in both dimensions.
fn derive_window(h: u64, w: u64, r: u64, s: u64, p: u64, q: u64) -> Option<(u64, u64)> {
    (1..=h.max(w).max(1)).find_map(|st| (0..r.max(s).max(1)).find(|&pad| h + 2 * pad >= r && w + 2 * pad >= s && conv_out(h, w, r, s, st, pad) == (p, q)).map(|pad| (st, pad)))
}

fn conv(n: &NodeProfile, attrs: Option<&NodeProto>) -> std::result::Result<Mapped, String> {
    let (x, wt, y) = (&input(n, 0)?.shape, &input(n, 1)?.shape, &output(n)?.shape);
    if x.len() != wt.len() || y.len() != x.len() || !(3..=4).contains(&x.len()) {
        return Err(format!("input {x:?}, filter {wt:?} → {y:?} are not a 1-D or 2-D convolution"));
    }
    let (batch, c, k) = (x[0], x[1], wt[0]);
    if wt[1] == 0 || !c.is_multiple_of(wt[1]) || y[1] != k {
        return Err(format!("filter {wt:?} does not fit input {x:?} → {y:?}"));
    }
    let groups = c / wt[1];
    if !k.is_multiple_of(groups) {
        return Err(format!("{k} filters do not split into {groups} groups"));
    }
    let (h, wd, r, s, p, q) = if x.len() == 4 { (x[2], x[3], wt[2], wt[3], y[2], y[3]) } else { (1, x[2], 1, wt[2], 1, y[2]) };
    // The node's own window, when the model file has it and it is uniform.
    let from_attrs = attrs.and_then(|a| {
        let sp = x.len() - 2;
        let strides = attr_ints(Some(a), "strides").unwrap_or(vec![1; sp]);
        let dil = attr_ints(Some(a), "dilations").unwrap_or(vec![1; sp]);
        let pads = attr_ints(Some(a), "pads").unwrap_or(vec![0; 2 * sp]);
        let auto = attr_str(Some(a), "auto_pad").unwrap_or_default();
        let uniform = strides.iter().all(|&v| v == strides[0]) && dil.iter().all(|&d| d == 1) && pads.iter().all(|&v| v == pads[0]);
        let st = u64::try_from(strides[0]).ok().filter(|&v| v > 0)?;
        let pad = u64::try_from(pads[0]).ok()?;
        let ok = (auto.is_empty() || auto == "NOTSET") && uniform && h + 2 * pad >= r && wd + 2 * pad >= s && conv_out(h, wd, r, s, st, pad) == (p, q);
        ok.then_some((st, pad))
    });
    let (window, stride, pad, h, wd) = if let Some((st, pad)) = from_attrs {
        ("model", st, pad, h, wd)
    } else if let Some((st, pad)) = derive_window(h, wd, r, s, p, q) {
        ("derived", st, pad, h, wd)
    } else {
        // One stride and one symmetric pad cannot say this window (dilation, uneven
        // strides or pads): read the extent an explicitly padded convolution reads.
        let st = attr_ints(attrs, "strides").and_then(|v| v.first().copied()).and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0).unwrap_or(1);
        ("explicit", st, 0, (p - 1) * st + r, (q - 1) * st + s)
    };
    let g = groups;
    let shape = format!("n={};c={};h={h};w={wd};k={};r={r};s={s};stride={stride};pad={pad}", batch * g, c / g, k / g);
    let mut tags = vec![("window", window.to_string())];
    if g > 1 {
        tags.push(("groups", g.to_string()));
    }
    if n.inputs.len() >= 3 {
        tags.push(("bias", "1".into()));
    }
    Ok(("conv2d", shape, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, ins: &[&[u64]], outs: &[&[u64]]) -> NodeProfile {
        let t = |s: &&[u64]| TensorDesc { dtype: "float".into(), shape: s.to_vec() };
        NodeProfile { name: "n".into(), op: op.into(), provider: "CPUExecutionProvider".into(), inputs: ins.iter().map(t).collect(), outputs: outs.iter().map(t).collect(), durs_us: vec![10.0] }
    }

    #[test]
    fn conv_windows_from_shapes() {
        let m = map_node(&node("Conv", &[&[1, 3, 224, 224], &[64, 3, 7, 7], &[64]], &[&[1, 64, 112, 112]]), None, None).unwrap();
        assert_eq!(m.1, "n=1;c=3;h=224;w=224;k=64;r=7;s=7;stride=2;pad=3");
        let m = map_node(&node("Conv", &[&[1, 96, 27, 27], &[256, 48, 5, 5]], &[&[1, 256, 27, 27]]), None, None).unwrap();
        assert_eq!(m.1, "n=2;c=48;h=27;w=27;k=128;r=5;s=5;stride=1;pad=2");
        assert!(m.2.contains(&("groups", "2".to_string())));
    }

    #[test]
    fn matmul_folds_a_linear_and_keeps_a_batched_product() {
        let m = map_node(&node("MatMul", &[&[2, 16, 64], &[64, 192]], &[&[2, 16, 192]]), None, None).unwrap();
        assert_eq!(m.1, "b=1;m=32;n=192;k=64;bias=0");
        let m = map_node(&node("MatMul", &[&[8, 16, 16], &[8, 16, 64]], &[&[8, 16, 64]]), None, None).unwrap();
        assert_eq!(m.1, "b=8;m=16;n=64;k=16;bias=0");
        let m = map_node(&node("Gemm", &[&[1, 25088], &[4096, 25088], &[4096]], &[&[1, 4096]]), None, None).unwrap();
        assert_eq!(m.1, "b=1;m=1;n=4096;k=25088;bias=1");
        // The CPU kernel's pre-packed weight is missing from the profile.
        let m = map_node(&node("Gemm", &[&[1, 9216], &[4096]], &[&[1, 4096]]), None, None).unwrap();
        assert_eq!(m.1, "b=1;m=1;n=4096;k=9216;bias=1");
        let m = map_node(&node("MatMul", &[&[4, 16, 64]], &[&[4, 16, 256]]), None, None).unwrap();
        assert_eq!(m.1, "b=1;m=64;n=256;k=64;bias=0");
    }

    #[test]
    fn warm_up_run_is_dropped_and_views_are_unmapped() {
        let ev = |name: &str, op: &str, ts: f64, dur: f64| {
            serde_json::json!({"cat": "Node", "name": format!("{name}_kernel_time"), "ts": ts, "dur": dur,
                "args": {"op_name": op, "provider": "CPUExecutionProvider", "input_type_shape": [{"float": [1, 8]}], "output_type_shape": [{"float": [1, 8]}]}})
        };
        let run = |ts: f64| serde_json::json!({"cat": "Session", "name": "model_run", "ts": ts, "dur": 100.0});
        let v = serde_json::json!([run(0.0), ev("a", "Relu", 1.0, 50.0), ev("b", "Reshape", 2.0, 1.0), run(200.0), ev("a", "Relu", 201.0, 10.0), ev("b", "Reshape", 202.0, 1.0), run(400.0), ev("a", "Relu", 401.0, 20.0), ev("b", "Reshape", 402.0, 1.0)]);
        let p = parse(&v.to_string(), "t.json").unwrap();
        assert_eq!((p.runs_found, p.runs_kept), (3, 2));
        assert_eq!(p.nodes[0].durs_us, vec![10.0, 20.0]);
        assert!((p.nodes[0].measured_ms() - 0.015).abs() < 1e-12);
        let gpu = |_: &str| "cpu".to_string();
        let rows = to_rows(&p, None, &RowContext { gpu_for: &gpu, source: "s", model: "m", extra_tags: &[] });
        assert_eq!((rows[0].op.as_str(), rows[0].shape.as_str()), ("elementwise", "fn=relu;numel=8;inputs=1"));
        assert_eq!(rows[1].op, "onnx:Reshape");
        assert!(!rows[1].mapped && rows[1].tags.contains("why=a view"));
    }

    #[test]
    fn not_a_profile_is_an_error() {
        for bad in ["", "{}", "[1, 2]", "[{\"cat\": \"Session\", \"name\": \"model_run\", \"ts\": 0, \"dur\": 1}]"] {
            let e = parse(bad, "p.json").unwrap_err().to_string();
            assert!(e.starts_with("p.json: "), "{e}");
        }
    }
}

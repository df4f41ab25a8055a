//! The operator graph: what a model computes, as framework-level ops with shapes. Every
//! frontend (the model zoo, HuggingFace `config.json`, ONNX) writes one; the lowering
//! (`crate::lower`) reads it and knows nothing about where it came from.
//!
//! Invariants: nodes are stored in a valid execution order (every input of a node is a
//! graph input, a weight, or the output of an earlier node); every tensor has a concrete
//! shape; the graph carries no precision — the lowering applies one — except that index
//! tensors (token ids) are marked as such.

pub mod hf_config;
pub mod onnx;
pub mod transformer;
pub mod vision;
pub mod zoo;

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;

pub type TensorId = usize;

/// What a tensor is, for memory accounting and the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Fed by the user each step (token ids, images).
    Input,
    /// A parameter: counted in `params`, gets a gradient and optimizer state in training.
    Weight,
    /// Produced by a node.
    Activation,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub role: Role,
    /// Integer indices (token ids, positions): 8 bytes per element whatever the precision.
    pub index: bool,
}

impl Tensor {
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A framework-level operator with the sizes its cost depends on. Shapes follow the
/// kernel conventions of `crate::kernel::Op` so the lowering is a direct mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GraphOp {
    /// `C[b] = A[b] (m×k) · B[b] (k×n)` (+ bias over n). A weight input makes it a
    /// Linear/Gemm layer; two activations make it a batched matmul (attention scores).
    MatMul { b: u64, m: u64, n: u64, k: u64, bias: bool },
    /// NCHW convolution; `groups > 1` for grouped and depthwise convolutions.
    Conv2d { n: u64, c: u64, h: u64, w: u64, k: u64, r: u64, s: u64, stride: u64, pad: u64, groups: u64, bias: bool },
    /// Scaled dot-product attention over `b` sequences: `sq` queries against `skv` keys,
    /// `hq` query heads sharing `hkv` key/value heads. The lowering picks a fused kernel
    /// (FlashAttention) or the eager matmul → mask → softmax → matmul chain.
    Attention { b: u64, hq: u64, hkv: u64, sq: u64, skv: u64, d: u64, causal: bool },
    /// Pointwise work over `numel` output elements reading `inputs` tensors; `func` is one
    /// of `crate::kernel::op::ELEMENTWISE_FNS`.
    Elementwise { func: String, numel: u64, inputs: u64 },
    Softmax { rows: u64, cols: u64 },
    LayerNorm { rows: u64, cols: u64 },
    RmsNorm { rows: u64, cols: u64 },
    /// Inference batch norm folds into a scale and shift; training computes statistics.
    BatchNorm { numel: u64, channels: u64 },
    /// Group norm (diffusion UNets): statistics over `rows` groups of `cols` elements.
    GroupNorm { rows: u64, cols: u64 },
    Embedding { tokens: u64, dim: u64, vocab: u64 },
    Rope { tokens: u64, hq: u64, hkv: u64, d: u64 },
    SiluMul { tokens: u64, cols: u64 },
    /// Max/average pooling and other windowed or global reductions: reads `numel_in`,
    /// writes `numel_out`.
    Pool { numel_in: u64, numel_out: u64 },
    /// Reductions over an axis (mean, sum, argmax, top-k routing).
    Reduce { numel_in: u64, numel_out: u64 },
    /// Data movement that materialises a new tensor: transpose, concat, slice, gather,
    /// resize, pad.
    Copy { numel: u64 },
    /// Reshape, flatten, squeeze, a non-materialising slice: no kernel.
    View,
    /// Sum of `numel` partial results across the tensor-parallel group.
    AllReduce { numel: u64 },
}

impl GraphOp {
    /// Forward floating-point work (a multiply-add counts 2).
    pub fn flops(&self) -> f64 {
        match *self {
            GraphOp::MatMul { b, m, n, k, bias } => 2.0 * (b * m * n) as f64 * k as f64 + if bias { (b * m * n) as f64 } else { 0.0 },
            GraphOp::Conv2d { n, c, h, w, k, r, s, stride, pad, groups, bias } => {
                let (p, q) = crate::kernel::op::conv_out(h, w, r, s, stride, pad);
                let out = (n * k * p * q) as f64;
                2.0 * out * (c / groups.max(1) * r * s) as f64 + if bias { out } else { 0.0 }
            }
            GraphOp::Attention { b, hq, sq, skv, d, causal, .. } => {
                4.0 * (b * hq * d) as f64 * crate::kernel::op::attended_pairs(sq, skv, causal)
            }
            _ => 0.0,
        }
    }

    /// The kind shown in breakdowns.
    pub fn kind(&self) -> &'static str {
        match self {
            GraphOp::MatMul { .. } => "matmul",
            GraphOp::Conv2d { .. } => "conv2d",
            GraphOp::Attention { .. } => "attention",
            GraphOp::Elementwise { .. } => "elementwise",
            GraphOp::Softmax { .. } => "softmax",
            GraphOp::LayerNorm { .. } => "layernorm",
            GraphOp::RmsNorm { .. } => "rmsnorm",
            GraphOp::BatchNorm { .. } => "batchnorm",
            GraphOp::GroupNorm { .. } => "groupnorm",
            GraphOp::Embedding { .. } => "embedding",
            GraphOp::Rope { .. } => "rope",
            GraphOp::SiluMul { .. } => "silu_mul",
            GraphOp::Pool { .. } => "pool",
            GraphOp::Reduce { .. } => "reduce",
            GraphOp::Copy { .. } => "copy",
            GraphOp::View => "view",
            GraphOp::AllReduce { .. } => "all_reduce",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Unique, hierarchical (`layers.3.attn.q_proj`), for timelines and breakdowns.
    pub name: String,
    pub op: GraphOp,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// A model as an operator graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Graph {
    pub name: String,
    pub family: String,
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    /// Tensors the model returns (kept alive to the end).
    pub outputs: Vec<TensorId>,
    /// Things a frontend could not represent exactly (an approximated op, say), shown to
    /// the user; unsupported ops are errors, never silently dropped.
    pub warnings: Vec<String>,
    /// Node ranges that run several times in a row with the same weights (a diffusion
    /// pipeline's denoising steps): stored once, simulated as often as they run.
    pub repeats: Vec<Repeat>,
}

/// `nodes` run `times` times in a row; each run reads the previous run's outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repeat {
    pub nodes: std::ops::Range<usize>,
    pub times: u64,
}

impl Graph {
    pub fn new(name: impl Into<String>, family: impl Into<String>) -> Graph {
        Graph { name: name.into(), family: family.into(), ..Graph::default() }
    }

    fn push_tensor(&mut self, name: impl Into<String>, shape: Vec<u64>, role: Role, index: bool) -> TensorId {
        self.tensors.push(Tensor { name: name.into(), shape, role, index });
        self.tensors.len() - 1
    }

    /// A user-fed input (`index` for integer ids).
    pub fn input(&mut self, name: impl Into<String>, shape: Vec<u64>, index: bool) -> TensorId {
        self.push_tensor(name, shape, Role::Input, index)
    }

    /// A parameter tensor.
    pub fn weight(&mut self, name: impl Into<String>, shape: Vec<u64>) -> TensorId {
        self.push_tensor(name, shape, Role::Weight, false)
    }

    /// Appends a node producing one activation of `out_shape`; returns that tensor.
    pub fn node(&mut self, name: impl Into<String>, op: GraphOp, inputs: &[TensorId], out_shape: Vec<u64>) -> TensorId {
        let name = name.into();
        let out = self.push_tensor(name.clone(), out_shape, Role::Activation, false);
        self.nodes.push(Node { name, op, inputs: inputs.to_vec(), outputs: vec![out] });
        out
    }

    /// Appends a node with several (or no) outputs already created by the caller.
    pub fn node_multi(&mut self, name: impl Into<String>, op: GraphOp, inputs: &[TensorId], outputs: Vec<TensorId>) {
        self.nodes.push(Node { name: name.into(), op, inputs: inputs.to_vec(), outputs });
    }

    /// An activation tensor not yet produced (for `node_multi`).
    pub fn activation(&mut self, name: impl Into<String>, shape: Vec<u64>) -> TensorId {
        self.push_tensor(name, shape, Role::Activation, false)
    }

    /// Appends `other` (a sub-model: a text encoder, a UNet step) after this graph's
    /// nodes, prefixing its names; returns the map from `other`'s tensor ids to ours so
    /// the caller can connect it. Its outputs stay outputs.
    pub fn append(&mut self, other: Graph, prefix: &str) -> Vec<TensorId> {
        let base = self.tensors.len();
        let node_base = self.nodes.len();
        self.repeats.extend(other.repeats.iter().map(|r| Repeat { nodes: r.nodes.start + node_base..r.nodes.end + node_base, times: r.times }));
        let map: Vec<TensorId> = (0..other.tensors.len()).map(|i| base + i).collect();
        for mut t in other.tensors {
            t.name = format!("{prefix}{}", t.name);
            self.tensors.push(t);
        }
        for n in other.nodes {
            self.nodes.push(Node {
                name: format!("{prefix}{}", n.name),
                op: n.op,
                inputs: n.inputs.iter().map(|&i| map[i]).collect(),
                outputs: n.outputs.iter().map(|&o| map[o]).collect(),
            });
        }
        self.outputs.extend(other.outputs.iter().map(|&o| map[o]));
        self.warnings.extend(other.warnings);
        map
    }

    pub fn shape(&self, t: TensorId) -> &[u64] {
        &self.tensors[t].shape
    }

    /// Number of parameters (elements of weight tensors).
    pub fn params(&self) -> u64 {
        self.tensors.iter().filter(|t| t.role == Role::Weight).map(Tensor::numel).sum()
    }

    /// How many times node `i` runs in one pass.
    pub fn runs_of(&self, i: usize) -> u64 {
        self.repeats.iter().filter(|r| r.nodes.contains(&i)).map(|r| r.times).product()
    }

    /// Forward floating-point work of one pass (repeated nodes counted each time).
    pub fn flops(&self) -> f64 {
        self.nodes.iter().enumerate().map(|(i, n)| n.op.flops() * self.runs_of(i) as f64).sum()
    }

    /// Node count and FLOPs per op kind, for `load-model`.
    pub fn op_breakdown(&self) -> BTreeMap<&'static str, (u64, f64)> {
        let mut m: BTreeMap<&'static str, (u64, f64)> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let runs = self.runs_of(i);
            let e = m.entry(n.op.kind()).or_default();
            e.0 += runs;
            e.1 += n.op.flops() * runs as f64;
        }
        m
    }

    /// Checks the invariants: ids in range, inputs defined before use, one producer per
    /// activation. Frontends call it before handing a graph on.
    pub fn check(&self) -> Result<()> {
        for r in &self.repeats {
            if r.nodes.is_empty() || r.nodes.end > self.nodes.len() || r.times == 0 {
                return Err(Error::Usage(format!("model '{}': repeat of nodes {:?} × {} is not valid", self.name, r.nodes, r.times)));
            }
        }
        let mut produced = vec![false; self.tensors.len()];
        for (i, t) in self.tensors.iter().enumerate() {
            if t.role != Role::Activation {
                produced[i] = true;
            }
            if t.shape.contains(&0) {
                return Err(Error::Usage(format!("model '{}': tensor '{}' has an empty dimension {:?}", self.name, t.name, t.shape)));
            }
        }
        for n in &self.nodes {
            for &i in &n.inputs {
                if i >= self.tensors.len() || !produced[i] {
                    return Err(Error::Usage(format!("model '{}': node '{}' reads a tensor before it is produced", self.name, n.name)));
                }
            }
            for &o in &n.outputs {
                if o >= self.tensors.len() || self.tensors[o].role != Role::Activation || produced[o] {
                    return Err(Error::Usage(format!("model '{}': node '{}' writes tensor {o} twice or writes a non-activation", self.name, n.name)));
                }
                produced[o] = true;
            }
        }
        Ok(())
    }
}

/// A model named on the command line: an existing file or folder (ONNX by its
/// extension, else a HuggingFace `config.json`), a model id found in the local HuggingFace
/// cache (`org/name`), or a zoo name or alias.
pub fn load_model(spec: &str, wl: transformer::Workload) -> Result<Graph> {
    load_model_tp(spec, wl, 1)
}

/// As `load_model`, one GPU's shard under `tp`-way tensor parallelism (transformers only).
pub fn load_model_tp(spec: &str, wl: transformer::Workload, tp: u64) -> Result<Graph> {
    let no_tp = |what: &str| Err(Error::Usage(format!("{spec}: tensor parallelism (--tp {tp}) applies to transformer models, not {what}")));
    let hf = |mut m: hf_config::HfModel| {
        for t in &mut m.towers {
            t.config.tp = tp;
        }
        m.build(wl)
    };
    let path = std::path::Path::new(spec);
    if path.exists() {
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
            if tp > 1 {
                return no_tp("ONNX graphs");
            }
            return onnx::load(path, wl.batch);
        }
        return hf(hf_config::load(path)?);
    }
    let file_like = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx") || e.eq_ignore_ascii_case("json"));
    if file_like {
        return Err(Error::Io { path: path.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") });
    }
    if spec.contains('/') {
        if let Ok(found) = hf_config::resolve(spec) {
            return hf(hf_config::load(&found)?);
        }
    }
    let mut m = zoo::find(spec)?;
    match &mut m.recipe {
        zoo::Recipe::Transformer(c) => c.tp = tp,
        zoo::Recipe::Clip { text, vision, .. } => {
            text.tp = tp;
            vision.tp = tp;
        }
        zoo::Recipe::Vision { .. } if tp > 1 => return no_tp("convolutional or diffusion models"),
        zoo::Recipe::Vision { .. } => {}
    }
    m.build(wl)
}

/// The sequence length to use when the user gives none: the context for encoders (at
/// most 512), 2048 tokens for decoders (or their context if shorter), 1 for models
/// without a sequence.
pub fn default_seq_len(spec: &str) -> Option<u64> {
    let path = std::path::Path::new(spec);
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
        return Some(1);
    }
    let hf = if path.exists() { hf_config::load(path).ok() } else if spec.contains('/') { hf_config::resolve(spec).ok().and_then(|p| hf_config::load(&p).ok()) } else { None };
    if let Some(m) = hf {
        let max = m.max_positions();
        return Some(if max == 0 { 512 } else { max.min(2048) });
    }
    zoo::find(spec).ok().map(|m| m.default_seq_len())
}

//! Operator graph → kernel DAG: which GPU kernels a framework launches for each op, in
//! which order, at which precision, in which execution mode, forward and (for training)
//! backward and the optimizer step.
//!
//! Invariants: kernels are in host issue order (the order an eager framework launches
//! them), every edge points from an earlier kernel to a later one, and each kernel's op is
//! a `crate::kernel::Op` the cost models accept. Nothing here knows a GPU.

pub mod memory;

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphOp, Role, TensorId};
use crate::kernel::{Dtype, Op};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use std::collections::HashMap;

/// Numeric precision of a run: the compute dtype, weight-only quantisation, and the dtype
/// of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Precision {
    pub dtype: Dtype,
    /// Weights stored as 4-bit integers (W4A16: fp16 compute, dequantised inside the GEMM).
    pub int4_weights: bool,
    /// Weights stored as 8-bit integers (W8A16: fp16 compute, dequantised inside the GEMM).
    pub int8_weights: bool,
    /// Dtype the KV cache is stored in (`None`: the activation dtype).
    pub kv_dtype: Option<Dtype>,
}

impl Default for Precision {
    fn default() -> Self {
        Precision::of(Dtype::Fp16)
    }
}

impl Precision {
    /// Plain `dtype` compute, weights and KV cache.
    pub fn of(dtype: Dtype) -> Precision {
        Precision { dtype, int4_weights: false, int8_weights: false, kv_dtype: None }
    }
    pub fn parse(s: &str) -> Result<Precision> {
        let s = s.trim().to_lowercase();
        if matches!(s.as_str(), "int4" | "w4a16" | "int4-weight-only" | "w4") {
            return Ok(Precision { int4_weights: true, ..Precision::of(Dtype::Fp16) });
        }
        if matches!(s.as_str(), "w8a16" | "int8-weight-only" | "w8") {
            return Ok(Precision { int8_weights: true, ..Precision::of(Dtype::Fp16) });
        }
        Dtype::parse(&s)
            .map(Precision::of)
            .map_err(|_| Error::Usage(format!("unknown precision '{s}' (expected fp32, tf32, fp16, bf16, fp8, int8, int4 or w8a16)")))
    }
    /// The same precision with the KV cache stored as `kv` (fp16, bf16 or fp8).
    pub fn with_kv(self, kv: &str) -> Result<Precision> {
        let d = Dtype::parse(kv).map_err(|_| Error::Usage(format!("unknown KV-cache dtype '{kv}' (expected fp16, bf16 or fp8)")))?;
        if !matches!(d, Dtype::Fp16 | Dtype::Bf16 | Dtype::Fp8) {
            return Err(Error::Usage(format!("KV-cache dtype '{kv}' is not supported (expected fp16, bf16 or fp8)")));
        }
        Ok(Precision { kv_dtype: Some(d), ..self })
    }
    pub fn name(&self) -> String {
        if self.int4_weights {
            "int4".into()
        } else if self.int8_weights {
            "w8a16".into()
        } else {
            self.dtype.name().into()
        }
    }
    /// Bits of a weight-only quantised weight, if the weights are quantised alone.
    pub fn weight_only_bits(&self) -> Option<u64> {
        if self.int4_weights {
            Some(4)
        } else if self.int8_weights {
            Some(8)
        } else {
            None
        }
    }
    /// Bytes per stored weight element.
    pub fn weight_bytes(&self) -> f64 {
        match self.weight_only_bits() {
            Some(bits) => bits as f64 / 8.0,
            None => self.dtype.bytes(),
        }
    }
    /// Bytes per activation element (fp8/int8 runs keep activations in 16 bits between
    /// quantised matmuls, as TensorRT-LLM and vLLM do).
    pub fn activation_bytes(&self) -> f64 {
        match self.dtype {
            Dtype::Fp8 | Dtype::Int8 => 2.0,
            d => d.bytes(),
        }
    }
    /// The dtype memory-bound kernels run in.
    pub fn activation_dtype(&self) -> Dtype {
        match self.dtype {
            Dtype::Fp8 | Dtype::Int8 => Dtype::Fp16,
            d => d,
        }
    }
    /// The dtype of the KV cache: as given, else the activation dtype (vLLM's `auto`).
    pub fn kv_cache_dtype(&self) -> Dtype {
        self.kv_dtype.unwrap_or_else(|| self.activation_dtype())
    }
    /// Bytes per KV-cache element.
    pub fn kv_bytes(&self) -> f64 {
        self.kv_cache_dtype().bytes()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One forward pass without gradients.
    Inference,
    /// Forward, backward and (unless disabled) the optimizer step.
    Training,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    /// One kernel per framework op, each paying the host cost of an eager call.
    Eager,
    /// torch.compile-style: chains of pointwise ops fused into one kernel, cheaper launches.
    Compiled,
    /// Eager kernels replayed from a captured CUDA graph: no per-kernel host cost.
    CudaGraphs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AttentionImpl {
    /// FlashAttention for 16-bit dtypes on GPUs that have it, else the unfused chain
    /// (PyTorch SDPA's choice).
    Auto,
    /// The fused FlashAttention kernel.
    Flash,
    /// matmul → scale → mask → softmax → matmul, as HuggingFace's `eager` attention.
    Eager,
}

/// What to lower and how.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Options {
    pub precision: Precision,
    pub mode: Mode,
    pub execution: Execution,
    pub attention: AttentionImpl,
    /// Training includes an Adam step (NeuSight's training rows do not).
    pub optimizer_step: bool,
    /// The GPU has FlashAttention kernels (Ampere or newer); decides `Auto`.
    pub flash_available: bool,
    /// How many GPUs share the work, and how.
    pub parallel: Parallel,
}

/// Multi-GPU layout. The graph a lowering receives is one GPU's share (its micro-batch);
/// data parallelism adds the gradient all-reduce, pipeline parallelism is scheduled in
/// `crate::run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parallel {
    /// Data-parallel replicas: gradients all-reduced across them after backward.
    pub dp: u64,
    /// Tensor-parallel degree (the graph is already one GPU's shard; its all-reduce
    /// nodes run over this many GPUs).
    pub tp: u64,
    /// Pipeline stages.
    pub pp: u64,
    /// Micro-batches per step (pipeline parallelism).
    pub micro_batches: u64,
    /// GPUs per node: collectives within a node use its links, across nodes the network.
    pub gpus_per_node: u64,
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel { dp: 1, tp: 1, pp: 1, micro_batches: 1, gpus_per_node: 8 }
    }
}

impl Parallel {
    pub fn gpus(&self) -> u64 {
        self.dp * self.tp * self.pp
    }
    /// `(gpus, nodes, gpus_per_node)` of a collective over `n` of the run's GPUs.
    pub fn group(&self, n: u64) -> (u64, u64, u64) {
        let per_node = self.gpus_per_node.min(n).max(1);
        (n, n.div_ceil(per_node), per_node)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            precision: Precision::of(Dtype::Fp16),
            mode: Mode::Inference,
            execution: Execution::Eager,
            attention: AttentionImpl::Auto,
            optimizer_step: true,
            flash_available: true,
            parallel: Parallel::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Forward,
    Backward,
    Optimizer,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Forward => "forward",
            Phase::Backward => "backward",
            Phase::Optimizer => "optimizer",
        }
    }
}

/// One GPU kernel (or a library call's kernels) in the DAG.
#[derive(Debug, Clone, Serialize)]
pub struct Kernel {
    /// The graph node it came from, with a suffix for each kernel of that node.
    pub name: String,
    pub op: Op,
    pub dtype: Dtype,
    pub phase: Phase,
    /// `gemm`, `attention`, `elementwise`, … for breakdowns.
    pub category: &'static str,
    /// The framework call that launches it, for its host cost (`linear`, `softmax` …);
    /// `None` when the kernel is launched by the same call as the previous one.
    pub host_call: Option<&'static str>,
    /// Work multiplier on the op's modelled time (FlashAttention backward recomputes the
    /// scores and does 5 matmuls for the forward's 2: 2.5×).
    pub work: f64,
    pub stream: u32,
}

/// The lowered program: kernels in issue order with their data dependencies.
#[derive(Debug, Clone)]
pub struct KernelDag {
    pub dag: DiGraph<Kernel, ()>,
    pub options: Options,
    /// The distinct (op, dtype) pairs, so a GPU estimates each once (layers repeat).
    pub unique: Vec<(Op, Dtype)>,
    /// Index into `unique` of each kernel, by node index.
    pub unique_of: Vec<usize>,
    /// Kernel ranges that run several times in a row (from the graph's repeats).
    pub repeats: Vec<(std::ops::Range<usize>, u64)>,
}

impl KernelDag {
    pub fn kernels(&self) -> impl Iterator<Item = (NodeIndex, &Kernel)> {
        self.dag.node_indices().map(move |i| (i, &self.dag[i]))
    }
    pub fn len(&self) -> usize {
        self.dag.node_count()
    }
    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }
}

/// Lowers a graph with the given options.
pub fn lower(graph: &Graph, opts: &Options) -> Result<KernelDag> {
    if opts.mode == Mode::Training && !graph.repeats.is_empty() {
        return Err(Error::Usage(format!("{}: training a pipeline of repeated steps is not supported; train its parts (a UNet, a text encoder) instead", graph.name)));
    }
    if opts.mode == Mode::Training && opts.precision.weight_only_bits().is_some() {
        return Err(Error::Usage(format!(
            "{}: --precision {} is weight-only quantization for inference; training updates the weights, so it needs fp32, tf32, fp16, bf16 or fp8",
            graph.name,
            opts.precision.name()
        )));
    }
    let mut l = Lowerer { g: graph, opts, dag: DiGraph::new(), producer: HashMap::new(), grad_producer: HashMap::new(), region: Vec::new() };
    // The first kernel of every graph node, to map node repeats to kernel repeats.
    let mut first_kernel = Vec::with_capacity(graph.nodes.len() + 1);
    for (i, node) in graph.nodes.iter().enumerate() {
        first_kernel.push(l.dag.node_count());
        let region = graph.repeats.iter().position(|r| r.nodes.contains(&i)).unwrap_or(usize::MAX);
        l.forward(node)?;
        l.region.resize(l.dag.node_count(), region);
    }
    first_kernel.push(l.dag.node_count());
    if opts.mode == Mode::Training {
        for node in graph.nodes.iter().rev() {
            l.backward(node);
        }
        if opts.parallel.dp > 1 {
            l.gradient_all_reduce();
        }
        if opts.optimizer_step {
            l.optimizer();
        }
    }
    l.region.resize(l.dag.node_count(), usize::MAX);
    let mut repeats: Vec<(std::ops::Range<usize>, u64)> = graph.repeats.iter().map(|r| (first_kernel[r.nodes.start]..first_kernel[r.nodes.end], r.times)).collect();
    if opts.execution == Execution::Compiled {
        let map = l.fuse_pointwise();
        for (range, _) in &mut repeats {
            if range.start < range.end {
                *range = map[range.start].index()..map[range.end - 1].index() + 1;
            }
        }
    }
    repeats.retain(|(r, _)| r.start < r.end);
    let dag = l.dag;
    let mut index: HashMap<(&Op, Dtype), usize> = HashMap::new();
    let mut unique = Vec::new();
    let mut unique_of = Vec::with_capacity(dag.node_count());
    for i in dag.node_indices() {
        let k = &dag[i];
        let next = unique.len();
        let u = *index.entry((&k.op, k.dtype)).or_insert_with(|| {
            unique.push((k.op.clone(), k.dtype));
            next
        });
        if u == next {
            // Sizes no GPU could run (from a malformed model file) are errors naming the kernel.
            k.op.check_size().map_err(|e| match e {
                Error::Shape { op, msg } => Error::Shape { op, msg: format!("kernel '{}' of model '{}': {msg}", k.name, graph.name) },
                other => other,
            })?;
        }
        unique_of.push(u);
    }
    drop(index);
    Ok(KernelDag { dag, options: *opts, unique, unique_of, repeats })
}

struct Lowerer<'a> {
    g: &'a Graph,
    opts: &'a Options,
    dag: DiGraph<Kernel, ()>,
    /// Last kernel that wrote each tensor (forward).
    producer: HashMap<TensorId, NodeIndex>,
    /// Last kernel that wrote each tensor's gradient.
    grad_producer: HashMap<TensorId, NodeIndex>,
    /// The graph repeat each forward kernel belongs to (`usize::MAX`: none); fusion never
    /// crosses a repeat's boundary.
    region: Vec<usize>,
}

fn category(op: &Op) -> &'static str {
    match op {
        Op::Gemm { .. } | Op::QuantGemm { .. } => "gemm",
        Op::Conv2d { .. } => "conv",
        Op::Attention { .. } => "attention",
        Op::Elementwise { .. } => "elementwise",
        Op::Softmax { .. } => "softmax",
        Op::Layernorm { .. } | Op::Rmsnorm { .. } => "norm",
        Op::SiluMul { .. } | Op::Rope { .. } => "elementwise",
        Op::Embedding { .. } => "embedding",
        Op::AllReduce { .. } | Op::SendRecv { .. } => "collective",
    }
}

/// Time of softmax's backward kernel relative to its forward kernel: PyTorch's
/// `softmax_backward` reads the saved output and the incoming gradient and writes the input
/// gradient, three rows×cols tensors where the memory-bound forward reads one and writes one.
const SOFTMAX_BACKWARD_WORK: f64 = 1.5;

/// Time of a norm's input-gradient kernel relative to its forward kernel: it reads the
/// incoming gradient and the saved input and writes the input gradient (three tensors of the
/// forward's two; the per-row mean and rstd are negligible).
const NORM_BACKWARD_WORK: f64 = 1.5;

fn ew(func: &str, numel: u64, inputs: u64) -> Op {
    Op::Elementwise { func: func.into(), numel: numel.max(1), inputs }
}

impl Lowerer<'_> {
    fn mm_dtype(&self) -> Dtype {
        match self.opts.precision.dtype {
            Dtype::Fp32 if self.opts.precision.weight_only_bits().is_some() => Dtype::Fp16,
            d => d,
        }
    }

    fn attention_dtype(&self) -> Dtype {
        let p = &self.opts.precision;
        match (p.kv_cache_dtype(), self.mm_dtype()) {
            (Dtype::Fp8, _) => Dtype::Fp8,
            (_, Dtype::Fp8 | Dtype::Int8) => p.activation_dtype(),
            (_, mm) => mm,
        }
    }

    /// Appends a kernel depending on `deps`; returns its index.
    fn push(&mut self, name: String, op: Op, phase: Phase, host_call: Option<&'static str>, work: f64, deps: &[NodeIndex]) -> NodeIndex {
        let dtype = match op {
            Op::Gemm { .. } | Op::Conv2d { .. } | Op::QuantGemm { .. } => self.mm_dtype(),
            // Attention reads and writes the KV cache in its dtype (fp8 KV: dequantised
            // inside the kernel); it computes in 16 bits in fp8/int8 runs, as vLLM does.
            Op::Attention { .. } => self.attention_dtype(),
            _ => self.opts.precision.activation_dtype(),
        };
        let category = category(&op);
        let k = self.dag.add_node(Kernel { name, op, dtype, phase, category, host_call, work, stream: 0 });
        let mut seen: Vec<NodeIndex> = Vec::new();
        for &d in deps {
            if !seen.contains(&d) {
                self.dag.add_edge(d, k, ());
                seen.push(d);
            }
        }
        k
    }

    fn deps_of(&self, ins: &[TensorId]) -> Vec<NodeIndex> {
        ins.iter().filter_map(|t| self.producer.get(t).copied()).collect()
    }

    fn uses_flash(&self) -> bool {
        match self.opts.attention {
            AttentionImpl::Flash => true,
            AttentionImpl::Eager => false,
            AttentionImpl::Auto => self.opts.flash_available && matches!(self.opts.precision.activation_dtype(), Dtype::Fp16 | Dtype::Bf16),
        }
    }

    /// The forward kernels of one graph node, as (suffix, op, host call) in launch order.
    fn forward_kernels(&self, op: &GraphOp, inputs: &[TensorId]) -> Vec<(String, Op, Option<&'static str>, f64)> {
        let training = self.opts.mode == Mode::Training;
        let one = |op: Op, call: &'static str| vec![(String::new(), op, Some(call), 1.0)];
        match op {
            GraphOp::MatMul { b, m, n, k, bias } => {
                let has_weight = inputs.iter().any(|&t| self.g.tensors[t].role == Role::Weight);
                let call = if *bias { "linear" } else { "gemm" };
                if let (true, 1, Some(bits)) = (has_weight, *b, self.opts.precision.weight_only_bits()) {
                    // Weight-only quantisation: one mixed-input GEMM that dequantises the
                    // weight tile in its main loop (Marlin, AWQ/GPTQ kernels).
                    return vec![(String::new(), Op::QuantGemm { m: *m, n: *n, k: *k, bits, bias: *bias }, Some(call), 1.0)];
                }
                vec![(String::new(), Op::Gemm { b: *b, m: *m, n: *n, k: *k, bias: *bias }, Some(call), 1.0)]
            }
            GraphOp::Conv2d { n, c, h, w, k, r, s, stride, pad, groups, bias } => {
                let g = (*groups).max(1);
                let conv = Op::Conv2d { n: n * g, c: c / g, h: *h, w: *w, k: k / g, r: *r, s: *s, stride: *stride, pad: *pad };
                let mut v = vec![(String::new(), conv, Some("conv2d"), 1.0)];
                if *bias {
                    let (p, q) = crate::kernel::op::conv_out(*h, *w, *r, *s, *stride, *pad);
                    v.push((".bias".into(), ew("add", n * k * p * q, 2), None, 1.0));
                }
                v
            }
            GraphOp::Attention { b, hq, hkv, sq, skv, d, causal } => {
                let (b, hq, hkv, sq, skv, d) = (*b, *hq, *hkv, *sq, *skv, *d);
                if self.uses_flash() {
                    return one(Op::Attention { b, hq, hkv, sq, skv, d, causal: *causal }, "attention");
                }
                let mut v = Vec::new();
                if hkv < hq {
                    v.push((".repeat_kv".into(), ew("copy", 2 * b * hq * skv * d, 1), Some("elementwise"), 1.0));
                }
                let scores = b * hq * sq * skv;
                // torch.matmul on the heads-permuted q, kᵀ and v cannot fold (batch, head)
                // into one batch dimension without a copy: each operand is made contiguous
                // first (HuggingFace eager attention; OPT spells these out as .contiguous()).
                v.push((".q_contiguous".into(), ew("contiguous", b * sq * hq * d, 1), None, 1.0));
                v.push((".k_contiguous".into(), ew("contiguous", b * skv * hq * d, 1), None, 1.0));
                v.push((".scores".into(), Op::Gemm { b: b * hq, m: sq, n: skv, k: d, bias: false }, Some("gemm"), 1.0));
                v.push((".scale".into(), ew("div_scalar", scores, 1), Some("elementwise"), 1.0));
                let mask = if *causal { "where" } else { "add" };
                v.push((".mask".into(), ew(mask, scores, 2), Some("elementwise"), 1.0));
                v.push((".softmax".into(), Op::Softmax { rows: b * hq * sq, cols: skv }, Some("softmax"), 1.0));
                if training {
                    v.push((".dropout".into(), ew("dropout", scores, 1), Some("elementwise"), 1.0));
                }
                v.push((".v_contiguous".into(), ew("contiguous", b * skv * hq * d, 1), None, 1.0));
                v.push((".context".into(), Op::Gemm { b: b * hq, m: sq, n: d, k: skv, bias: false }, Some("gemm"), 1.0));
                v.push((".merge_heads".into(), ew("contiguous", b * sq * hq * d, 1), Some("elementwise"), 1.0));
                v
            }
            GraphOp::Elementwise { func, numel, inputs } => {
                if func == "dropout" && !training {
                    return Vec::new();
                }
                one(ew(func, *numel, *inputs), "elementwise")
            }
            GraphOp::Softmax { rows, cols } => one(Op::Softmax { rows: *rows, cols: *cols }, "softmax"),
            GraphOp::LayerNorm { rows, cols } | GraphOp::GroupNorm { rows, cols } => one(Op::Layernorm { rows: *rows, cols: *cols }, "layernorm"),
            GraphOp::RmsNorm { rows, cols } => one(Op::Rmsnorm { rows: *rows, cols: *cols }, "rmsnorm"),
            GraphOp::BatchNorm { numel, channels } => {
                if training {
                    one(Op::Layernorm { rows: *channels, cols: (numel / channels.max(&1)).max(1) }, "layernorm")
                } else {
                    one(ew("mul", *numel, 1), "elementwise")
                }
            }
            GraphOp::Embedding { tokens, dim, vocab } => one(Op::Embedding { tokens: *tokens, dim: *dim, vocab: *vocab }, "embedding"),
            GraphOp::Rope { tokens, hq, hkv, d } => one(Op::Rope { tokens: *tokens, hq: *hq, hkv: *hkv, d: *d }, "rope"),
            GraphOp::SiluMul { tokens, cols } => one(Op::SiluMul { tokens: *tokens, cols: *cols }, "silu_mul"),
            // A reduction reads `numel_in` and writes `numel_out`: the bytes of a copy of
            // their mean size, read once and written once.
            GraphOp::Pool { numel_in, numel_out } | GraphOp::Reduce { numel_in, numel_out } => {
                one(ew("copy", (numel_in + numel_out).div_ceil(2), 1), "elementwise")
            }
            GraphOp::Copy { numel } => one(ew("copy", *numel, 1), "elementwise"),
            GraphOp::View => Vec::new(),
            GraphOp::AllReduce { numel } => vec![(String::new(), self.tp_all_reduce(*numel), None, 1.0)],
        }
    }

    /// The NCCL all-reduce of a tensor-parallel partial sum.
    fn tp_all_reduce(&self, numel: u64) -> Op {
        let (gpus, nodes, gpus_per_node) = self.opts.parallel.group(self.opts.parallel.tp.max(2));
        Op::AllReduce { bytes: (numel as f64 * self.opts.precision.activation_bytes()).ceil() as u64, gpus, nodes, gpus_per_node }
    }

    fn forward(&mut self, node: &crate::graph::Node) -> Result<()> {
        let kernels = self.forward_kernels(&node.op, &node.inputs);
        let mut deps = self.deps_of(&node.inputs);
        let mut last = None;
        for (suffix, op, call, work) in kernels {
            let k = self.push(format!("{}{}", node.name, suffix), op, Phase::Forward, call, work, &deps);
            deps = vec![k];
            last = Some(k);
        }
        match last {
            Some(k) => {
                for &o in &node.outputs {
                    self.producer.insert(o, k);
                }
            }
            None => {
                // A view (or inference dropout) aliases its input.
                let src = node.inputs.iter().find_map(|t| self.producer.get(t).copied());
                if let Some(k) = src {
                    for &o in &node.outputs {
                        self.producer.insert(o, k);
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a tensor needs a gradient: weights and anything computed from them.
    fn needs_grad(&self, t: TensorId) -> bool {
        let tensor = &self.g.tensors[t];
        match tensor.role {
            Role::Weight => true,
            Role::Input => false,
            Role::Activation => !tensor.index,
        }
    }

    /// The backward kernels of one graph node (autograd's order: the node's own
    /// backward functions, input gradient before weight gradient).
    fn backward_kernels(&self, node: &crate::graph::Node) -> Vec<(String, Op, Option<&'static str>, f64)> {
        let act_in: Vec<TensorId> = node.inputs.iter().copied().filter(|&t| self.g.tensors[t].role == Role::Activation).collect();
        let input_grad = act_in.iter().any(|&t| self.needs_grad(t));
        let mut v: Vec<(String, Op, Option<&'static str>, f64)> = Vec::new();
        let mut add = |suffix: &str, op: Op, call: Option<&'static str>, work: f64| v.push((format!(".{suffix}"), op, call, work));
        match &node.op {
            GraphOp::MatMul { b, m, n, k, bias } => {
                let (b, m, n, k) = (*b, *m, *n, *k);
                let weight = node.inputs.iter().any(|&t| self.g.tensors[t].role == Role::Weight);
                if input_grad || !weight {
                    add("grad_input", Op::Gemm { b, m, n: k, k: n, bias: false }, Some("gemm"), 1.0);
                }
                // Weight gradient (or the second operand's gradient of a batched matmul).
                add("grad_weight", Op::Gemm { b, m: k, n, k: m, bias: false }, Some("gemm"), 1.0);
                if *bias {
                    add("grad_bias", ew("copy", (b * m * n + n).div_ceil(2), 1), None, 1.0);
                }
            }
            GraphOp::Conv2d { n, c, h, w, k, r, s, stride, pad, groups, .. } => {
                let g = (*groups).max(1);
                let conv = Op::Conv2d { n: n * g, c: c / g, h: *h, w: *w, k: k / g, r: *r, s: *s, stride: *stride, pad: *pad };
                if input_grad {
                    add("grad_input", conv.clone(), Some("conv2d"), 1.0);
                }
                add("grad_weight", conv, Some("conv2d"), 1.0);
            }
            GraphOp::Attention { b, hq, hkv, sq, skv, d, causal } => {
                let (b, hq, hkv, sq, skv, d) = (*b, *hq, *hkv, *sq, *skv, *d);
                if self.uses_flash() {
                    add("grad", Op::Attention { b, hq, hkv, sq, skv, d, causal: *causal }, Some("attention"), 2.5);
                } else {
                    let scores = b * hq * sq * skv;
                    add("merge_heads.grad", ew("contiguous", b * sq * hq * d, 1), Some("elementwise"), 1.0);
                    add("context.grad_probs", Op::Gemm { b: b * hq, m: sq, n: skv, k: d, bias: false }, Some("gemm"), 1.0);
                    add("context.grad_v", Op::Gemm { b: b * hq, m: skv, n: d, k: sq, bias: false }, Some("gemm"), 1.0);
                    add("dropout.grad", ew("mul", scores, 2), Some("elementwise"), 1.0);
                    add("softmax.grad", Op::Softmax { rows: b * hq * sq, cols: skv }, Some("softmax"), SOFTMAX_BACKWARD_WORK);
                    add("mask.grad", ew("where", scores, 2), Some("elementwise"), 1.0);
                    add("scale.grad", ew("div_scalar", scores, 1), Some("elementwise"), 1.0);
                    add("scores.grad_q", Op::Gemm { b: b * hq, m: sq, n: d, k: skv, bias: false }, Some("gemm"), 1.0);
                    add("scores.grad_k", Op::Gemm { b: b * hq, m: skv, n: d, k: sq, bias: false }, Some("gemm"), 1.0);
                    // The gradients of the three contiguous copies.
                    add("qkv_contiguous.grad", ew("contiguous", b * (sq + 2 * skv) * hq * d, 1), None, 1.0);
                }
            }
            GraphOp::Elementwise { func, numel, inputs } => {
                let numel = *numel;
                match func.as_str() {
                    "dropout" => add("grad", ew("mul", numel, 2), Some("elementwise"), 1.0),
                    // The gradient passes through (a broadcast operand's is summed).
                    "add" | "sub" | "add_scalar" | "sub_scalar" | "copy" | "contiguous" => {
                        if *inputs > 1 && node.inputs.iter().any(|&t| self.g.tensors[t].numel() < numel && self.needs_grad(t)) {
                            add("grad_broadcast", ew("copy", numel, 1), Some("elementwise"), 1.0);
                        }
                    }
                    "mul" | "div" | "pow" => {
                        add("grad_a", ew(func, numel, 2), Some("elementwise"), 1.0);
                        add("grad_b", ew(func, numel, 2), Some("elementwise"), 1.0);
                    }
                    "mul_scalar" | "div_scalar" => add("grad", ew(func, numel, 1), Some("elementwise"), 1.0),
                    "pow_scalar" => {
                        add("grad_pow", ew("pow_scalar", numel, 1), Some("elementwise"), 1.0);
                        add("grad_mul", ew("mul", numel, 2), Some("elementwise"), 1.0);
                    }
                    "where" | "cumsum" => {}
                    // Unary activations: grad · f'(x), one kernel reading both.
                    f => add("grad", ew(if f == "gelu" { "gelu" } else { "mul" }, numel, 2), Some("elementwise"), 1.0),
                }
            }
            GraphOp::Softmax { rows, cols } => add("grad", Op::Softmax { rows: *rows, cols: *cols }, Some("softmax"), SOFTMAX_BACKWARD_WORK),
            GraphOp::LayerNorm { rows, cols } | GraphOp::GroupNorm { rows, cols } | GraphOp::RmsNorm { rows, cols } => {
                // The input-gradient kernel reads the incoming gradient and the saved
                // input and writes the input's gradient (three tensors where the forward
                // kernel moves two); the weight/bias gradient kernel reads the same two
                // tensors again and reduces them over the rows.
                add("grad_input", Op::Layernorm { rows: *rows, cols: *cols }, Some("layernorm"), NORM_BACKWARD_WORK);
                add("grad_weight", ew("copy", rows * cols + 2 * cols, 1), None, 1.0);
            }
            GraphOp::BatchNorm { numel, channels } => {
                add("grad", Op::Layernorm { rows: *channels, cols: (numel / channels.max(&1)).max(1) }, Some("layernorm"), 1.0);
            }
            GraphOp::Embedding { tokens, dim, vocab } => {
                // embedding_dense_backward: zero the table's gradient, then scatter-add rows.
                add("grad_zero", ew("copy", vocab * dim, 1), Some("embedding"), 1.0);
                add("grad_scatter", ew("add", tokens * dim, 2), None, 1.0);
            }
            GraphOp::Rope { tokens, hq, hkv, d } => add("grad", Op::Rope { tokens: *tokens, hq: *hq, hkv: *hkv, d: *d }, Some("rope"), 1.0),
            GraphOp::SiluMul { tokens, cols } => add("grad", ew("mul", 2 * tokens * cols, 2), Some("elementwise"), 1.0),
            GraphOp::Pool { numel_in, numel_out } | GraphOp::Reduce { numel_in, numel_out } => {
                add("grad", ew("copy", (numel_in + numel_out).div_ceil(2), 1), Some("elementwise"), 1.0)
            }
            GraphOp::Copy { numel } => add("grad", ew("copy", *numel, 1), Some("elementwise"), 1.0),
            GraphOp::View => {}
            // Megatron's conjugate: the column-parallel input's gradient is all-reduced.
            GraphOp::AllReduce { numel } => add("grad_all_reduce", self.tp_all_reduce(*numel), None, 1.0),
        }
        v
    }

    fn backward(&mut self, node: &crate::graph::Node) {
        // Nodes none of whose inputs need a gradient have no backward (the embedding's
        // weight does, so it is kept).
        if !node.inputs.iter().any(|&t| self.needs_grad(t)) {
            return;
        }
        let kernels = self.backward_kernels(node);
        // Depends on the gradients of its outputs, and on its saved forward inputs.
        let mut deps: Vec<NodeIndex> = node.outputs.iter().filter_map(|o| self.grad_producer.get(o).copied()).collect();
        deps.extend(self.deps_of(&node.inputs));
        let mut last = None;
        for (suffix, op, call, work) in kernels {
            let k = self.push(format!("{}{}", node.name, suffix), op, Phase::Backward, call, work, &deps);
            deps = vec![k];
            last = Some(k);
        }
        let src = last.or_else(|| node.outputs.iter().find_map(|o| self.grad_producer.get(o).copied()));
        if let Some(k) = src {
            for &t in &node.inputs {
                // A tensor read by several ops (the residual stream read by a norm and the
                // residual add, a hidden state read by the q, k and v projections, GELU's
                // input read three times, tied embeddings) gets one gradient from each;
                // autograd sums them into one, an add kernel per extra gradient. A view
                // passes its gradient into its base through its own backward (a split's is
                // one cat, lowered with the op that reads the views), so it adds nothing.
                let prev = if self.needs_grad(t) && !matches!(node.op, GraphOp::View) { self.grad_producer.get(&t).copied() } else { None };
                let k = match prev {
                    Some(p) if p != k => {
                        let numel = self.g.tensors[t].numel();
                        self.push(format!("{}.grad_accumulate", self.g.tensors[t].name), ew("add", numel, 2), Phase::Backward, Some("elementwise"), 1.0, &[p, k])
                    }
                    _ => k,
                };
                self.grad_producer.insert(t, k);
            }
        }
    }

    /// DistributedDataParallel: gradients all-reduced in ~25 MB buckets (`bucket_cap_mb`'s
    /// default) in the order backward produces them, each bucket as soon as its last
    /// gradient is ready, on a second stream so that it overlaps the rest of backward.
    fn gradient_all_reduce(&mut self) {
        const BUCKET_BYTES: f64 = 25.0 * 1024.0 * 1024.0;
        // With pipeline stages each stage all-reduces only its share, all stages at once.
        let grad_bytes = self.opts.precision.activation_bytes() / self.opts.parallel.pp as f64;
        let (gpus, nodes, gpus_per_node) = self.opts.parallel.group(self.opts.parallel.dp);
        let mut bucket = 0.0;
        let mut ready: Option<NodeIndex> = None;
        let mut buckets: Vec<(f64, NodeIndex)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for node in self.g.nodes.iter().rev() {
            for &t in &node.inputs {
                if self.g.tensors[t].role != Role::Weight || !seen.insert(t) {
                    continue;
                }
                let Some(&k) = self.grad_producer.get(&t) else { continue };
                bucket += self.g.tensors[t].numel() as f64 * grad_bytes;
                ready = Some(ready.map_or(k, |r: NodeIndex| r.max(k)));
                if bucket >= BUCKET_BYTES {
                    buckets.push((bucket, ready.take().expect("set above")));
                    bucket = 0.0;
                }
            }
        }
        if let Some(r) = ready {
            buckets.push((bucket, r));
        }
        for (i, (bytes, dep)) in buckets.into_iter().enumerate() {
            let op = Op::AllReduce { bytes: bytes.ceil() as u64, gpus, nodes, gpus_per_node };
            let k = self.push(format!("ddp.bucket{i}.all_reduce"), op, Phase::Backward, None, 1.0, &[dep]);
            self.dag[k].stream = 1;
        }
    }

    /// A fused (multi-tensor) Adam step over every parameter: reads param, grad and two
    /// moments, writes param and moments.
    fn optimizer(&mut self) {
        // Each pipeline stage updates only its share of the parameters.
        let params: u64 = self.g.params().div_ceil(self.opts.parallel.pp);
        if params == 0 {
            return;
        }
        // After backward and every gradient all-reduce (the last kernel of each stream).
        let mut last_per_stream: std::collections::BTreeMap<u32, NodeIndex> = Default::default();
        for i in self.dag.node_indices() {
            last_per_stream.insert(self.dag[i].stream, i);
        }
        let deps: Vec<NodeIndex> = last_per_stream.into_values().collect();
        // torch.optim.Adam(foreach=True) launches one multi-tensor kernel per chunk of
        // tensors; the bytes are what matter.
        let launches = (self.g.tensors.iter().filter(|t| t.role == Role::Weight).count() as u64).div_ceil(110).max(1);
        let k = self.push("optimizer.adam".into(), ew("add", params, 4), Phase::Optimizer, Some("elementwise"), 1.0, &deps);
        // Moments and master weights stay fp32 in mixed precision.
        self.dag[k].dtype = Dtype::Fp32;
        self.dag[k].work = 1.0 + 0.75; // 4 reads + 3 writes vs the elementwise model's 4 + 1
        let _ = launches;
    }

    /// torch.compile: pointwise kernels fuse into the group of pointwise work that feeds
    /// them (reading the group's outside inputs once and writing its last output), and a
    /// softmax or norm absorbs the pointwise work before it (scale → mask → softmax, add
    /// → layernorm), as Inductor's fusion does. A kernel joins a group only when its other
    /// inputs were ready before the group began, so issue order stays a valid schedule.
    fn fuse_pointwise(&mut self) -> Vec<NodeIndex> {
        let old = std::mem::take(&mut self.dag);
        let region = std::mem::take(&mut self.region);
        let mut new_region: Vec<usize> = Vec::new();
        let mut new: DiGraph<Kernel, ()> = DiGraph::new();
        let mut map: Vec<NodeIndex> = Vec::with_capacity(old.node_count());
        let fusable = |k: &Kernel| matches!(k.op, Op::Elementwise { .. } | Op::Softmax { .. } | Op::Layernorm { .. } | Op::Rmsnorm { .. });
        for i in old.node_indices() {
            let k = &old[i];
            let preds: Vec<NodeIndex> = old.neighbors_directed(i, petgraph::Direction::Incoming).map(|p| map[p.index()]).collect();
            let mut groups: Vec<NodeIndex> = preds.iter().copied().filter(|&p| new[p].phase == k.phase && fusable(&new[p]) && new_region[p.index()] == region[i.index()]).collect();
            groups.sort();
            groups.dedup();
            let pointwise = matches!(k.op, Op::Elementwise { .. });
            let reduction = matches!(k.op, Op::Softmax { .. } | Op::Layernorm { .. } | Op::Rmsnorm { .. });
            if groups.len() == 1 && (pointwise || reduction) {
                let target = groups[0];
                let others_ready = preds.iter().all(|&p| p <= target);
                let target_pointwise = matches!(new[target].op, Op::Elementwise { .. });
                if others_ready && (pointwise || target_pointwise) {
                    let merged = match (&new[target].op, &k.op) {
                        (Op::Elementwise { numel: tn, inputs: ti, .. }, Op::Elementwise { numel, inputs, .. }) => {
                            // Inputs from inside the group are not re-read.
                            let inside = old.neighbors_directed(i, petgraph::Direction::Incoming).filter(|p| map[p.index()] == target).count() as u64;
                            ew("add", (*tn).max(*numel), ti + inputs.saturating_sub(inside.max(1)))
                        }
                        // Pointwise prologue into a reduction: the reduction's traffic.
                        (Op::Elementwise { .. }, red) => red.clone(),
                        // Pointwise epilogue after a reduction: written once with it.
                        (red, _) => red.clone(),
                    };
                    new[target].op = merged;
                    new[target].category = category(&new[target].op);
                    new[target].name = format!("{}+{}", new[target].name, k.name.rsplit('.').next().unwrap_or(&k.name));
                    for &p in &preds {
                        if p != target && new.find_edge(p, target).is_none() {
                            new.add_edge(p, target, ());
                        }
                    }
                    map.push(target);
                    continue;
                }
            }
            let mut k = k.clone();
            if k.host_call.is_some() {
                k.host_call = Some("compiled");
            }
            let n = new.add_node(k);
            new_region.push(region[i.index()]);
            for p in preds {
                if new.find_edge(p, n).is_none() {
                    new.add_edge(p, n, ());
                }
            }
            map.push(n);
        }
        self.dag = new;
        self.region = new_region;
        map
    }
}

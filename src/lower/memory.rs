//! Device memory of a run: weights, gradients, optimizer state, activations (the peak of
//! live tensors in inference, everything saved for backward in training), KV cache,
//! library workspace and the CUDA context.

use super::{AttentionImpl, Mode, Options};
use crate::graph::{Graph, GraphOp, Role};
use serde::Serialize;

/// Memory the CUDA context and the framework's kernels take before any tensor: PyTorch
/// reports 300–500 MiB of `nvidia-smi` usage after `torch.cuda.init()` on current
/// drivers with lazy module loading (CUDA 11.7+ `CUDA_MODULE_LOADING=LAZY`); we take the
/// middle of that range.
pub const CUDA_CONTEXT_GIB: f64 = 0.4;
/// cuBLAS workspace PyTorch allocates per handle and stream: `:4096:8` (32 MiB) on
/// Hopper and newer, `:4096:2,:16:8`-style ≈ 8 MiB before (PyTorch `CUDABlasHandlePool`).
pub const CUBLAS_WORKSPACE_GIB: f64 = 32.0 / 1024.0;
/// The caching allocator rounds and fragments: PyTorch's `memory_reserved` typically
/// exceeds `memory_allocated` by 5–10% in steady state; we count the low end.
pub const ALLOCATOR_OVERHEAD: f64 = 0.05;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Debug, Clone, Serialize, Default)]
pub struct MemoryBreakdown {
    pub weights_gb: f64,
    pub gradients_gb: f64,
    pub optimizer_gb: f64,
    pub activations_gb: f64,
    pub kv_cache_gb: f64,
    pub workspace_gb: f64,
    pub context_gb: f64,
    /// Everything above plus allocator overhead on the tensors, GiB.
    pub total_gb: f64,
}

/// Bytes the eager attention chain keeps for one attention node: the score matrix and
/// its softmax (and the dropout mask in training).
fn attention_internal_bytes(op: &GraphOp, opts: &Options, flash: bool) -> f64 {
    if let GraphOp::Attention { b, hq, sq, skv, .. } = *op {
        if flash {
            // FlashAttention keeps only the log-sum-exp per query row.
            return (b * hq * sq) as f64 * 4.0;
        }
        let scores = (b * hq * sq * skv) as f64;
        let act = opts.precision.activation_bytes();
        let mask = if opts.mode == Mode::Training { 1.0 } else { 0.0 };
        return scores * (2.0 * act + mask);
    }
    0.0
}

/// The memory breakdown of one step of `graph` lowered with `opts`.
pub fn estimate(graph: &Graph, opts: &Options, hopper_or_newer: bool) -> MemoryBreakdown {
    let p = &opts.precision;
    let params = graph.params() as f64;
    // Weight-only formats keep one fp16 scale per group of 128 weights (GPTQ/AWQ default).
    let weights = params * p.weight_bytes() + if p.weight_only_bits().is_some() { params / 128.0 * 2.0 } else { 0.0 };
    let training = opts.mode == Mode::Training;
    let mixed = training && p.dtype.bytes() < 4.0;
    let gradients = if training { params * p.activation_bytes() } else { 0.0 };
    // Adam: two fp32 moments, plus an fp32 master copy of the weights in mixed precision.
    let optimizer = if training && opts.optimizer_step { params * 8.0 + if mixed { params * 4.0 } else { 0.0 } } else { 0.0 };
    let flash = match opts.attention {
        AttentionImpl::Flash => true,
        AttentionImpl::Eager => false,
        AttentionImpl::Auto => opts.flash_available && p.dtype.bytes() <= 2.0,
    };
    let act_bytes = |t: usize| -> f64 {
        let tensor = &graph.tensors[t];
        tensor.numel() as f64 * if tensor.index { 8.0 } else { p.activation_bytes() }
    };
    let mut kv_cache = 0.0;
    // Training keeps no cache (keys and values are ordinary saved activations).
    for n in graph.nodes.iter().filter(|_| !training) {
        if let GraphOp::Attention { b, hkv, skv, d, causal: true, .. } = n.op {
            kv_cache += 2.0 * (b * hkv * skv * d) as f64 * p.kv_bytes();
        }
    }
    let activations = if training {
        // Autograd saves every materialised forward tensor (views alias their input).
        let mut saved = 0.0;
        for n in &graph.nodes {
            if matches!(n.op, GraphOp::View) {
                continue;
            }
            saved += n.outputs.iter().map(|&o| act_bytes(o)).sum::<f64>();
            saved += attention_internal_bytes(&n.op, opts, flash);
        }
        let inputs: f64 = graph.tensors.iter().enumerate().filter(|(_, t)| t.role == Role::Input).map(|(i, _)| act_bytes(i)).sum();
        saved + inputs
    } else {
        peak_live(graph, opts, flash, &act_bytes)
    };
    let workspace = if hopper_or_newer { CUBLAS_WORKSPACE_GIB } else { CUBLAS_WORKSPACE_GIB / 4.0 } * GIB;
    let tensors = weights + gradients + optimizer + activations + if training { 0.0 } else { kv_cache };
    let total = tensors * (1.0 + ALLOCATOR_OVERHEAD) + workspace + CUDA_CONTEXT_GIB * GIB;
    MemoryBreakdown {
        weights_gb: weights / GIB,
        gradients_gb: gradients / GIB,
        optimizer_gb: optimizer / GIB,
        activations_gb: activations / GIB,
        kv_cache_gb: kv_cache / GIB,
        workspace_gb: workspace / GIB,
        context_gb: CUDA_CONTEXT_GIB,
        total_gb: total / GIB,
    }
}

/// Peak bytes of live activations in inference: a tensor lives from the node that makes
/// it to its last reader (graph outputs to the end); a node also needs its transients.
fn peak_live(graph: &Graph, opts: &Options, flash: bool, act_bytes: &dyn Fn(usize) -> f64) -> f64 {
    let n_t = graph.tensors.len();
    let mut last_use = vec![0usize; n_t];
    let mut alias_of: Vec<usize> = (0..n_t).collect();
    for (i, n) in graph.nodes.iter().enumerate() {
        for &t in &n.inputs {
            last_use[alias_of[t]] = i;
        }
        if matches!(n.op, GraphOp::View) {
            if let (Some(&src), true) = (n.inputs.first(), !n.outputs.is_empty()) {
                for &o in &n.outputs {
                    alias_of[o] = alias_of[src];
                }
            }
        }
    }
    for &o in &graph.outputs {
        last_use[alias_of[o]] = graph.nodes.len();
    }
    let mut live = 0.0;
    let mut peak: f64 = 0.0;
    // Inputs are live from the start.
    let mut freed_at: Vec<Vec<usize>> = vec![Vec::new(); graph.nodes.len() + 1];
    for (t, tensor) in graph.tensors.iter().enumerate() {
        if tensor.role == Role::Input && !tensor.name.ends_with("kv_cache") {
            live += act_bytes(t);
            freed_at[last_use[t]].push(t);
        }
    }
    for (i, n) in graph.nodes.iter().enumerate() {
        if !matches!(n.op, GraphOp::View) {
            for &o in &n.outputs {
                live += act_bytes(o);
                freed_at[last_use[o].max(i)].push(o);
            }
        }
        peak = peak.max(live + attention_internal_bytes(&n.op, opts, flash));
        for &t in &freed_at[i] {
            live -= act_bytes(t);
        }
    }
    peak
}

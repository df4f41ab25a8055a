//! One model step on one GPU, end to end: operator graph → kernel DAG → timeline, plus
//! the memory it needs and whether it fits.

use crate::error::Result;
use crate::graph::Graph;
use crate::hw::{Gpu, Templates};
use crate::lower::memory::{self, MemoryBreakdown};
use crate::lower::{self, Options};
use crate::lower::KernelDag;
use crate::sim::scheduler::{self, Timeline};
use crate::graph::transformer::Workload;
use crate::hw::Registry;
use rayon::prelude::*;
use serde::Serialize;


/// The simulated step.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRun {
    pub gpu: String,
    pub model: String,
    pub batch: u64,
    pub seq_len: u64,
    pub precision: String,
    pub mode: lower::Mode,
    pub execution: lower::Execution,
    /// Step time, ms (`None` when it does not fit).
    pub latency_ms: Option<f64>,
    /// Samples (sequences or images) per second.
    pub throughput_per_s: Option<f64>,
    pub memory: MemoryBreakdown,
    pub memory_gb: f64,
    pub gpu_memory_gb: f64,
    pub fits: bool,
    pub kernels: usize,
    pub params: u64,
    pub flops: f64,
    /// Busy time per kernel category, per phase, host time (absent when it does not fit).
    pub timeline: Option<Timeline>,
}

/// Whether the GPU has FlashAttention kernels: NVIDIA Ampere or newer (FA2/FA3), AMD
/// CDNA2/3 (the ROCm CK port).
pub fn flash_available(gpu: &Gpu) -> bool {
    matches!(gpu.profile.architecture.as_str(), "ampere" | "ada" | "hopper" | "blackwell" | "cdna2" | "cdna3")
}

/// Options with the GPU-dependent choice filled in.
pub fn options_for(gpu: &Gpu, mut opts: Options) -> Options {
    opts.flash_available = flash_available(gpu);
    opts
}

/// Whether the GPU can run a precision: 8-bit and bf16 compute need the tensor-core mode
/// (the ISA table's rate for that dtype); fp32, tf32, fp16 and the weight-only formats
/// (fp16 compute) run everywhere. The KV-cache dtype is storage only.
pub fn check_precision(gpu: &Gpu, p: &lower::Precision) -> Result<()> {
    use crate::kernel::Dtype;
    let needs = match p.dtype {
        Dtype::Fp8 => "Ada, Hopper, Blackwell or CDNA3",
        Dtype::Int8 => "Turing or newer, or CDNA",
        Dtype::Bf16 => "Ampere or newer, or CDNA",
        _ => return Ok(()),
    };
    if gpu.tensor_flop_per_clk(p.dtype.name()).is_some() {
        return Ok(());
    }
    Err(crate::error::Error::Unsupported {
        gpu: gpu.key().to_string(),
        what: format!("{} precision", p.dtype),
        why: format!("{} ({}) tensor cores have no {} mode ({} tensor math needs {})", gpu.isa.name, gpu.profile.chip, p.dtype, p.dtype, needs),
    })
}

/// What to keep of a run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keep {
    /// Time the step even when it does not fit (replaying a row that was measured).
    pub time_even_if_oom: bool,
    /// Keep every placed kernel, for `--timeline`.
    pub kernels: bool,
}

/// Simulates one step of `graph` (built for `batch` × `seq_len`) on `gpu`. A model that
/// does not fit gets `fits = false` and no time, unless `keep.time_even_if_oom`.
pub fn run_model(gpu: &Gpu, templates: &Templates, graph: &Graph, batch: u64, seq_len: u64, opts: Options, keep: Keep) -> Result<ModelRun> {
    let opts = options_for(gpu, opts);
    let dag = lower::lower(graph, &opts)?;
    run_lowered(gpu, templates, graph, &dag, batch, seq_len, keep)
}

/// As `run_model` with the DAG already lowered (for this GPU's options). `batch` is one
/// GPU's share (its micro-batch); the run reports the global batch and throughput.
pub fn run_lowered(gpu: &Gpu, templates: &Templates, graph: &Graph, dag: &KernelDag, batch: u64, seq_len: u64, keep: Keep) -> Result<ModelRun> {
    let opts = dag.options;
    check_precision(gpu, &opts.precision)?;
    let hopper_plus = matches!(gpu.profile.architecture.as_str(), "hopper" | "blackwell");
    let mut mem = memory::estimate(graph, &opts, hopper_plus);
    let par = opts.parallel;
    let batch = batch * par.dp * par.micro_batches;
    if par.pp > 1 {
        // One stage holds 1/pp of the weights, gradients, optimizer state and KV cache, and
        // the activations of up to pp micro-batches in flight (1F1B) for its layers.
        let p = par.pp as f64;
        let in_flight = par.micro_batches.min(par.pp) as f64;
        let tensors_before = mem.weights_gb + mem.gradients_gb + mem.optimizer_gb + mem.activations_gb + mem.kv_cache_gb;
        mem.weights_gb /= p;
        mem.gradients_gb /= p;
        mem.optimizer_gb /= p;
        mem.kv_cache_gb /= p;
        mem.activations_gb *= in_flight / p;
        let tensors_after = mem.weights_gb + mem.gradients_gb + mem.optimizer_gb + mem.activations_gb + mem.kv_cache_gb;
        mem.total_gb -= (tensors_before - tensors_after) * (1.0 + memory::ALLOCATOR_OVERHEAD);
    }
    let capacity = gpu.profile.memory.memory_gb;
    let fits = mem.total_gb <= capacity;
    let timeline = if fits || keep.time_even_if_oom { Some(scheduler::run(gpu, templates, dag, keep.kernels)?) } else { None };
    let mut latency_ms = timeline.as_ref().map(|t| t.step_ms);
    if let (Some(t), true) = (&timeline, par.pp > 1) {
        latency_ms = Some(pipeline_ms(gpu, templates, graph, t, &opts)?);
    }
    Ok(ModelRun {
        gpu: gpu.key().to_string(),
        model: graph.name.clone(),
        batch,
        seq_len,
        precision: opts.precision.name(),
        mode: opts.mode,
        execution: opts.execution,
        latency_ms,
        throughput_per_s: latency_ms.map(|ms| batch as f64 / (ms / 1000.0)),
        memory_gb: mem.total_gb,
        memory: mem,
        gpu_memory_gb: capacity,
        fits,
        kernels: dag.len(),
        params: graph.params(),
        flops: graph.flops(),
        timeline,
    })
}

/// Every (graph, GPU) pair in parallel, graphs outermost: the engine of `compare-models`.
/// Each pair gets its own estimate cache, so results do not depend on scheduling.
pub fn sweep(reg: &Registry, graphs: &[(Workload, Graph)], gpus: &[&Gpu], opts: Options) -> Result<Vec<ModelRun>> {
    let jobs: Vec<(usize, usize)> = (0..graphs.len()).flat_map(|i| (0..gpus.len()).map(move |j| (i, j))).collect();
    // The DAG depends on the GPU only through `flash_available`: lower each graph once
    // per value.
    let dags: Vec<[KernelDag; 2]> = graphs
        .par_iter()
        .map(|(_, g)| Ok([lower::lower(g, &Options { flash_available: false, ..opts })?, lower::lower(g, &Options { flash_available: true, ..opts })?]))
        .collect::<Result<_>>()?;
    jobs.par_iter()
        .map(|&(i, j)| {
            let (wl, g) = &graphs[i];
            let dag = &dags[i][flash_available(gpus[j]) as usize];
            run_lowered(gpus[j], &reg.templates, g, dag, wl.batch, wl.seq_len, Keep::default())
        })
        .collect()
}

/// A pipeline step: the simulated micro-batch step (the whole model on one GPU) split into
/// `pp` equal stages; with `m` micro-batches the schedule takes `m + pp - 1` stage slots
/// (GPipe and 1F1B fill and drain alike), each stage also sending its boundary activation
/// forward and receiving its gradient backward. The optimizer runs once on each stage's
/// share.
fn pipeline_ms(gpu: &Gpu, templates: &Templates, graph: &Graph, t: &Timeline, opts: &Options) -> Result<f64> {
    let par = opts.parallel;
    let p = par.pp as f64;
    let opt_ms = t.by_phase.get("optimizer").copied().unwrap_or(0.0);
    let work_ms = t.step_ms - opt_ms;
    // The activation crossing a stage boundary: the output of the node at the split.
    let split = graph.nodes.len() / par.pp as usize;
    let boundary = graph.nodes.get(split).and_then(|n| n.outputs.first()).map(|&o| graph.tensors[o].numel()).unwrap_or(0);
    let bytes = (boundary as f64 * opts.precision.activation_bytes()).ceil().max(1.0) as u64;
    let (gpus, nodes, gpus_per_node) = par.group(2);
    let op = crate::kernel::Op::SendRecv { bytes, gpus, nodes, gpus_per_node };
    let p2p = crate::kernel::estimate(gpu, templates, &op, opts.precision.activation_dtype(), false)?.kernel_ms;
    let hops = if opts.mode == lower::Mode::Training { 2.0 } else { 1.0 };
    let slots = (par.micro_batches + par.pp - 1) as f64;
    Ok(slots * (work_ms / p + hops * p2p) + opt_ms)
}

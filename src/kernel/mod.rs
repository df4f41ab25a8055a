//! One cost model per kernel kind. `predict` is the single entry point: an op, a dtype
//! and a GPU in, a time with its explanation out.
//!
//! Invariant: predictions are pure functions of (GPU, op, dtype, context) — no global
//! state, no randomness — so every run gives the same bits.

pub mod attention;
pub mod collective;
pub mod conv;
pub mod gemm;
pub mod memory_bound;
pub mod op;
pub mod templates;

use crate::error::{Error, Result};
use crate::hw::{Gpu, Templates};
pub use op::{Dtype, Op};
use serde::Serialize;

/// How a measurement was timed (the `timing` column of a trace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// Sum of GPU kernel durations: no host cost.
    Kernel,
    /// CUDA events around one eager framework call: host dispatch included.
    Op,
}

impl Timing {
    pub fn parse(s: &str) -> Result<Timing> {
        match s.trim() {
            "kernel" | "" => Ok(Timing::Kernel),
            "op" => Ok(Timing::Op),
            other => Err(Error::Usage(format!("unknown timing '{other}' (expected kernel or op)"))),
        }
    }
}

/// What limits a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Tensor,
    Ffma,
    Sfu,
    L2,
    Dram,
    Latency,
    Launch,
    Network,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Tensor => "tensor",
            Bound::Ffma => "ffma",
            Bound::Sfu => "sfu",
            Bound::L2 => "l2",
            Bound::Dram => "dram",
            Bound::Latency => "latency",
            Bound::Launch => "launch",
            Bound::Network => "network",
        }
    }
}

/// The modelled execution of one op's GPU kernels.
#[derive(Debug, Clone, Serialize)]
pub struct KernelEstimate {
    /// GPU time of the kernels, ms.
    pub kernel_ms: f64,
    pub bound: Bound,
    /// Chosen template (tile, algorithm), if any.
    pub tile: Option<String>,
    pub ctas: u64,
    pub waves: u64,
    pub clock_mhz: f64,
    /// Bytes moved to or from DRAM (or the network for collectives).
    pub bytes: f64,
    pub flops: f64,
    /// Kernel launches the op makes.
    pub launches: u32,
}

/// A prediction for one op as it would be measured.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub gpu: String,
    pub op: String,
    pub dtype: Dtype,
    pub timing: Timing,
    pub predicted_ms: f64,
    pub kernel_ms: f64,
    pub host_ms: f64,
    pub bound: &'static str,
    pub tflops: f64,
    pub gbs: f64,
    pub tile: Option<String>,
    pub ctas: u64,
    pub waves: u64,
    pub clock_mhz: f64,
    pub launches: u32,
}

/// Where an op runs: how it is timed and whether its data is warm in L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub timing: Timing,
    /// The op's inputs are still in L2 from the previous identical call (a
    /// microbenchmark loop), rather than evicted by other work (a model step).
    pub l2_warm: bool,
}

impl Context {
    /// `timing=op` measurements come from loops that call one op again and again, so its
    /// data stays in L2; kernel-timed rows come from whole model steps, where other
    /// layers' weights evict it.
    pub fn for_timing(timing: Timing) -> Context {
        Context { timing, l2_warm: timing == Timing::Op }
    }
}

/// Predicts one op on one GPU, timed as `timing` says (see `Context::for_timing`).
pub fn predict(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, timing: Timing) -> Result<Prediction> {
    predict_in(gpu, templates, op, dtype, Context::for_timing(timing))
}

/// The framework call an op stands for, for its host cost: a GEMM with a bias is an
/// `nn.Linear` module call (addmm), one without is a plain `torch.bmm`/`matmul`.
pub fn host_call_kind(op: &Op) -> &'static str {
    match op {
        Op::Gemm { bias: true, .. } | Op::QuantGemm { bias: true, .. } => "linear",
        Op::QuantGemm { .. } => "gemm",
        other => other.name(),
    }
}

/// Predicts one op on one GPU in a given context.
pub fn predict_in(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, ctx: Context) -> Result<Prediction> {
    predict_on(gpu, templates, op, dtype, ctx, None)
}

/// Predicts one op in a given context on a node of type `node_type`: a table of
/// `kernels/topologies.toml`, as named by the `node_type` tag of collective trace rows.
/// `None` derives the node from the GPU profile. Only collectives depend on the node.
pub fn predict_on(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, ctx: Context, node_type: Option<&str>) -> Result<Prediction> {
    let timing = ctx.timing;
    let mut est = estimate_on(gpu, templates, op, dtype, ctx.l2_warm, node_type)?;
    let host = |est: &KernelEstimate| match timing {
        Timing::Kernel => 0.0,
        Timing::Op => {
            let l = &templates.launch;
            (l.host_us(&gpu.profile.vendor, host_call_kind(op)) + (est.launches.saturating_sub(1)) as f64 * l.extra_launch_us) / 1000.0
        }
    };
    let mut host_ms = host(&est);
    if host_ms > 0.0 && est.clock_mhz < gpu.profile.compute.boost_clock_mhz {
        // A call repeated in a loop idles the GPU while the host prepares the next one:
        // the kernel runs at the clock its duty cycle allows (`Gpu::duty`). At that clock
        // the library may pick another kernel, with another launch count.
        let duty = est.kernel_ms / (est.kernel_ms + host_ms);
        est = estimate_on(&gpu.with_duty(duty), templates, op, dtype, ctx.l2_warm, node_type)?;
        host_ms = host(&est);
    }
    let predicted_ms = est.kernel_ms + host_ms;
    let secs = est.kernel_ms / 1000.0;
    Ok(Prediction {
        gpu: gpu.key().to_string(),
        op: op.name().to_string(),
        dtype,
        timing,
        predicted_ms,
        kernel_ms: est.kernel_ms,
        host_ms,
        bound: if host_ms > est.kernel_ms { Bound::Launch.name() } else { est.bound.name() },
        tflops: if secs > 0.0 { est.flops / secs / 1e12 } else { 0.0 },
        gbs: if secs > 0.0 { est.bytes / secs / 1e9 } else { 0.0 },
        tile: est.tile,
        ctas: est.ctas,
        waves: est.waves,
        clock_mhz: est.clock_mhz,
        launches: est.launches,
    })
}

/// GPU-side estimate for one op, dispatched by kind.
pub fn estimate(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, l2_warm: bool) -> Result<KernelEstimate> {
    estimate_on(gpu, templates, op, dtype, l2_warm, None)
}

/// As `estimate`, on a node of type `node_type` (see `predict_on`).
pub fn estimate_on(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, l2_warm: bool, node_type: Option<&str>) -> Result<KernelEstimate> {
    op.check_size()?;
    let mut est = match *op {
        Op::Gemm { b, m, n, k, bias } => gemm::estimate(gpu, templates, gemm::GemmProblem::new(b, m, n, k, bias, dtype), l2_warm)?,
        Op::QuantGemm { m, n, k, bits, bias } => gemm::estimate(gpu, templates, gemm::GemmProblem::weight_only(m, n, k, bits, bias, dtype), l2_warm)?,
        Op::Conv2d { .. } => conv::estimate(gpu, templates, op, dtype, l2_warm)?,
        Op::Attention { .. } => attention::estimate(gpu, templates, op, dtype, l2_warm)?,
        Op::AllReduce { .. } | Op::SendRecv { .. } => collective::estimate(gpu, templates, op, dtype, node_type)?,
        _ => memory_bound::estimate(gpu, templates, op, dtype, l2_warm)?,
    };
    // No kernel finishes faster than an empty one.
    let floor_ms = gpu.isa.efficiency.kernel_floor_us * est.launches as f64 / 1000.0;
    if est.kernel_ms < floor_ms {
        est.kernel_ms = floor_ms;
        est.bound = Bound::Launch;
    }
    Ok(est)
}

pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

//! Fitting the few efficiency parameters on named training rows, and the leave-one-GPU-out
//! refit that scores GPUs no parameter saw.
//!
//! Rows are split deterministically: a row whose hashed line number is a multiple of
//! `FIT_EVERY` (`is_fit_line`) belongs to the fit set, every other row to the report set. `validate`
//! reports only report rows, so no accuracy figure comes from a row a parameter was
//! fitted on. Per-architecture parameters are fitted on that architecture's fit rows;
//! an architecture with no rows (a GPU nobody measured) takes the median of the fitted
//! architectures' values.

use crate::hw::{Isa, Registry};
use crate::kernel::{self, Context, Dtype, Op, Timing};
use crate::trace::canonical::{TraceFile, TraceKind};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// One row in `FIT_EVERY` (by line number) is a fit row.
pub const FIT_EVERY: usize = 10;
/// At most this many fit rows per (GPU, op) group, evenly spaced, to keep fits fast.
const MAX_ROWS_PER_GROUP: usize = 600;

/// Whether the row on this line of a trace file is a fit row: one line in `FIT_EVERY`,
/// chosen by a fixed hash of the line number rather than `line % FIT_EVERY`, because
/// trace files list ops in fixed cycles (vidur writes the 10 ops of a model layer per
/// token count, so every tenth line was the same op and the fit saw almost no RoPE,
/// SiLU or RMSNorm rows).
pub fn is_fit_line(line: usize) -> bool {
    splitmix64(line as u64).is_multiple_of(FIT_EVERY as u64)
}

/// SplitMix64's finaliser: a fixed, well-mixed bijection of 64-bit integers.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A parsed trace row ready to predict many times.
#[derive(Debug, Clone)]
pub struct Sample {
    pub gpu: String,
    pub vendor: String,
    pub arch: String,
    pub op: Op,
    pub dtype: Dtype,
    pub ctx: Context,
    pub measured_ms: f64,
    /// The `node_type` tag of a collective row (`kernels/topologies.toml`).
    pub node_type: Option<String>,
    /// The GPU's DRAM bandwidth comes from its spec × the architecture's `dram_stream`
    /// (no measured stream figure in its profile).
    pub spec_dram: bool,
    /// The GPU's L2 size in bytes.
    pub l2_bytes: f64,
    /// The GPU's peak fp32 rate at boost, FLOP/s.
    pub fp32_flops: f64,
}

/// Parses the rows of kernel traces that `keep(line)` selects and whose GPU is known.
pub fn samples(reg: &Registry, files: &[TraceFile], keep: impl Fn(usize) -> bool) -> Vec<Sample> {
    let mut out = vec![];
    for f in files.iter().filter(|f| f.kind == TraceKind::Kernels) {
        for (rec, &line) in f.rows.iter().zip(&f.lines) {
            if !keep(line) {
                continue;
            }
            let r = f.kernel_row(rec);
            let (Ok(gpu), Ok(op), Ok(dtype), Ok(timing), Some(m)) =
                (reg.gpu(r.gpu), Op::parse(r.op, r.shape), Dtype::parse(r.dtype), Timing::parse(r.timing), r.measured_ms)
            else {
                continue;
            };
            if m <= 0.0 {
                continue;
            }
            out.push(Sample {
                gpu: gpu.key().to_string(),
                vendor: gpu.profile.vendor.clone(),
                arch: gpu.profile.architecture.clone(),
                op,
                dtype,
                ctx: Context::for_timing(timing),
                measured_ms: m,
                node_type: crate::trace::canonical::tag(r.tags, "node_type").map(|t| t.trim().to_string()).filter(|t| !t.is_empty()),
                spec_dram: gpu.profile.memory.dram_bandwidth_measured_gbs.is_none(),
                l2_bytes: gpu.profile.memory.l2_mib * 1048576.0,
                fp32_flops: super::kineto::peak_flops(gpu, Dtype::Fp32),
            });
        }
    }
    // Thin large groups evenly. Kernel-timed skinny GEMMs (LLM decode) are a group of their
    // own: they are a few percent of a GPU's GEMM rows but the only ones that inform
    // `gemm_dram`.
    let mut groups: BTreeMap<(String, &'static str, bool), Vec<Sample>> = BTreeMap::new();
    for s in out {
        let skinny = s.ctx.timing == Timing::Kernel && matches!(s.op, Op::Gemm { m, n, .. } if m.min(n) <= 32);
        groups.entry((s.gpu.clone(), s.op.name(), skinny)).or_default().push(s);
    }
    groups
        .into_values()
        .flat_map(|v| {
            let step = v.len().div_ceil(MAX_ROWS_PER_GROUP).max(1);
            v.into_iter().step_by(step).collect::<Vec<_>>()
        })
        .collect()
}

/// Median |ln(predicted / measured)| over samples: robust, symmetric in over/under.
pub fn objective(reg: &Registry, samples: &[&Sample]) -> f64 {
    let mut errs: Vec<f64> = samples
        .par_iter()
        .filter_map(|s| {
            let g = reg.gpu(&s.gpu).ok()?;
            let p = kernel::predict_in(g, &reg.templates, &s.op, s.dtype, s.ctx).ok()?;
            Some((p.predicted_ms / s.measured_ms).ln().abs())
        })
        .collect();
    if errs.is_empty() {
        return f64::INFINITY;
    }
    errs.sort_by(f64::total_cmp);
    errs[errs.len() / 2]
}

/// A fitted parameter: its physical range and the rows that inform it (rows where it,
/// and not something else, decides the time).
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub lo: f64,
    pub hi: f64,
    pub rows: fn(&Sample) -> bool,
}

/// GEMMs large enough that host cost and fixed overheads do not decide their time, on the
/// FFMA pipe (fp32 on NVIDIA) or on the matrix units (CDNA runs fp32 on them too, so
/// its fp32 rows say nothing of the FFMA parameters).
fn big_matrix(s: &Sample, tensor: bool) -> bool {
    matches!(s.op, Op::Gemm { .. }) && on_tensor(s) == tensor && s.op.flops() >= 2e9
}

/// Whether the sample's matrix work runs on the tensor (matrix) units.
fn on_tensor(s: &Sample) -> bool {
    s.dtype != Dtype::Fp32 || s.arch.starts_with("cdna")
}

/// A plain (non-batched) GEMM call, `b == 1`, whose m, n and k are whole 16-byte vectors
/// (every big one in the NeuSight kernel rows is an nn.Linear). The unaligned ones are left
/// out of the fit: on Pascal they run up to 4x slower still, growing with k and with the
/// call's length in a way the model does not capture (fitted on them, `unbatched_issue`
/// dragged the aligned Linear layers of whole models off); they are scored all the same.
fn aligned_unbatched(s: &Sample) -> bool {
    let Op::Gemm { b: 1, m, n, k, .. } = s.op else { return false };
    crate::kernel::gemm::vector_aligned([m, n, k], s.dtype)
}

/// Mid-size matrix work on the FFMA pipe (fp32 on NVIDIA) or on the tensor cores: GEMMs
/// and attention. Convolutions are left out: their time depends on which cuDNN algorithm
/// wins, so they would tie the GEMM kernels' fixed costs to the Winograd model.
fn mid_matrix(s: &Sample, tensor: bool) -> bool {
    matches!(s.op, Op::Gemm { .. } | Op::Attention { .. }) && s.op.flops() < 2e9 && s.op.flops() >= 2e7 && on_tensor(s) == tensor
}

/// A streaming element-wise op far larger than any L2 on a GPU whose bandwidth is its spec
/// × `dram_stream`: DRAM bandwidth alone decides its time.
fn big_stream(s: &Sample) -> bool {
    if !s.spec_dram || !matches!(s.op, Op::Elementwise { .. }) {
        return false;
    }
    let t = crate::kernel::memory_bound::traffic(&s.op, s.dtype);
    t.read + t.write >= 256e6
}

/// A kernel-timed GEMM over at most 32 tokens whose weight is twice the L2 or more: it
/// streams the weight from DRAM once, and DRAM bandwidth alone decides its time.
fn skinny_stream(s: &Sample) -> bool {
    let Op::Gemm { b: 1, m, n, k, .. } = s.op else { return false };
    s.ctx.timing == Timing::Kernel && m.min(n) <= 32 && (m.max(n) * k) as f64 * s.dtype.bytes() >= 2.0 * s.l2_bytes
}

/// Per-architecture parameters, in fitting order.
pub const ARCH_PARAMS: &[Param] = &[
    Param { name: "dram_stream", lo: 0.5, hi: 1.0, rows: big_stream },
    Param { name: "gemm_dram", lo: 0.5, hi: 1.0, rows: skinny_stream },
    Param { name: "ffma_issue", lo: 0.3, hi: 1.0, rows: |s| big_matrix(s, false) && !matches!(s.op, Op::Gemm { b: 1, .. }) },
    Param { name: "unbatched_issue", lo: 0.3, hi: 1.5, rows: |s| big_matrix(s, false) && aligned_unbatched(s) },
    Param { name: "tensor_issue", lo: 0.3, hi: 1.0, rows: |s| big_matrix(s, true) || (s.op.name() == "attention" && s.op.flops() >= 2e9) },
    Param { name: "conv_issue", lo: 0.2, hi: 1.5, rows: |s| matches!(s.op, Op::Conv2d { .. }) && s.op.flops() >= 2e9 },
    Param { name: "winograd_issue", lo: 0.2, hi: 1.5, rows: |s| matches!(s.op, Op::Conv2d { .. }) && s.op.flops() >= 2e9 },
    Param { name: "cta_overhead_cycles", lo: 100.0, hi: 20000.0, rows: |s| mid_matrix(s, false) },
    Param { name: "tensor_cta_overhead_cycles", lo: 100.0, hi: 20000.0, rows: |s| mid_matrix(s, true) },
];

/// A framework call small enough that its host cost decides its time.
fn small_call(s: &Sample, op: &str) -> bool {
    if s.ctx.timing != Timing::Op || s.op.name() != op {
        return false;
    }
    match s.op {
        Op::Gemm { bias: true, .. } => s.op.flops() < 1e8,
        Op::Gemm { .. } => s.op.flops() < 2e7,
        // Under 20 µs of the GPU's peak fp32 work: the same rows on every GPU would be
        // host-bound on a fast one and not on a slow one.
        Op::Conv2d { .. } => s.op.flops() < 20e-6 * s.fp32_flops,
        _ => crate::kernel::memory_bound::traffic(&s.op, s.dtype).elems < 262144.0,
    }
}

/// Host parameters (one value for every GPU, a property of the framework): fitted on
/// op-timed rows whose kernels are tiny.
pub const HOST_PARAMS: &[Param] = &[
    // Op-timed element-wise calls on NVIDIA (CUDA) or AMD (HIP) small enough that the host
    // cost decides them. (Fitted on every element-wise row, where most rows do not depend
    // on it, the median landed on 22.5 µs or, without the A100-40 or the P100 rows, on
    // 17.5: the leave-one-GPU-out element-wise median was 16%.)
    Param { name: "eager_op_us", lo: 3.0, hi: 80.0, rows: |s| small_call(s, "elementwise") && s.vendor == "NVIDIA" },
    Param { name: "vendor_eager_op_us.AMD", lo: 3.0, hi: 80.0, rows: |s| small_call(s, "elementwise") && s.vendor == "AMD" },
    // A cuDNN call's "host" cost in the NeuSight rows is mostly a per-shape overhead of the
    // measurement (0.05-0.45 ms on the A100, the same shapes slow on every GPU, unrelated to
    // any shape feature), so its range is wide (at 200 µs the bound, not the rows, decided
    // it) and it takes convolutions up to 3e8 FLOP, for enough rows to fit a noisy median.
    Param { name: "op_extra_us.conv2d", lo: 0.01, hi: 1000.0, rows: |s| small_call(s, "conv2d") },
    Param { name: "op_extra_us.softmax", lo: 0.01, hi: 100.0, rows: |s| small_call(s, "softmax") },
    Param { name: "op_extra_us.layernorm", lo: 0.01, hi: 100.0, rows: |s| small_call(s, "layernorm") },
    Param { name: "op_extra_us.gemm", lo: 0.01, hi: 100.0, rows: |s| small_call(s, "gemm") && matches!(s.op, Op::Gemm { bias: false, .. }) },
    Param { name: "op_extra_us.linear", lo: 0.01, hi: 100.0, rows: |s| small_call(s, "gemm") && matches!(s.op, Op::Gemm { bias: true, .. }) },
];

/// The bound of its range a fitted value sits on (within 0.5%), if any: there the range,
/// not the rows, decided it, and the value says more about the range than the physics.
pub fn at_bound(name: &str, v: f64) -> Option<&'static str> {
    let p = ARCH_PARAMS.iter().chain(HOST_PARAMS).chain(KERNEL_PARAMS).find(|p| p.name == name)?;
    if v <= p.lo * 1.005 {
        Some("lower")
    } else if v >= p.hi / 1.005 {
        Some("upper")
    } else {
        None
    }
}

/// Library kernel parameters (one value for every GPU: a property of the kernel's code):
/// the dependent instruction chain per loop iteration of row-wise kernels (vLLM's scalar,
/// block-per-token kernels; PyTorch's Welford LayerNorm), fitted on kernel-timed rows big enough that the per-iteration latency, not a
/// launch floor, decides the time.
pub const KERNEL_PARAMS: &[Param] = &[
    Param { name: "dependent_cycles.rmsnorm", lo: 1.0, hi: 3000.0, rows: |s| latency_loop(s, "rmsnorm") },
    Param { name: "dependent_cycles.silu_mul", lo: 1.0, hi: 3000.0, rows: |s| latency_loop(s, "silu_mul") },
    Param { name: "dependent_cycles.rope", lo: 1.0, hi: 3000.0, rows: |s| latency_loop(s, "rope") },
    Param { name: "dependent_cycles.layernorm", lo: 1.0, hi: 3000.0, rows: |s| latency_loop(s, "layernorm") },
];

fn latency_loop(s: &Sample, op: &str) -> bool {
    s.ctx.timing == Timing::Kernel && s.op.name() == op && crate::kernel::memory_bound::traffic(&s.op, s.dtype).elems >= 1048576.0
}

/// The memory-bound op a kernel parameter (`dependent_cycles.<op>`) belongs to.
fn kernel_op(name: &str) -> &str {
    name.strip_prefix("dependent_cycles.").unwrap_or_else(|| unreachable!("unknown kernel parameter {name}"))
}

fn kernel_impl<'a>(reg: &'a mut Registry, name: &str) -> &'a mut crate::kernel::templates::MemoryBoundImpl {
    let op = kernel_op(name);
    let ops = &mut reg.templates.memory_bound.op;
    let i = ops.iter().position(|i| i.op == op).unwrap_or_else(|| unreachable!("no memory-bound template for {op}"));
    &mut ops[i]
}

pub fn kernel_set(reg: &mut Registry, name: &str, v: f64) {
    kernel_impl(reg, name).dependent_cycles = v;
}

/// A kernel parameter's committed value.
pub fn kernel_get(reg: &Registry, name: &str) -> f64 {
    let op = kernel_op(name);
    reg.templates.memory_bound.op.iter().find(|i| i.op == op).map_or(0.0, |i| i.dependent_cycles)
}

pub fn host_set(reg: &mut Registry, name: &str, v: f64) {
    let l = &mut reg.templates.launch;
    match name.split_once('.') {
        Some(("op_extra_us", op)) => {
            l.op_extra_us.insert(op.to_string(), v);
        }
        Some(("vendor_eager_op_us", vendor)) => {
            l.vendor_eager_op_us.insert(vendor.to_string(), v);
        }
        _ if name == "eager_op_us" => l.eager_op_us = v,
        _ => unreachable!("unknown host parameter {name}"),
    }
}

/// A host parameter's committed value.
pub fn host_get(reg: &Registry, name: &str) -> f64 {
    let l = &reg.templates.launch;
    match name.split_once('.') {
        Some(("op_extra_us", op)) => l.op_extra_us.get(op).copied().unwrap_or(0.0),
        Some(("vendor_eager_op_us", vendor)) => l.vendor_eager_op_us.get(vendor).copied().unwrap_or(l.eager_op_us),
        _ => l.eager_op_us,
    }
}

/// A per-architecture parameter's value in `isa` (called once per parameter and sweep,
/// so the copy `param_mut` needs is cheap beside the objective).
pub fn get(isa: &Isa, name: &str) -> f64 {
    *param_mut(&mut isa.clone(), name)
}

/// Sets a per-architecture parameter in `isa`.
pub fn set(isa: &mut Isa, name: &str, v: f64) {
    *param_mut(isa, name) = v;
}

/// The field a per-architecture parameter names: the one list of them.
fn param_mut<'a>(isa: &'a mut Isa, name: &str) -> &'a mut f64 {
    let e = &mut isa.efficiency;
    match name {
        "ffma_issue" => &mut e.ffma_issue,
        "tensor_issue" => &mut e.tensor_issue,
        "dram_stream" => &mut e.dram_stream,
        "dram_loaded_latency_factor" => &mut e.dram_loaded_latency_factor,
        "cta_overhead_cycles" => &mut e.cta_overhead_cycles,
        "tensor_cta_overhead_cycles" => &mut e.tensor_cta_overhead_cycles,
        "conv_issue" => &mut e.conv_issue,
        "winograd_issue" => &mut e.winograd_issue,
        "unbatched_issue" => &mut e.unbatched_issue,
        "gemm_dram" => &mut e.gemm_dram,
        "ffma_pj_per_flop" => &mut isa.power.ffma_pj_per_flop,
        _ => unreachable!("unknown parameter {name}"),
    }
}

/// The TOML table a parameter lives in.
pub fn table_of(name: &str) -> &'static str {
    match name {
        "ffma_pj_per_flop" => "power",
        _ => "efficiency",
    }
}

fn relevant<'a>(samples: &'a [Sample], p: &Param, arch: Option<&str>) -> Vec<&'a Sample> {
    samples.iter().filter(|s| arch.is_none_or(|a| s.arch == a)).filter(|s| (p.rows)(s)).collect()
}

/// Golden-section search on a log scale for the value minimising `f`.
fn golden(lo: f64, hi: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let (mut a, mut b) = (lo.ln(), hi.ln());
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - r * (b - a);
    let mut d = a + r * (b - a);
    let (mut fc, mut fd) = (f(c.exp()), f(d.exp()));
    for _ in 0..18 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - r * (b - a);
            fc = f(c.exp());
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + r * (b - a);
            fd = f(d.exp());
        }
    }
    ((a + b) / 2.0).exp()
}

/// What a fit produced, for printing and writing back.
#[derive(Debug, Clone, Default)]
pub struct FitReport {
    /// (architecture or "host", parameter) → (value, rows used, objective after); rows 0
    /// means pooled from the fitted architectures.
    pub values: BTreeMap<(String, String), (f64, usize, f64)>,
    pub gpus: BTreeSet<String>,
}

/// The rows that inform the host-staged channel rate (`[staged] channel_gbs` of
/// `kernels/topologies.toml`): collectives on a node whose transport stages through host
/// memory where the row uses it (the socket transport across nodes, SHM inside one),
/// except sockets over Ethernet, whose large rows the TCP streams decide
/// (`ethernet_stream_row`).
fn staged_row(reg: &Registry, s: &Sample) -> bool {
    use crate::kernel::collective::{IntraTransport, NetTransport, Network};
    let (nodes, gpn) = match s.op {
        Op::AllReduce { nodes, gpus_per_node, .. } | Op::SendRecv { nodes, gpus_per_node, .. } => (nodes, gpus_per_node),
        _ => return false,
    };
    let Some(node) = s.node_type.as_deref().and_then(|n| reg.templates.topologies.get(n).ok()) else { return false };
    (nodes > 1 && node.net_transport() == NetTransport::Socket && node.network != Network::Ethernet)
        || (nodes <= 1 && gpn > 1 && node.intra_transport == IntraTransport::Shm)
}

/// The rows that inform the Ethernet TCP stream rate (`[ethernet_stream] channel_gbs` of
/// `kernels/topologies.toml`): collectives across nodes whose socket transport runs over
/// Ethernet. They also fill their buffers at the staged rate, which is fitted first on
/// rows that do not depend on the stream rate (`staged_row` leaves these out).
fn ethernet_stream_row(reg: &Registry, s: &Sample) -> bool {
    use crate::kernel::collective::{NetTransport, Network};
    let nodes = match s.op {
        Op::AllReduce { nodes, .. } | Op::SendRecv { nodes, .. } => nodes,
        _ => return false,
    };
    let Some(node) = s.node_type.as_deref().and_then(|n| reg.templates.topologies.get(n).ok()) else { return false };
    nodes > 1 && node.net_transport() == NetTransport::Socket && node.network == Network::Ethernet
}

/// Median |ln(predicted / measured)| of collective samples on their nodes.
fn collective_objective(reg: &Registry, samples: &[&Sample]) -> f64 {
    let mut errs: Vec<f64> = samples
        .par_iter()
        .filter_map(|s| {
            let g = reg.gpu(&s.gpu).ok()?;
            let p = kernel::predict_on(g, &reg.templates, &s.op, s.dtype, s.ctx, s.node_type.as_deref()).ok()?;
            Some((p.predicted_ms / s.measured_ms).ln().abs())
        })
        .collect();
    if errs.is_empty() {
        return f64::INFINITY;
    }
    errs.sort_by(f64::total_cmp);
    errs[errs.len() / 2]
}

/// The rows that inform the peer-to-peer channel rate (`[p2p] channel_gbs` of
/// `kernels/topologies.toml`): all-reduces inside one node whose ring runs over NVLink
/// through P2P (an NVSwitch node, or a bridged pair). A ring over PCIe is held to NCCL's
/// PCIe figure by its 4 channels at any rate above 6 GB/s, so its rows do not inform it;
/// rows across nodes are held to the network's rate.
fn p2p_row(reg: &Registry, s: &Sample) -> bool {
    use crate::kernel::collective::{self, Fabric, IntraTransport};
    let Op::AllReduce { nodes, gpus_per_node, .. } = s.op else { return false };
    if nodes > 1 || gpus_per_node < 2 {
        return false;
    }
    let Ok(g) = reg.gpu(&s.gpu) else { return false };
    let Ok(node) = collective::topology(g, &reg.templates, s.node_type.as_deref(), gpus_per_node) else { return false };
    node.intra_transport == IntraTransport::P2p
        && match node.intra {
            Fabric::Nvswitch => true,
            Fabric::NvlinkPairs => gpus_per_node <= 2,
            Fabric::Pcie => false,
        }
}

/// Fits the peer-to-peer channel rate (one value for every node and GPU) on its rows,
/// from the same start whatever was committed; None with fewer than 20 rows.
pub fn fit_p2p(reg: &mut Registry, samples: &[Sample]) -> Option<(f64, usize, f64)> {
    let rows: Vec<&Sample> = samples.iter().filter(|s| p2p_row(reg, s)).collect();
    if rows.len() < 20 {
        return None;
    }
    let objective = |v: f64| {
        let mut r = reg.clone();
        r.templates.topologies.p2p.channel_gbs = v;
        collective_objective(&r, &rows)
    };
    // Above the rate at which the channels carry NCCL's whole link figure the objective
    // is flat, which a golden-section search alone can wander into: scan a log grid
    // first, then refine between the best point's neighbours.
    const LO: f64 = 1.0;
    const HI: f64 = 50.0;
    const STEPS: usize = 32;
    let grid: Vec<f64> = (0..=STEPS).map(|i| LO * (HI / LO).powf(i as f64 / STEPS as f64)).collect();
    let scores: Vec<f64> = grid.iter().map(|&v| objective(v)).collect();
    let best = (0..grid.len()).fold(0, |b, i| if scores[i] < scores[b] { i } else { b });
    let v = golden(grid[best.saturating_sub(1)], grid[(best + 1).min(STEPS)], objective);
    reg.templates.topologies.p2p.channel_gbs = v;
    Some((v, rows.len(), collective_objective(reg, &rows)))
}

/// Fits the host-staged channel rate (one value for every node and GPU) on its rows,
/// from the same start whatever was committed; None with fewer than 20 rows.
pub fn fit_staged(reg: &mut Registry, samples: &[Sample]) -> Option<(f64, usize, f64)> {
    fit_channel_rate(reg, samples, staged_row, (0.5, 50.0), |t| &mut t.staged)
}

/// Fits the Ethernet TCP stream rate (one value for every node and GPU) on its rows, the
/// staged rate already fitted; None with fewer than 20 rows.
pub fn fit_ethernet_stream(reg: &mut Registry, samples: &[Sample]) -> Option<(f64, usize, f64)> {
    fit_channel_rate(reg, samples, ethernet_stream_row, (0.1, 20.0), |t| &mut t.ethernet_stream)
}

/// Golden-section fit of one collective channel rate (GB/s, in `range`) on the rows `row`
/// selects: (value, rows, objective after), or None with fewer than 20 rows.
fn fit_channel_rate(
    reg: &mut Registry,
    samples: &[Sample],
    row: fn(&Registry, &Sample) -> bool,
    range: (f64, f64),
    rate: fn(&mut crate::kernel::collective::Topologies) -> &mut crate::kernel::collective::ChannelRate,
) -> Option<(f64, usize, f64)> {
    let rows: Vec<&Sample> = samples.iter().filter(|s| row(reg, s)).collect();
    if rows.len() < 20 {
        return None;
    }
    let v = golden(range.0, range.1, |v| {
        let mut r = reg.clone();
        rate(&mut r.templates.topologies).channel_gbs = v;
        collective_objective(&r, &rows)
    });
    rate(&mut reg.templates.topologies).channel_gbs = v;
    Some((v, rows.len(), collective_objective(reg, &rows)))
}

/// Fits host and per-architecture parameters in place on `samples`.
pub fn fit(reg: &mut Registry, samples: &[Sample], sweeps: usize) -> FitReport {
    // Start every fitted value from the same defaults, so the result depends only on the
    // rows, not on what was fitted before.
    let defaults = crate::hw::isa::Efficiency::default();
    let archs: Vec<String> = reg.isas().map(|i| i.architecture.clone()).collect();
    for arch in &archs {
        let mut isa = (**reg.isa(arch).unwrap()).clone();
        let fresh = Isa { efficiency: defaults.clone(), ..isa.clone() };
        for p in ARCH_PARAMS {
            set(&mut isa, p.name, get(&fresh, p.name));
        }
        reg.replace_isa(isa);
    }
    let launch = crate::kernel::templates::LaunchModel::default();
    reg.templates.launch.eager_op_us = launch.eager_op_us;
    reg.templates.launch.op_extra_us.clear();
    reg.templates.launch.vendor_eager_op_us.clear();
    for p in KERNEL_PARAMS {
        kernel_set(reg, p.name, 0.0);
    }
    let mut report = refine(reg, samples, sweeps);
    pool_unfitted(reg, &mut report);
    // The collectives' three fitted rates, after the host cost (an all-reduce never takes
    // less than one host call): P2P channels first (rows inside one node), then the
    // host-staged channels (rows that also cross P2P links inside their nodes), then the
    // Ethernet TCP streams (rows whose buffers also fill at the staged rate).
    reg.templates.topologies.p2p.channel_gbs = crate::kernel::collective::DEFAULT_P2P_CHANNEL_GBS;
    if let Some(fitted) = fit_p2p(reg, samples) {
        report.values.insert(("p2p".into(), "channel_gbs".into()), fitted);
    }
    reg.templates.topologies.staged.channel_gbs = crate::kernel::collective::DEFAULT_STAGED_CHANNEL_GBS;
    if let Some(fitted) = fit_staged(reg, samples) {
        report.values.insert(("staged".into(), "channel_gbs".into()), fitted);
    }
    reg.templates.topologies.ethernet_stream.channel_gbs = crate::kernel::collective::DEFAULT_ETHERNET_STREAM_GBS;
    if let Some(fitted) = fit_ethernet_stream(reg, samples) {
        report.values.insert(("ethernet_stream".into(), "channel_gbs".into()), fitted);
    }
    report
}

/// Adjusts, from their current values, the parameters that `samples` have enough rows
/// for (20 per parameter); the others stay as they are. `fit` runs it from defaults;
/// `calibrate` from the committed values, on a user's own measurements.
pub fn refine(reg: &mut Registry, samples: &[Sample], sweeps: usize) -> FitReport {
    let mut report = FitReport { gpus: samples.iter().map(|s| s.gpu.clone()).collect(), ..Default::default() };
    let archs: BTreeSet<String> = samples.iter().map(|s| s.arch.clone()).collect();
    for _ in 0..sweeps {
        refine_global(reg, samples, HOST_PARAMS, "host", host_set, &mut report);
        refine_global(reg, samples, KERNEL_PARAMS, "kernel", kernel_set, &mut report);
        for arch in &archs {
            for p in ARCH_PARAMS {
                let rows = relevant(samples, p, Some(arch));
                if rows.len() < 20 {
                    continue;
                }
                let base = (**reg.isa(arch).expect("arch of a sample")).clone();
                let eval = |v: f64| {
                    let mut isa = base.clone();
                    set(&mut isa, p.name, v);
                    let mut r = reg.clone();
                    r.replace_isa(isa);
                    objective(&r, &rows)
                };
                let found = golden(p.lo, p.hi, eval);
                // Where the objective is flat (an unused power limit), keep the stated value.
                let current = get(&base, p.name);
                let v = if eval(found) < eval(current) - 1e-4 { found } else { current };
                let mut isa = base;
                set(&mut isa, p.name, v);
                reg.replace_isa(isa);
                report.values.insert((arch.clone(), p.name.into()), (v, rows.len(), objective(reg, &rows)));
            }
        }
    }
    report
}

/// One sweep over parameters that take one value for every GPU (host costs, library
/// kernel chains): each is searched on its rows, set with `set`, and reported under `scope`.
fn refine_global(reg: &mut Registry, samples: &[Sample], params: &[Param], scope: &str, set: fn(&mut Registry, &str, f64), report: &mut FitReport) {
    for p in params {
        let rows = relevant(samples, p, None);
        if rows.len() < 20 {
            continue;
        }
        let v = golden(p.lo, p.hi, |v| {
            let mut r = reg.clone();
            set(&mut r, p.name, v);
            objective(&r, &rows)
        });
        set(reg, p.name, v);
        report.values.insert((scope.into(), p.name.into()), (v, rows.len(), objective(reg, &rows)));
    }
}

/// Parameters an architecture without fit rows does not take from the others (see
/// `pool_unfitted`): it keeps the default.
fn unpooled(name: &str) -> bool {
    name == "unbatched_issue"
}

/// Architectures with no fit rows for a parameter take the median of the fitted ones.
fn pool_unfitted(reg: &mut Registry, report: &mut FitReport) {
    let all: Vec<String> = reg.isas().map(|i| i.architecture.clone()).collect();
    // Energies are physical properties of a process node, not of library code: an
    // unfitted architecture keeps its stated value rather than another node's. So does the
    // plain-call rate relative to the batched one: it is a difference between two kernel
    // families, below 1 on Pascal and Ampere, above on Volta (and on the T4, whose aligned
    // fit rows are under the 20 a fit needs), so a median says nothing of another library's
    // kernels; the default, 1, assumes no difference (`fit` starts every value there).
    for p in ARCH_PARAMS.iter().filter(|p| table_of(p.name) == "efficiency") {
        let mut fitted: Vec<f64> = report
            .values
            .iter()
            .filter(|((a, n), (_, rows, _))| n == p.name && a != "host" && *rows > 0)
            .map(|(_, (v, _, _))| *v)
            .collect();
        if fitted.is_empty() {
            continue;
        }
        fitted.sort_by(f64::total_cmp);
        let pooled = fitted[fitted.len() / 2];
        for arch in &all {
            let key = (arch.clone(), p.name.to_string());
            report.values.entry(key).or_insert_with(|| {
                let mut isa = (**reg.isa(arch).unwrap()).clone();
                if !unpooled(p.name) {
                    set(&mut isa, p.name, pooled);
                }
                let value = get(&isa, p.name);
                reg.replace_isa(isa);
                (value, 0, f64::NAN)
            });
        }
    }
}

/// Writes fitted values into the ISA files' `[efficiency]` tables and the launch file,
/// with a `[sources]` line per value naming the command and rows that produced it.
pub fn write_back(report: &FitReport, repo: &std::path::Path, command: &str) -> crate::Result<Vec<String>> {
    use toml_edit::{value, DocumentMut};
    let mut written = vec![];
    let gpus: Vec<&str> = report.gpus.iter().map(String::as_str).collect();
    // (scope, name, value, rows, objective after) per file.
    type Fitted<'a> = (&'a str, &'a str, f64, usize, f64);
    let mut by_file: BTreeMap<std::path::PathBuf, Vec<Fitted>> = BTreeMap::new();
    for ((scope, name), (v, rows, obj)) in &report.values {
        let path = match scope.as_str() {
            "host" => repo.join("kernels/launch.toml"),
            "kernel" => repo.join("kernels/memory_bound.toml"),
            "staged" | "p2p" | "ethernet_stream" => repo.join("kernels/topologies.toml"),
            _ => repo.join(format!("isa/{scope}.toml")),
        };
        by_file.entry(path).or_default().push((scope.as_str(), name, *v, *rows, *obj));
    }
    for (path, values) in by_file {
        let text = std::fs::read_to_string(&path).map_err(|e| crate::Error::Io { path: path.clone(), source: e })?;
        let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| crate::Error::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let host = path.ends_with("launch.toml");
        let kernel = path.ends_with("memory_bound.toml");
        let topo = path.ends_with("topologies.toml");
        for (scope, name, v, rows, obj) in values {
            let rounded = (v * 1e4).round() / 1e4;
            let how = if topo && scope == "p2p" {
                format!(
                    "fitted: by `{command}` on {rows} fit rows (one line in {FIT_EVERY}, fit::is_fit_line) of all-reduces inside one node whose ring runs over NVLink through P2P (fit::p2p_row; no document states what one NCCL channel's CTA achieves); median |ln(pred/meas)| after fit {obj:.3}"
                )
            } else if topo && scope == "ethernet_stream" {
                format!(
                    "fitted: by `{command}` on {rows} fit rows (one line in {FIT_EVERY}, fit::is_fit_line) of collectives across nodes whose socket transport runs over Ethernet (fit::ethernet_stream_row; no document states what one TCP stream of these VMs carries), after [staged]; median |ln(pred/meas)| after fit {obj:.3}"
                )
            } else if topo {
                format!(
                    "fitted: by `{command}` on {rows} fit rows (one line in {FIT_EVERY}, fit::is_fit_line) of collective traces on nodes whose rows use the socket transport over InfiniBand or the SHM transport (fit::staged_row; rows on other nodes do not depend on it); median |ln(pred/meas)| after fit {obj:.3}"
                )
            } else if rows == 0 && unpooled(name) {
                format!("default: no fit rows for this architecture, and the fitted architectures' values differ in sign (fit::pool_unfitted); `{command}`")
            } else if rows == 0 {
                format!("pooled: median of the fitted architectures' values (no fit rows for this architecture); `{command}`")
            } else {
                format!(
                    "fitted by `{command}` on {rows} fit rows (one line in {FIT_EVERY}, fit::is_fit_line) of the traces' GPUs {}; median |ln(pred/meas)| after fit {:.3}",
                    gpus.join(", "),
                    obj
                )
            };
            if kernel {
                let op = name.split_once('.').map_or(name, |(_, op)| op);
                let tables = doc["op"].as_array_of_tables_mut().ok_or_else(|| crate::Error::File {
                    path: path.display().to_string(),
                    msg: "expected [[op]] tables".into(),
                })?;
                let t = tables.iter_mut().find(|t| t.get("op").and_then(|o| o.as_str()) == Some(op)).ok_or_else(|| crate::Error::File {
                    path: path.display().to_string(),
                    msg: format!("no [[op]] table with op = \"{op}\""),
                })?;
                let rounded = rounded.round();
                t["dependent_cycles"] = value(rounded);
                t["dependent_cycles_source"] = value(how);
            } else if topo {
                doc[scope][name] = value(rounded);
                doc[scope]["sources"][name] = value(how);
            } else if host {
                match name.split_once('.') {
                    Some((table, key)) => {
                        if !doc.contains_key(table) {
                            doc[table] = toml_edit::table();
                        }
                        doc[table][key] = value(rounded);
                    }
                    None => doc[name] = value(rounded),
                }
                doc["sources"][name] = value(how);
            } else {
                let table = table_of(name);
                if !doc.contains_key(table) {
                    doc[table] = toml_edit::table();
                }
                doc[table][name] = value(rounded);
                doc["sources"][&format!("{table}.{name}")] = value(how);
            }
        }
        std::fs::write(&path, doc.to_string()).map_err(|e| crate::Error::Write { path: path.clone(), source: e })?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::at_bound;

    #[test]
    fn a_value_on_its_range_bound_is_flagged() {
        assert_eq!(at_bound("cta_overhead_cycles", 100.0459), Some("lower"));
        assert_eq!(at_bound("cta_overhead_cycles", 5000.0), None);
        assert_eq!(at_bound("conv_issue", 1.4997), Some("upper"));
        assert_eq!(at_bound("eager_op_us", 27.2), None);
        assert_eq!(at_bound("dependent_cycles.rmsnorm", 1.0007), Some("lower"));
        // Collective rates have no range in these lists.
        assert_eq!(at_bound("channel_gbs", 1.0), None);
    }
}

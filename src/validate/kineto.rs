//! Replay of a PyTorch profiler (Kineto) trace on the GPU it was recorded on (a
//! validation) or on another GPU (a prediction).
//!
//! Every GPU event gets a predicted duration (see `trace::kineto::classify` for how its
//! op and shape are found):
//! - op groups with a shape: `kernel::predict(gpu, op, dtype, Timing::Kernel)`, times
//!   the op's multiplier (2 for a convolution's backward);
//! - a GEMM kernel with cuBLAS helper kernels beside it: on the recorded GPU, the kernel
//!   that ran (its recorded tile and split-k, `gemm::estimate_launch`, without the
//!   reduction) and each helper as an element-wise pass over the output, each scored
//!   alone (helpers in `CategoryTotals::helper_ape`, apart from the GEMM kernels); on
//!   another GPU the library would pick anew, so the GEMM is the model's pick, which
//!   covers its own split-k reduction, and only the bias epilogue is predicted apart;
//! - tiled matrix kernels without a shape: m, n from tile × grid, k solved so that the
//!   model matches the recorded time on the recorded GPU, then predicted on the target;
//!   on the recorded GPU this reproduces the measurement and is not counted as a
//!   validation;
//! - everything else keeps its measured time on the recorded GPU; on another GPU it is
//!   scaled by `Scale`: compute-like kernels (matrix kernels) by the ratio of peak math
//!   rates in their dtype (tensor cores where the GPU has them for that dtype, the FMA
//!   pipe otherwise), memory-like ones (all other SM kernels, memsets, device copies) by
//!   the ratio of sustained DRAM bandwidth, NCCL kernels by the ratio of NVLink bandwidth
//!   per direction (PCIe where a GPU has no NVLink), pinned host↔device copies by the
//!   ratio of PCIe bandwidth, pageable ones not at all (the host's staging copy bounds them).
//!
//! The predicted timeline keeps the trace's own structure: on each stream kernels run in
//! their recorded order; each starts no earlier than its launch (the runtime call's end,
//! shifted by how much earlier or later the host got there, see below), than the previous
//! kernel on its stream, and than the kernel of another stream it waited for. A wait is
//! inferred where a kernel started later than its launch and its stream allowed, right
//! after another stream's kernel ended; the remaining unexplained delay is kept as a
//! fixed latency. The host shifts at synchronising runtime calls (`*Synchronize`,
//! `cudaMemcpy*`) that waited for GPU work: it resumes when the awaited kernel's
//! predicted end (plus the recorded wake-up latency) says, and every later launch from
//! that thread moves by the difference.

use crate::error::Result;
use crate::hw::{Gpu, Templates};
use crate::kernel::{self, gemm, Dtype, Op, Timing};
use crate::trace::kineto::classify::{Category, Helper, Mapped, Scale, Source, Work};
use crate::trace::kineto::{GpuKind, KinetoTrace};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// How a kernel's prediction was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// From an op and its shape (recorded dims, launch grid, memcpy bytes).
    Shape,
    /// Part of an op group whose lead kernel carries the prediction.
    Member,
    /// m, n from the launch, k inferred from the recorded time.
    KFromTime,
    /// Measured time kept (scaled on another GPU).
    Kept,
}

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::Shape => "shape",
            Basis::Member => "member",
            Basis::KFromTime => "k_from_time",
            Basis::Kept => "kept",
        }
    }
}

/// One GPU event replayed.
#[derive(Debug, Clone, Serialize)]
pub struct KernelRow {
    pub name: String,
    pub category: Category,
    /// The framework op and kernel op (`aten::addmm → gemm`).
    pub op: String,
    pub shape: String,
    pub measured_ms: f64,
    /// The prediction this row carries (an op group's lead carries the whole group).
    pub predicted_ms: Option<f64>,
    /// The duration used on the timeline (an op group's prediction shared by its
    /// kernels in proportion to their recorded times).
    pub timeline_ms: f64,
    pub basis: Basis,
    pub status: String,
    pub stream: i64,
}

/// Totals of one category (ms).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CategoryTotals {
    pub kernels: usize,
    pub measured_ms: f64,
    pub predicted_ms: f64,
    /// Measured time of kernels predicted from a shape (op groups included).
    pub shape_ms: f64,
    pub k_from_time_ms: f64,
    pub kept_ms: f64,
    /// APE of each op group predicted from a shape, %.
    pub group_ape: Vec<f64>,
    /// The same for op groups none of whose kernels overlapped a GPU event on another
    /// stream in the recorded timeline (concurrent kernels, NCCL above all, slow each
    /// other down; the model times a kernel alone).
    pub group_ape_alone: Vec<f64>,
    /// APE of each cuBLAS helper kernel (split-k reduction, bias epilogue) predicted on
    /// its own from its GEMM's shape, %: kept apart from `group_ape`, so that a GEMM
    /// category's median scores the matrix kernels alone.
    pub helper_ape: Vec<f64>,
}

/// One step (a `ProfilerStep#N`, or the whole trace): first GPU start to last GPU end.
#[derive(Debug, Clone, Serialize)]
pub struct StepTimes {
    pub name: String,
    pub kernels: usize,
    pub measured_ms: f64,
    pub predicted_ms: f64,
    pub measured_busy_ms: f64,
    pub predicted_busy_ms: f64,
}

/// A GPU event placed on the predicted timeline (µs from the trace's first GPU event).
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    pub index: usize,
    pub stream: i64,
    pub start_us: f64,
    pub end_us: f64,
    pub measured_start_us: f64,
    pub measured_end_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KinetoReplay {
    pub file: String,
    pub recorded_on: String,
    pub target: String,
    /// True when replayed on the GPU it was recorded on.
    pub validation: bool,
    pub rows: Vec<KernelRow>,
    pub categories: BTreeMap<Category, CategoryTotals>,
    /// Union of all GPU event intervals (kernels, memcpys, memsets), ms.
    pub measured_busy_ms: f64,
    pub predicted_busy_ms: f64,
    /// Union of the kernel intervals alone, ms.
    pub measured_kernel_busy_ms: f64,
    pub predicted_kernel_busy_ms: f64,
    pub steps: Vec<StepTimes>,
    pub placed: Vec<Placed>,
}

/// Peak math rate (FLOP/s at boost clock) a GPU offers a dtype: tensor cores where it
/// has them for the dtype, otherwise the FMA pipe (fp16 at its packed rate).
pub fn peak_flops(gpu: &Gpu, dtype: Dtype) -> f64 {
    let per_clk = gpu.tensor_flop_per_clk(dtype.name()).unwrap_or(match dtype {
        Dtype::Fp16 | Dtype::Bf16 => gpu.rates.hfma2_flop_per_clk.unwrap_or(gpu.rates.ffma_flop_per_clk),
        _ => gpu.rates.ffma_flop_per_clk,
    });
    per_clk * gpu.sms() * gpu.profile.compute.boost_clock_mhz * 1e6
}

fn pcie_gbs(gpu: &Gpu) -> Option<f64> {
    let i = &gpu.profile.interconnect;
    let per_lane = match i.pcie_gen? {
        3 => 0.985,
        4 => 1.969,
        5 => 3.938,
        6 => 7.563,
        g => 0.25 * (1u64 << (g.saturating_sub(1)).min(8)) as f64,
    };
    Some(per_lane * i.pcie_lanes.unwrap_or(16) as f64)
}

fn link_gbs(gpu: &Gpu) -> Option<f64> {
    gpu.profile.interconnect.nvlink_bandwidth_gbs_per_direction.or_else(|| pcie_gbs(gpu))
}

/// Factor that moves a kept kernel's time from `from` to `to` (1 on the same GPU, and
/// where a GPU lacks the figure).
pub fn scale_factor(scale: Scale, from: &Gpu, to: &Gpu) -> f64 {
    if from.key() == to.key() {
        return 1.0;
    }
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => a / b,
        _ => 1.0,
    };
    match scale {
        Scale::Compute(d) => ratio(Some(peak_flops(from, d)), Some(peak_flops(to, d))),
        Scale::Dram => ratio(Some(from.dram_gbs()), Some(to.dram_gbs())),
        Scale::Interconnect => ratio(link_gbs(from), link_gbs(to)),
        Scale::Pcie => ratio(pcie_gbs(from), pcie_gbs(to)),
        Scale::Host => 1.0,
    }
}

pub fn shape_text(op: &Op) -> String {
    match op {
        Op::Gemm { b, m, n, k, bias } => format!("b={b},m={m},n={n},k={k},bias={}", u8::from(*bias)),
        Op::QuantGemm { m, n, k, bits, bias } => format!("m={m},n={n},k={k},bits={bits},bias={}", u8::from(*bias)),
        Op::Conv2d { n, c, h, w, k, r, s, stride, pad } => format!("n={n},c={c},h={h},w={w},k={k},r={r},s={s},stride={stride},pad={pad}"),
        Op::Attention { b, hq, hkv, sq, skv, d, causal } => format!("b={b},hq={hq},hkv={hkv},sq={sq},skv={skv},d={d},causal={}", u8::from(*causal)),
        Op::Elementwise { func, numel, inputs } => format!("fn={func},numel={numel},inputs={inputs}"),
        Op::Softmax { rows, cols } | Op::Layernorm { rows, cols } | Op::Rmsnorm { rows, cols } => format!("rows={rows},cols={cols}"),
        Op::SiluMul { tokens, cols } => format!("tokens={tokens},cols={cols}"),
        Op::Rope { tokens, hq, hkv, d } => format!("tokens={tokens},hq={hq},hkv={hkv},d={d}"),
        Op::Embedding { tokens, dim, vocab } => format!("tokens={tokens},dim={dim},vocab={vocab}"),
        Op::AllReduce { bytes, gpus, nodes, gpus_per_node } | Op::SendRecv { bytes, gpus, nodes, gpus_per_node } => {
            format!("bytes={bytes},gpus={gpus},nodes={nodes},gpus_per_node={gpus_per_node}")
        }
    }
}

/// The kernels whose shapes the trace tells (an op's `Input Dims`, or a kernel name that
/// fixes them) as canonical kernel-trace CSV, one row per op (its kernels' summed time over
/// how many times the op ran), so that `calibrate` fits on a user's own Kineto recording.
/// Kernels without a shape are left out: nothing to fit on.
pub fn canonical_csv(trace: &KinetoTrace, mapped: &[Mapped], gpu_key: &str) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(crate::trace::canonical::KERNEL_COLUMNS);
    let source = format!("kineto:{}", trace.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
    for (i, m) in mapped.iter().enumerate() {
        let Work::Op { op, dtype, times, members, .. } = &m.work else { continue };
        if matches!(op, Op::AllReduce { .. } | Op::SendRecv { .. }) {
            continue; // a collective's time depends on the other ranks, not this GPU alone
        }
        let ids: &[usize] = if members.is_empty() { std::slice::from_ref(&i) } else { members };
        let measured_ms = ids.iter().map(|&j| trace.gpu[j].dur).sum::<f64>() / 1000.0 / times.max(1.0);
        let name: String = trace.gpu[i].name.chars().take(120).collect();
        let tags = format!("kernel={};framework_op={}", name.replace([';', '\n'], " "), m.op_name);
        let _ = w.write_record([gpu_key, op.name(), dtype.name(), &shape_text(op).replace(',', ";"), "kernel", &format!("{measured_ms}"), &source, &tags]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn gemm_ms(gpu: &Gpu, t: &Templates, b: u64, m: u64, n: u64, k: u64, dtype: Dtype) -> Option<f64> {
    kernel::estimate(gpu, t, &Op::Gemm { b, m, n, k, bias: false }, dtype, false).ok().map(|e| e.kernel_ms)
}

/// Modelled time (ms) of the GEMM kernel of a recorded launch (tile and split-k), without
/// its split-k reduction; None when the op is not a GEMM or the tile is not one of the
/// GPU's architecture. Timed in a model step (inputs not warm in L2), floored as every
/// kernel.
pub fn gemm_launch_ms(gpu: &Gpu, t: &Templates, op: &Op, dtype: Dtype, tile: &str, split: u64) -> Option<f64> {
    let Op::Gemm { b, m, n, k, bias } = *op else { return None };
    let est = gemm::estimate_launch(gpu, t, gemm::GemmProblem::new(b, m, n, k, bias, dtype), tile, split, false).ok()?;
    Some(est.kernel_ms.max(gpu.isa.efficiency.kernel_floor_us / 1000.0))
}

/// The k for which the model's time for a (b, m, n, k) GEMM on `gpu` matches `ms`
/// (clamped to [1, 2^22]; the model's time grows with k).
pub fn infer_k(gpu: &Gpu, t: &Templates, b: u64, m: u64, n: u64, dtype: Dtype, ms: f64) -> Option<u64> {
    let f = |k: u64| gemm_ms(gpu, t, b, m, n, k, dtype);
    let (mut lo, mut hi) = (1u64, 1u64 << 22);
    if f(lo)? >= ms {
        return Some(lo);
    }
    if f(hi)? <= ms {
        return Some(hi);
    }
    while hi - lo > (lo / 256).max(1) {
        let mid = lo + (hi - lo) / 2;
        if f(mid)? < ms {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let (flo, fhi) = (f(lo)?, f(hi)?);
    Some(if (ms - flo).abs() <= (fhi - ms).abs() { lo } else { hi })
}

fn union_ms(mut iv: Vec<(f64, f64)>) -> f64 {
    iv.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut cur): (f64, Option<(f64, f64)>) = (0.0, None);
    for (s, e) in iv {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total / 1000.0
}

fn is_sync_call(name: &str) -> bool {
    name.contains("Synchronize") || name.starts_with("cudaMemcpy") || name.starts_with("cuMemcpy")
}

/// Replays a classified trace on `target` (recorded on `recorded`).
pub fn replay(trace: &KinetoTrace, mapped: &[Mapped], recorded: &Gpu, target: &Gpu, templates: &Templates) -> Result<KinetoReplay> {
    let validation = recorded.key() == target.key();
    let n = trace.gpu.len();
    let ms = |i: usize| trace.gpu[i].dur / 1000.0;
    let mut rows: Vec<KernelRow> = Vec::with_capacity(n);
    let mut timeline_ms = vec![0.0; n];
    let mut k_cache: HashMap<(u64, u64, u64, Dtype, u64), Option<u64>> = HashMap::new();
    let mut group_of: Vec<Option<usize>> = vec![None; n];
    // GEMM kernels timed as the launch the trace recorded (tile and split-k), on the GPU
    // it was recorded on only: another GPU's library picks its own (the model's pick).
    // Their split-k reductions are then predicted as kernels of their own.
    let mut launch_ms: HashMap<usize, f64> = HashMap::new();
    if validation {
        for (i, m) in mapped.iter().enumerate() {
            if let Work::Op { op, dtype, launch: Some(l), .. } = &m.work {
                if let Some(ms) = gemm_launch_ms(target, templates, op, *dtype, &l.tile, l.split) {
                    launch_ms.insert(i, ms);
                }
            }
        }
    }
    for (i, (e, m)) in trace.gpu.iter().zip(mapped).enumerate() {
        let measured = ms(i);
        let mut row = KernelRow {
            name: e.name.clone(),
            category: m.category,
            op: m.op_name.clone(),
            shape: String::new(),
            measured_ms: measured,
            predicted_ms: None,
            timeline_ms: measured,
            basis: Basis::Kept,
            status: String::new(),
            stream: e.stream,
        };
        let mut notes: Vec<String> = if m.note.is_empty() { vec![] } else { vec![m.note.clone()] };
        let kept = |row: &mut KernelRow, scale: Scale, why: &str, notes: &mut Vec<String>| {
            let f = scale_factor(scale, recorded, target);
            row.predicted_ms = Some(measured * f);
            row.basis = Basis::Kept;
            notes.insert(0, if validation { format!("kept measured: {why}") } else { format!("kept measured × {f:.3} ({}): {why}", scale.name()) });
        };
        match &m.work {
            Work::Op { op, dtype, times, source, members, launch } => {
                row.op = if m.op_name.is_empty() { op.name().to_string() } else { format!("{} → {}", m.op_name, op.name()) };
                row.shape = format!("{};dtype={dtype}", shape_text(op));
                if let (Some(&ms), Some(l)) = (launch_ms.get(&i), launch) {
                    row.predicted_ms = Some(ms * times);
                    row.basis = Basis::Shape;
                    notes.insert(0, format!("the recorded kernel: {} with split-k {}", l.tile, l.split));
                } else {
                    if let Some(l) = launch.as_ref().filter(|_| members.len() > 1) {
                        notes.insert(0, format!("the model's own tile and split-k (recorded: {} with split-k {})", l.tile, l.split));
                    }
                    match kernel::predict(target, templates, op, *dtype, Timing::Kernel) {
                        Ok(p) => {
                            row.predicted_ms = Some(p.kernel_ms * times);
                            row.basis = Basis::Shape;
                            if members.len() > 1 {
                                notes.insert(0, format!("op of {} kernels: the prediction covers them all", members.len()));
                                for &j in members {
                                    group_of[j] = Some(i);
                                }
                            }
                            if *source == Source::InputDims && *times != 1.0 {
                                notes.push(format!("× {times}"));
                            }
                        }
                        Err(err) => {
                            let scale = if matches!(m.category, Category::Gemm | Category::Conv | Category::Attention) { Scale::Compute(*dtype) } else { Scale::Dram };
                            kept(&mut row, scale, &format!("model: {err}"), &mut notes);
                        }
                    }
                }
            }
            // A split-k reduction whose GEMM kernel is predicted by the model's own pick
            // (on another GPU): that prediction includes its reduction, as a member's.
            Work::Helper { lead, helper: Helper::SplitKReduce, .. } if !launch_ms.contains_key(lead) => {
                row.basis = Basis::Member;
                row.status = format!("in the op of row {} ({})", lead + 1, trace.gpu[*lead].name.chars().take(40).collect::<String>());
            }
            Work::Helper { helper, op, dtype, .. } => {
                row.op = if m.op_name.is_empty() { op.name().to_string() } else { format!("{} → {}", m.op_name, op.name()) };
                row.shape = format!("{};dtype={dtype}", shape_text(op));
                let what = match helper {
                    Helper::SplitKReduce => "split-k reduction",
                    Helper::Epilogue => "cuBLASLt bias epilogue",
                };
                match kernel::predict(target, templates, op, *dtype, Timing::Kernel) {
                    Ok(p) => {
                        row.predicted_ms = Some(p.kernel_ms);
                        row.basis = Basis::Shape;
                        notes.insert(0, format!("{what}: one pass over the GEMM's output"));
                    }
                    Err(err) => kept(&mut row, Scale::Dram, &format!("model: {err}"), &mut notes),
                }
            }
            Work::Member { lead } => {
                row.basis = Basis::Member;
                row.status = format!("in the op of row {} ({})", lead + 1, trace.gpu[*lead].name.chars().take(40).collect::<String>());
            }
            Work::TileGrid { b, m: mm, n: nn, dtype } => {
                let key = (*b, *mm, *nn, *dtype, e.dur.to_bits());
                let k = *k_cache.entry(key).or_insert_with(|| infer_k(recorded, templates, *b, *mm, *nn, *dtype, measured));
                match k.and_then(|k| gemm_ms(target, templates, *b, *mm, *nn, k, *dtype).map(|t| (k, t))) {
                    Some((k, t)) => {
                        row.op = if m.op_name.is_empty() { "gemm (tile × grid)".into() } else { format!("{} → gemm (tile × grid)", m.op_name) };
                        row.shape = format!("b={b},m={mm},n={nn},k={k};dtype={dtype}");
                        row.predicted_ms = Some(if validation { measured } else { t });
                        row.basis = Basis::KFromTime;
                        if validation {
                            notes.push("not a validation".into());
                        }
                    }
                    None => kept(&mut row, Scale::Compute(*dtype), "no k reproduces the recorded time", &mut notes),
                }
            }
            Work::Kept { scale, why } => kept(&mut row, *scale, why, &mut notes),
        }
        if row.basis != Basis::Member {
            row.status = notes.join("; ");
        }
        rows.push(row);
    }
    // Timeline durations: an op group's prediction shared by its kernels in proportion
    // to their recorded times.
    let mut group_measured: HashMap<usize, f64> = HashMap::new();
    for (j, g) in group_of.iter().enumerate() {
        if let Some(l) = g {
            *group_measured.entry(*l).or_default() += ms(j);
        }
    }
    for j in 0..n {
        timeline_ms[j] = match group_of[j] {
            Some(l) => {
                let gm = group_measured[&l];
                let share = if gm > 0.0 { ms(j) / gm } else { 1.0 / trace.gpu.iter().enumerate().filter(|(x, _)| group_of[*x] == Some(l)).count().max(1) as f64 };
                rows[l].predicted_ms.unwrap_or(0.0) * share
            }
            None => rows[j].predicted_ms.unwrap_or(rows[j].measured_ms),
        };
        rows[j].timeline_ms = timeline_ms[j];
    }
    // Category totals.
    let mut categories: BTreeMap<Category, CategoryTotals> = BTreeMap::new();
    for (j, r) in rows.iter().enumerate() {
        let c = categories.entry(r.category).or_default();
        c.kernels += 1;
        c.measured_ms += r.measured_ms;
        c.predicted_ms += timeline_ms[j];
        match (r.basis, group_of[j]) {
            (Basis::Shape | Basis::Member, _) => c.shape_ms += r.measured_ms,
            (Basis::KFromTime, _) => c.k_from_time_ms += r.measured_ms,
            (Basis::Kept, _) => c.kept_ms += r.measured_ms,
        }
    }
    let concurrent = overlaps_other_stream(trace);
    let mut group_concurrent: HashMap<usize, bool> = HashMap::new();
    for (j, g) in group_of.iter().enumerate() {
        if let Some(l) = g {
            *group_concurrent.entry(*l).or_default() |= concurrent[j];
        }
    }
    for (j, r) in rows.iter().enumerate() {
        if r.basis == Basis::Shape {
            let alone = !group_concurrent.get(&j).copied().unwrap_or(concurrent[j]);
            let m = group_of[j].map(|l| group_measured[&l]).unwrap_or(r.measured_ms);
            if m > 0.0 {
                if let Some(p) = r.predicted_ms {
                    let c = categories.entry(r.category).or_default();
                    if matches!(mapped[j].work, Work::Helper { .. }) {
                        c.helper_ape.push(100.0 * (p - m).abs() / m);
                        continue;
                    }
                    c.group_ape.push(100.0 * (p - m).abs() / m);
                    if alone {
                        c.group_ape_alone.push(100.0 * (p - m).abs() / m);
                    }
                }
            }
        }
    }
    let placed = place(trace, &timeline_ms);
    let measured_busy_ms = union_ms(placed.iter().map(|p| (p.measured_start_us, p.measured_end_us)).collect());
    let predicted_busy_ms = union_ms(placed.iter().map(|p| (p.start_us, p.end_us)).collect());
    let kernels = || placed.iter().filter(|p| trace.gpu[p.index].kind == GpuKind::Kernel);
    let measured_kernel_busy_ms = union_ms(kernels().map(|p| (p.measured_start_us, p.measured_end_us)).collect());
    let predicted_kernel_busy_ms = union_ms(kernels().map(|p| (p.start_us, p.end_us)).collect());
    let steps = step_times(trace, &placed);
    Ok(KinetoReplay {
        file: trace.path.display().to_string(),
        recorded_on: recorded.key().to_string(),
        target: target.key().to_string(),
        validation,
        rows,
        categories,
        measured_busy_ms,
        predicted_busy_ms,
        measured_kernel_busy_ms,
        predicted_kernel_busy_ms,
        steps,
        placed,
    })
}

/// For each GPU event: did it overlap (by more than 0.5 µs) an event on another stream?
fn overlaps_other_stream(trace: &KinetoTrace) -> Vec<bool> {
    let ev = &trace.gpu; // sorted by start
    let mut out = vec![false; ev.len()];
    for i in 0..ev.len() {
        let mut j = i + 1;
        while j < ev.len() && ev[j].ts < ev[i].end() - 0.5 {
            if ev[j].stream != ev[i].stream && ev[j].end() > ev[j].ts + 0.5 {
                out[i] = true;
                out[j] = true;
            }
            j += 1;
        }
    }
    out
}

/// Places every GPU event on the predicted timeline (see the module docs). Times are
/// kept relative to the first GPU event, so that µs fractions survive.
pub fn place(trace: &KinetoTrace, dur_ms: &[f64]) -> Vec<Placed> {
    let ev = &trace.gpu;
    let n = ev.len();
    let origin = ev.iter().map(|e| e.ts).fold(f64::INFINITY, f64::min);
    let start: Vec<f64> = ev.iter().map(|e| e.ts - origin).collect();
    let end: Vec<f64> = ev.iter().map(|e| e.ts - origin + e.dur).collect();
    // Recorded end order, for "which event ended just before" look-ups.
    let mut by_end: Vec<usize> = (0..n).collect();
    by_end.sort_by(|&a, &b| end[a].total_cmp(&end[b]));
    let ends: Vec<f64> = by_end.iter().map(|&i| end[i]).collect();
    // The latest-ending event (not on `stream`, if given) with its end in (after, upto].
    let latest_before = |upto: f64, after: f64, stream: Option<i64>| -> Option<usize> {
        let mut p = ends.partition_point(|&x| x <= upto);
        let mut steps = 0;
        while p > 0 && steps < 64 {
            p -= 1;
            steps += 1;
            let i = by_end[p];
            if end[i] <= after {
                return None;
            }
            if stream.is_none_or(|s| ev[i].stream != s) {
                return Some(i);
            }
        }
        None
    };
    // Synchronising host calls, by recorded end: (start, end, thread).
    let mut syncs: Vec<(f64, f64, &str)> = trace
        .runtime
        .iter()
        .filter(|r| is_sync_call(&r.name))
        .map(|r| (r.ts - origin, r.ts - origin + r.dur, r.tid.as_str()))
        .collect();
    syncs.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut next_sync = 0;
    let mut shift: HashMap<&str, f64> = HashMap::new();
    let mut pred_end = vec![f64::NAN; n];
    let mut pred_start = vec![0.0; n];
    let mut last_on_stream: HashMap<i64, usize> = HashMap::new();
    for i in 0..n {
        let e = &ev[i];
        // Host waits that ended before this event started.
        while next_sync < syncs.len() && syncs[next_sync].1 <= start[i] {
            let (s0, s1, tid) = syncs[next_sync];
            next_sync += 1;
            if let Some(w) = latest_before(s1 + 1.0, s0, None) {
                if !pred_end[w].is_nan() {
                    let old = shift.get(tid).copied().unwrap_or(0.0);
                    let wake = s1 - end[w];
                    let resume = (s0 + old).max(pred_end[w] + wake);
                    shift.insert(tid, resume - s1);
                }
            }
        }
        let (launch, tid) = match e.launch.map(|l| &trace.runtime[l]) {
            Some(r) => ((r.ts - origin + r.dur).min(start[i]), Some(r.tid.as_str())),
            None => (start[i], None),
        };
        let host_shift = tid.and_then(|t| shift.get(t)).copied().unwrap_or(0.0);
        let prev = last_on_stream.get(&e.stream).copied();
        let base_rec = launch.max(prev.map(|p| end[p]).unwrap_or(f64::NEG_INFINITY));
        let dep = if start[i] - base_rec > 1.0 { latest_before(start[i] + 0.5, base_rec, Some(e.stream)) } else { None };
        // Each constraint: (recorded, predicted) time before which the event cannot
        // start. One the recording itself broke (events on a stream overlapping by a µs
        // of timestamp noise) is relaxed by as much.
        let constraints = [
            Some((launch, launch + host_shift)),
            prev.map(|p| (end[p], pred_end[p])),
            dep.map(|d| (end[d], pred_end[d])),
        ];
        let ready_rec = constraints.iter().flatten().map(|c| c.0.min(start[i])).fold(f64::NEG_INFINITY, f64::max);
        let latency = (start[i] - ready_rec).max(0.0);
        let s = constraints.iter().flatten().map(|c| c.1 + (start[i] - c.0).min(0.0)).fold(f64::NEG_INFINITY, f64::max) + latency;
        pred_start[i] = s;
        pred_end[i] = s + dur_ms[i] * 1000.0;
        last_on_stream.insert(e.stream, i);
    }
    (0..n)
        .map(|i| Placed {
            index: i,
            stream: ev[i].stream,
            start_us: pred_start[i],
            end_us: pred_end[i],
            measured_start_us: start[i],
            measured_end_us: end[i],
        })
        .collect()
}

/// Step times: per `ProfilerStep#N` (events launched inside it), else the whole trace.
fn step_times(trace: &KinetoTrace, placed: &[Placed]) -> Vec<StepTimes> {
    let host_ts = |i: usize| trace.gpu[i].launch.map(|l| trace.runtime[l].ts).unwrap_or(trace.gpu[i].ts);
    let mut sets: Vec<(String, Vec<usize>)> = trace
        .steps
        .iter()
        .map(|s| (s.name.clone(), (0..placed.len()).filter(|&i| (s.ts..=s.ts + s.dur).contains(&host_ts(i))).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if sets.is_empty() {
        sets.push(("whole trace".into(), (0..placed.len()).collect()));
    }
    sets.into_iter()
        .map(|(name, idx)| {
            let span = |f: &dyn Fn(&Placed) -> (f64, f64)| {
                let (s, e) = idx.iter().map(|&i| f(&placed[i])).fold((f64::INFINITY, f64::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
                (e - s) / 1000.0
            };
            StepTimes {
                name,
                kernels: idx.len(),
                measured_ms: span(&|p| (p.measured_start_us, p.measured_end_us)),
                predicted_ms: span(&|p| (p.start_us, p.end_us)),
                measured_busy_ms: union_ms(idx.iter().map(|&i| (placed[i].measured_start_us, placed[i].measured_end_us)).collect()),
                predicted_busy_ms: union_ms(idx.iter().map(|&i| (placed[i].start_us, placed[i].end_us)).collect()),
            }
        })
        .collect()
}

/// The predicted timeline as Chrome-trace JSON (Perfetto opens it): one process for the
/// prediction, one per stream inside it; on the recorded GPU a second process with the
/// measured kernels.
pub fn chrome_trace(trace: &KinetoTrace, r: &KinetoReplay) -> serde_json::Value {
    let mut events = vec![];
    let mut procs = vec![(0, format!("{} (predicted)", r.target), false)];
    if r.validation {
        procs.push((1, format!("{} (measured)", r.recorded_on), true));
    }
    let mut streams: Vec<i64> = r.placed.iter().map(|p| p.stream).collect();
    streams.sort_unstable();
    streams.dedup();
    for (pid, label, measured) in procs {
        events.push(serde_json::json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": label}}));
        for s in &streams {
            events.push(serde_json::json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": s, "args": {"name": format!("stream {s}")}}));
        }
        for p in &r.placed {
            let row = &r.rows[p.index];
            let (ts, end) = if measured { (p.measured_start_us, p.measured_end_us) } else { (p.start_us, p.end_us) };
            let kind = match trace.gpu[p.index].kind {
                GpuKind::Kernel => "kernel",
                GpuKind::Memcpy => "memcpy",
                GpuKind::Memset => "memset",
            };
            events.push(serde_json::json!({
                "name": row.name, "cat": row.category.name(), "ph": "X", "pid": pid, "tid": p.stream,
                "ts": ts, "dur": (end - ts).max(0.001),
                "args": {"kind": kind, "op": row.op, "shape": row.shape, "basis": row.basis.name(),
                         "measured_us": row.measured_ms * 1000.0, "predicted_us": row.timeline_ms * 1000.0}
            }));
        }
    }
    serde_json::json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

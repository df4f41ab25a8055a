//! GEMM as the libraries run it: a grid of CTA tiles, each looping over k.
//!
//! For every tile the library ships for this architecture and dtype (and a few split-k
//! factors) the model counts, on the busiest SM, the cycles of each k-step — math on the
//! tensor or FFMA pipe, tile loads from L2, and the load latency the pipeline stages
//! cannot hide — times the steps and the rounds of CTAs that SM runs; DRAM traffic is
//! bounded separately from the tile reuse inside one wave. The library is assumed to pick
//! the fastest tile (cuBLAS's heuristics aim at that); `tile_agreement` in `validate`
//! reports how often the pick matches the kernel names recorded in real traces.

use super::templates::{GemmTile, MathPath};
use super::{ceil_div, Bound, Dtype, KernelEstimate};
use crate::error::{Error, Result};
use crate::hw::{Gpu, Templates};
use crate::sim::clock::{sustained_mhz, Activity};
use crate::sim::memory;

#[derive(Debug, Clone, Copy)]
pub struct GemmProblem {
    pub b: u64,
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub bias: bool,
    pub dtype: Dtype,
    /// Fraction of the main loop's issue slots left to the math (1 for a plain GEMM; less
    /// when the loop also computes im2col addresses or transforms, as in convolution).
    pub issue_share: f64,
    /// Bytes per element of `B` as stored (the weight): `dtype.bytes()` for a plain GEMM,
    /// less for weight-only quantised weights (scales included).
    pub b_bytes: f64,
    /// Instructions per `B` element each CTA spends converting the weight tile to the
    /// compute dtype in its main loop (0 for a plain GEMM).
    pub dequant_ops: f64,
    /// Whether a tile's first dimension (`bm` of `<arch>_sgemm_<bm>x<bn>`) runs along `n`.
    /// A row-major framework (PyTorch) computes `C[m,n]` with column-major cuBLAS as
    /// `Cᵀ = Bᵀ·Aᵀ`, so cuBLAS's M is our `n`: every grid recorded in the NeuSight traces
    /// is `⌈n/bm⌉ × ⌈m/bn⌉ × b` (e.g. maxwell_sgemm_128x64, m=268, n=18: grid 1x5). False
    /// for cuDNN's implicit GEMM, whose M is the output pixels, and for Marlin's weight-only
    /// kernels, whose tiles are token rows × weight columns.
    pub bm_along_n: bool,
    /// Whether the library may split `k` across CTAs when the grid is small (cuBLAS does;
    /// cuDNN's forward convolution kernels do not: every conv kernel recorded in the
    /// NeuSight traces is one grid over output pixels × filters).
    pub split_k: bool,
    /// Whether a batched problem (`b > 1`) runs cuBLAS's strided-batched SGEMM, which takes
    /// the tiles recorded for batched calls (`batched_archs`); false for a library kernel
    /// that batches its own way (cuDNN's fused Winograd, batched over the transform points).
    pub cublas_batched: bool,
    /// Only tiles this tall along M, without in-CTA k-slicing (a library kernel family of
    /// fixed CTA height: cuDNN's implicit-GEMM convolutions take 128 output pixels per
    /// CTA); 0 = any tile.
    pub cta_m: u32,
    /// Whether it is one plain cuBLAS GEMM call (`b == 1`: nn.Linear, GPT-2's Conv1D, a
    /// bias-free Linear), not a strided-batched one (`torch.bmm`): cuBLAS runs kernels of
    /// its own for each, which the traces time apart (`unbatched_issue`). `new` sets it
    /// from `b`; library kernels of their own (cuDNN's convolutions, Marlin) clear it.
    pub unbatched: bool,
}

/// Weights per fp16 scale of weight-only formats (GPTQ and AWQ's default group size).
pub const QUANT_GROUP: f64 = 128.0;

/// Instruction issues per weight to dequantise it in a GEMM main loop: the magic-number
/// conversion (one LOP3 or PRMT and one HSUB2/HFMA2 per two weights) and the group scale
/// (one HFMA2 per two), as FasterTransformer's and Marlin's converters do it. Estimate.
pub const DEQUANT_OPS_PER_WEIGHT: f64 = 1.5;

impl GemmProblem {
    pub fn new(b: u64, m: u64, n: u64, k: u64, bias: bool, dtype: Dtype) -> GemmProblem {
        GemmProblem { b, m, n, k, bias, dtype, issue_share: 1.0, b_bytes: dtype.bytes(), dequant_ops: 0.0, bm_along_n: true, split_k: true, cublas_batched: true, cta_m: 0, unbatched: b == 1 }
    }

    /// A weight-only quantised GEMM: fp16 (or `dtype`) activations times a `bits`-bit
    /// weight with one fp16 scale per `QUANT_GROUP` weights, dequantised in the main loop.
    pub fn weight_only(m: u64, n: u64, k: u64, bits: u64, bias: bool, dtype: Dtype) -> GemmProblem {
        // Marlin is not cuBLAS: it writes row-major C itself, its tile's first dimension
        // (thread_m_blocks × 16) runs along the tokens, m.
        GemmProblem { b_bytes: bits as f64 / 8.0 + 2.0 / QUANT_GROUP, dequant_ops: DEQUANT_OPS_PER_WEIGHT, bm_along_n: false, unbatched: false, ..GemmProblem::new(1, m, n, k, bias, dtype) }
    }
}

/// The math pipe a dtype runs on, with its FLOP per clock per SM.
fn math_rate(gpu: &Gpu, dtype: Dtype) -> Result<(MathPath, f64)> {
    let eff = &gpu.isa.efficiency;
    match dtype {
        // CDNA runs FP32 GEMM on its matrix cores (v_mfma_f32_*); NVIDIA on the FMA pipe.
        Dtype::Fp32 => match gpu.tensor_flop_per_clk("fp32") {
            Some(r) => Ok((MathPath::Tensor, r * eff.tensor_issue)),
            None => Ok((MathPath::Ffma, gpu.rates.ffma_flop_per_clk * eff.ffma_issue)),
        },
        _ => {
            if let Some(r) = gpu.tensor_flop_per_clk(dtype.name()) {
                return Ok((MathPath::Tensor, r * eff.tensor_issue));
            }
            match dtype {
                Dtype::Fp16 => {
                    let r = gpu.rates.hfma2_flop_per_clk.unwrap_or(gpu.rates.ffma_flop_per_clk);
                    Ok((MathPath::Ffma, r * eff.ffma_issue))
                }
                Dtype::Int8 if gpu.rates.dp4a_ops_per_clk.is_some() => {
                    Ok((MathPath::Ffma, gpu.rates.dp4a_ops_per_clk.unwrap() * eff.ffma_issue))
                }
                Dtype::Tf32 => Ok((MathPath::Ffma, gpu.rates.ffma_flop_per_clk * eff.ffma_issue)),
                _ => Err(Error::Unsupported {
                    gpu: gpu.key().to_string(),
                    what: format!("{dtype} matrix math"),
                    why: format!("{} ({}) tensor cores have no {dtype} mode", gpu.isa.name, gpu.profile.chip),
                }),
            }
        }
    }
}

/// Tiles the library would consider: this architecture's for the dtype and path, or,
/// for an architecture without its own list, every architecture's.
fn candidates<'a>(t: &'a Templates, gpu: &Gpu, dtype: Dtype, path: MathPath, batched: bool, weight_only: bool) -> Vec<&'a GemmTile> {
    let lookup = if path == MathPath::Ffma { "fp32" } else { dtype.name() };
    let arch = gpu.profile.architecture.as_str();
    if weight_only {
        // Mixed-input kernels where the architecture has them; else the plain tiles.
        let own: Vec<_> = t
            .gemm
            .tile
            .iter()
            .filter(|tile| tile.weight_only && tile.path == path && tile.dtypes.iter().any(|d| d == lookup) && tile.archs.iter().any(|a| a == arch))
            .filter(|tile| ctas_per_sm(gpu, tile, dtype) > 0)
            .collect();
        if !own.is_empty() {
            return own;
        }
    }
    let usable = |tile: &&GemmTile| {
        !tile.weight_only
            && tile.path == path
            && tile.dtypes.iter().any(|d| d == lookup)
            && (tile.chips.is_empty() || tile.chips.contains(&gpu.profile.chip))
            && ctas_per_sm(gpu, tile, dtype) > 0
    };
    let own: Vec<_> = t.gemm.tile.iter().filter(usable).filter(|tile| tile.archs.iter().any(|a| a == arch)).collect();
    if batched {
        let for_batched: Vec<_> = own.iter().copied().filter(|tile| tile.batched_archs.iter().any(|a| a == arch)).collect();
        if !for_batched.is_empty() {
            return for_batched;
        }
        // No record for this architecture: strided-batched SGEMM took the largest SIMT
        // tile on Ampere and Pascal, so assume the same.
        if path == MathPath::Ffma && !own.is_empty() {
            let largest = own.iter().map(|t| t.bm * t.bn).max().unwrap_or(0);
            return own.into_iter().filter(|t| t.bm * t.bn == largest).collect();
        }
    }
    if !own.is_empty() {
        return own;
    }
    t.gemm.tile.iter().filter(usable).collect()
}

/// CTAs of a tile that fit on one SM at once.
pub fn ctas_per_sm(gpu: &Gpu, tile: &GemmTile, dtype: Dtype) -> u64 {
    let mem = &gpu.profile.memory;
    let smem = tile.smem_bytes.map(|s| s as f64).unwrap_or_else(|| {
        tile.stages as f64 * (tile.bm + tile.bn) as f64 * tile.bk as f64 * dtype.bytes()
    });
    let regs = tile.regs_per_thread.map(|r| r as f64).unwrap_or_else(|| {
        // Accumulators plus operand fragments and addresses.
        let acc = (tile.bm * tile.bn) as f64 / tile.threads as f64 * if tile.path == MathPath::Tensor { 0.5 } else { 1.0 };
        (acc * 1.25 + 32.0).min(255.0)
    });
    let by_threads = mem.max_threads_per_sm as f64 / tile.threads as f64;
    let by_smem = mem.smem_per_sm_max_kib * 1024.0 / smem.max(1.0);
    let by_regs = mem.register_file_per_sm_kib * 1024.0 / 4.0 / (regs * tile.threads as f64);
    let by_blocks = mem.max_blocks_per_sm.unwrap_or(16) as f64;
    by_threads.min(by_smem).min(by_regs).min(by_blocks).floor().max(0.0) as u64
}

/// The tile's extent along `m` and along `n` (see `GemmProblem::bm_along_n`).
fn extents(p: &GemmProblem, tile: &GemmTile) -> (u64, u64) {
    if p.bm_along_n { (tile.bn as u64, tile.bm as u64) } else { (tile.bm as u64, tile.bn as u64) }
}

/// CTAs of one batch entry (before split-k).
fn grid_of(p: &GemmProblem, tile: &GemmTile) -> u64 {
    let (tm, tn) = extents(p, tile);
    ceil_div(p.m, tm) * ceil_div(p.n, tn) * p.b
}

#[derive(Debug, Clone)]
struct Timed {
    seconds: f64,
    bound: Bound,
    ctas: u64,
    waves: u64,
    dram_bytes: f64,
    launches: u32,
    /// Of `seconds`, the split-k reduction kernel's share (0 without split-k).
    reduce_seconds: f64,
}

/// Time of one tile choice with split-k factor `split`.
fn time_tile(gpu: &Gpu, p: &GemmProblem, tile: &GemmTile, split: u64, rate: f64, clock: f64, l2_warm: bool) -> Option<Timed> {
    let c = ctas_per_sm(gpu, tile, p.dtype);
    if c == 0 {
        return None;
    }
    let sms = gpu.profile.compute.sm_count as u64;
    let eff = &gpu.isa.efficiency;
    let lat = &gpu.isa.latency;
    let bytes = p.dtype.bytes();
    let out_bytes = if matches!(p.dtype, Dtype::Int8 | Dtype::Fp8) { 2.0 } else { bytes };
    let (tm, tn) = extents(p, tile);
    let (grid_m, grid_n) = (ceil_div(p.m, tm), ceil_div(p.n, tn));
    let ctas = grid_m * grid_n * p.b * split;
    // A tile's loads and stores are predicated on the matrix bounds: an edge tile moves
    // only its rows and columns inside the matrix (its math still covers the whole tile).
    // The mean over the grid of the extent each tile holds:
    let (valid_m, valid_n) = (p.m as f64 / grid_m as f64, p.n as f64 / grid_n as f64);
    let k_per = ceil_div(p.k, split);
    let k_iters = ceil_div(k_per, tile.bk as u64) as f64;

    // The busiest SM: q CTAs, run c at a time; the last round may hold fewer, which then
    // share the SM's pipes among fewer CTAs and finish sooner.
    let q = ceil_div(ctas, sms);
    let rounds = ceil_div(q, c);
    let last = q - (rounds - 1) * c;
    let overhead = if tile.path == MathPath::Tensor { eff.tensor_cta_overhead_cycles } else { eff.cta_overhead_cycles };
    // Integer/FP32 instruction lanes per SM per clock (the FFMA rate counts 2 per lane).
    let alu_lanes = gpu.rates.int32_ops_per_clk.unwrap_or(gpu.rates.ffma_flop_per_clk / 2.0).max(1.0);
    // One round of `conc` CTAs resident together: cycles, and which resource bounds it.
    let round = |conc: f64| {
        let warps = conc * tile.threads as f64 / gpu.isa.warp_size as f64;
        let util = (warps / eff.warps_for_peak).min(1.0);
        // Weight-only GEMMs convert the B tile on the CUDA cores before the MMAs use it.
        let dequant_step = conc * (tile.bn * tile.bk) as f64 * p.dequant_ops / (alu_lanes * util);
        let math_step = conc * 2.0 * (tile.bm * tile.bn * tile.bk) as f64 / (rate * p.issue_share * util) + dequant_step;
        let load_step = conc * (valid_m * bytes + valid_n * p.b_bytes) * tile.bk as f64 / eff.l2_bytes_per_clk_per_sm;
        let latency_step = lat.l2_hit_cycles / (tile.stages.max(2) - 1) as f64;
        let step = math_step.max(load_step).max(latency_step);
        let epilogue = conc * valid_m * valid_n * out_bytes / eff.l2_bytes_per_clk_per_sm;
        let cycles = k_iters * step + lat.dram_cycles + epilogue + overhead;
        let bound = if step == math_step {
            if tile.path == MathPath::Tensor { Bound::Tensor } else { Bound::Ffma }
        } else if step == load_step {
            Bound::L2
        } else {
            Bound::Latency
        };
        (cycles, bound)
    };
    let (full_cycles, full_bound) = round(q.min(c) as f64);
    let (last_cycles, _) = round(last as f64);
    let mut sm_cycles = if rounds > 1 { (rounds - 1) as f64 * full_cycles + last_cycles } else { last_cycles };
    if tile.persistent {
        // One CTA per SM loops over its tiles: the fixed costs are paid once.
        sm_cycles -= (rounds - 1) as f64 * (lat.dram_cycles + overhead);
    }
    let sm_seconds = sm_cycles / (clock * 1e6);

    // DRAM: inputs re-read once per tile row/column a wave does not share.
    let a = (p.b * p.m * p.k) as f64 * bytes;
    let bmat = (p.b * p.k * p.n) as f64 * p.b_bytes;
    let cmat = (p.b * p.m * p.n) as f64 * out_bytes;
    let footprint = a + bmat + cmat;
    // CTAs launch with blockIdx.x fastest, which runs along the tile's first dimension.
    let wave_ctas = (sms * c).min(ctas);
    let (rows_in_wave, cols_in_wave) = if p.bm_along_n {
        (ceil_div(wave_ctas, grid_n).min(grid_m).max(1) as f64, grid_n.min(wave_ctas).max(1) as f64)
    } else {
        (grid_m.min(wave_ctas).max(1) as f64, ceil_div(wave_ctas, grid_m).min(grid_n).max(1) as f64)
    };
    let tiles_a = ctas as f64 * (tm as f64 * k_per as f64 * bytes) / cols_in_wave;
    let tiles_b = ctas as f64 * (tn as f64 * k_per as f64 * p.b_bytes) / rows_in_wave;
    let mut dram_bytes = if l2_warm && memory::fits_l2(gpu, footprint) {
        0.0
    } else if memory::fits_l2(gpu, a / p.b as f64 + bmat / p.b as f64) {
        footprint
    } else {
        (tiles_a + tiles_b).max(a + bmat) + cmat
    };
    let mut launches = 1;
    let mut reduce_seconds = 0.0;
    if split > 1 {
        // Partial sums in fp32 written and read back by a reduction kernel.
        let partial = (p.b * p.m * p.n * split) as f64 * 4.0;
        dram_bytes += 2.0 * partial;
        reduce_seconds = memory::stream_seconds(gpu, memory::Level::Dram, partial + cmat, partial + cmat, clock);
        if !tile.persistent {
            reduce_seconds += eff.kernel_floor_us * 1e-6;
            launches = 2;
        }
    }
    let dram_seconds = dram_bytes / (gpu.profile.memory.dram_bandwidth_gbs * 1e9 * eff.gemm_dram);
    let (seconds, bound) = if dram_seconds > sm_seconds { (dram_seconds, Bound::Dram) } else { (sm_seconds, full_bound) };
    Some(Timed {
        seconds: seconds + reduce_seconds,
        bound,
        ctas,
        waves: ceil_div(ctas, sms * c),
        dram_bytes,
        launches,
        reduce_seconds,
    })
}

/// The tiles the library would weigh for this problem.
fn tiles_for<'a>(templates: &'a Templates, gpu: &Gpu, p: &GemmProblem, path: MathPath) -> Vec<&'a GemmTile> {
    let all = candidates(templates, gpu, p.dtype, path, p.b > 1 && p.cublas_batched, p.dequant_ops > 0.0);
    if p.cta_m == 0 {
        return all;
    }
    // The family's own tiles where the architecture ships tiles of that height; else any.
    let tall: Vec<_> = all.iter().copied().filter(|t| t.bm == p.cta_m && t.k_sliced <= 1).collect();
    if tall.is_empty() { all } else { tall }
}

/// One (tile, split-k) launch timed at the sustained clock its grid allows (the power
/// model's utilisation is how much of the machine the grid covers): its timing and that
/// clock, or None when the tile does not fit in one SM.
fn time_launch(gpu: &Gpu, p: &GemmProblem, tile: &GemmTile, split: u64, path: MathPath, rate: f64, l2_warm: bool) -> Option<(Timed, f64)> {
    let activity = if path == MathPath::Tensor { Activity::Tensor } else { Activity::Ffma };
    let util = ((grid_of(p, tile) * split) as f64 / gpu.profile.compute.sm_count as f64).min(1.0);
    let clock = sustained_mhz(gpu, activity, util);
    time_tile(gpu, p, tile, split, rate, clock, l2_warm).map(|t| (t, clock))
}

/// One candidate the selector weighed: (tile name, split-k, modelled ms, bound, waves).
pub type TimedCandidate = (String, u64, f64, Bound, u64);

/// Every (tile, split-k) candidate with its modelled time in ms and bound, fastest first:
/// what the selector weighed.
pub fn candidates_timed(gpu: &Gpu, templates: &Templates, p: GemmProblem, l2_warm: bool) -> Result<Vec<TimedCandidate>> {
    let (path, rate) = math_rate(gpu, p.dtype)?;
    let sms = gpu.profile.compute.sm_count as u64;
    let mut out = vec![];
    for tile in tiles_for(templates, gpu, &p, path) {
        for split in splits_for(&p, tile, sms) {
            if let Some((t, _)) = time_launch(gpu, &p, tile, split, path, rate, l2_warm) {
                out.push((tile.name.clone(), split, t.seconds * 1e3, t.bound, t.waves));
            }
        }
    }
    out.sort_by(|a, b| a.2.total_cmp(&b.2));
    Ok(out)
}

/// Split-k factors worth trying: only when the grid leaves SMs idle and k is long, and
/// never for strided-batched GEMMs (their grid's z dimension is the batch: the recorded
/// grids of every batched call in the traces are `x·y·b`).
fn splits_for(p: &GemmProblem, tile: &GemmTile, sms: u64) -> Vec<u64> {
    let grid = grid_of(p, tile);
    let mut splits = vec![1u64];
    if p.b > 1 || !p.split_k {
        return splits;
    }
    for s in [2u64, 3, 4, 6, 8, 12, 16, 24, 32] {
        if grid * s <= 2 * sms && p.k / s >= 256 {
            splits.push(s);
        }
    }
    splits
}

pub fn estimate(gpu: &Gpu, templates: &Templates, mut p: GemmProblem, l2_warm: bool) -> Result<KernelEstimate> {
    let (path, rate) = math_rate(gpu, p.dtype)?;
    p.issue_share = main_loop_share(gpu, &p, path);
    let tiles = tiles_for(templates, gpu, &p, path);
    if tiles.is_empty() {
        return Err(Error::Unsupported {
            gpu: gpu.key().to_string(),
            what: format!("{} GEMM", p.dtype),
            why: "no GEMM tile template for this dtype in kernels/gemm.toml".into(),
        });
    }
    let sms = gpu.profile.compute.sm_count as u64;
    let mut timed: Vec<(Timed, &GemmTile, f64)> = vec![];
    for tile in tiles {
        for split in splits_for(&p, tile, sms) {
            if let Some((t, clock)) = time_launch(gpu, &p, tile, split, path, rate, l2_warm) {
                timed.push((t, tile, clock));
            }
        }
    }
    // The library's pick: the fastest candidate (cuBLAS's heuristics aim at it), the
    // larger tile on a tie. Taking the minimum keeps time monotone in m, n and k.
    let best = timed.into_iter().min_by(|a, b| {
        a.0.seconds.total_cmp(&b.0.seconds).then(((b.1.bm * b.1.bn) as u64).cmp(&((a.1.bm * a.1.bn) as u64)))
    });
    let (t, tile, clock) = best.ok_or_else(|| Error::Unsupported {
        gpu: gpu.key().to_string(),
        what: "this GEMM".into(),
        why: "no tile fits in one SM".into(),
    })?;
    let mut ms = t.seconds * 1e3;
    let mut launches = t.launches;
    if p.bias {
        // The bias is added in the GEMM's epilogue: one extra read of the broadcast row,
        // negligible beside the GEMM. For fp32 nn.Linear the NeuSight rows record one kernel
        // per call on every NVIDIA GPU (n_kernels=1 in 34112 of the 36384 Linear rows that
        // record it; the rest are split-k, grid z > 1), so the SIMT kernels fuse it too. The
        // Kineto traces in shared/traces/kineto (another PyTorch/cuBLASLt build) show it as
        // a second kernel, `epilogue::impl::globalKernel`; the model follows the NeuSight
        // setup, which is also the one its held-out GPUs were measured with (replaying such
        // a trace, `validate::kineto` predicts that epilogue as a kernel of its own).
        ms += (p.n as f64 * p.dtype.bytes()) / memory::dram_bytes_per_s(gpu) * 1e3;
        launches = launches.max(1);
    }
    Ok(KernelEstimate {
        kernel_ms: ms,
        bound: t.bound,
        tile: Some(if t.launches > 1 { format!("{}+splitk", tile.name) } else { tile.name.clone() }),
        ctas: t.ctas,
        waves: t.waves,
        clock_mhz: clock,
        bytes: t.dram_bytes,
        flops: 2.0 * (p.b * p.m * p.n) as f64 * p.k as f64,
        launches,
    })
}

/// Whether every dimension is a whole number of 16-byte vectors, as the vectorised
/// SIMT kernels' 128-bit loads and stores need.
pub fn vector_aligned(dims: [u64; 3], dtype: Dtype) -> bool {
    let per_vector = (16.0 / dtype.bytes()).max(1.0) as u64;
    dims.iter().all(|d| d % per_vector == 0)
}

/// The main loop's issue share at the rate of the kernels cuBLAS runs for the call: a
/// plain SIMT GEMM issues at `unbatched_issue` of the strided-batched kernels' rate
/// (`ffma_issue`). A kernel may issue better than the GEMM kernels `rate` describes
/// (`conv_issue` above 1), never faster than the pipe's peak.
fn main_loop_share(gpu: &Gpu, p: &GemmProblem, path: MathPath) -> f64 {
    let eff = &gpu.isa.efficiency;
    let (issue, share) = match path {
        MathPath::Tensor => (eff.tensor_issue, p.issue_share),
        _ if p.unbatched => (eff.ffma_issue, p.issue_share * eff.unbatched_issue),
        _ => (eff.ffma_issue, p.issue_share),
    };
    share.min(1.0 / issue.max(1e-9))
}

/// The main kernel of one recorded cuBLAS launch: the tile named `tile` (the kernel name
/// without its layout suffix) with `split` CTAs along k, as the modelled selector would time
/// it, less the split-k reduction, which runs as a kernel of its own. For replaying a
/// profiler trace on the GPU it was recorded on, where the trace tells which kernel the
/// library picked: it times that kernel, not the model's pick (`tile_agreement` reports how
/// often the two agree). An error when this architecture ships no such tile.
pub fn estimate_launch(gpu: &Gpu, templates: &Templates, p: GemmProblem, tile: &str, split: u64, l2_warm: bool) -> Result<KernelEstimate> {
    let (path, rate) = math_rate(gpu, p.dtype)?;
    let arch = gpu.profile.architecture.as_str();
    let t = templates
        .gemm
        .tile
        .iter()
        .find(|t| t.name == tile && t.path == path && t.archs.iter().any(|a| a == arch))
        .ok_or_else(|| Error::Unsupported { gpu: gpu.key().to_string(), what: format!("tile {tile}"), why: format!("not a {arch} tile in kernels/gemm.toml") })?;
    let p = GemmProblem { issue_share: main_loop_share(gpu, &p, path), ..p };
    let (timed, clock) = time_launch(gpu, &p, t, split.max(1), path, rate, l2_warm).ok_or_else(|| Error::Unsupported {
        gpu: gpu.key().to_string(),
        what: format!("tile {tile}"),
        why: "does not fit in one SM".into(),
    })?;
    Ok(KernelEstimate {
        kernel_ms: (timed.seconds - timed.reduce_seconds) * 1e3,
        bound: timed.bound,
        tile: Some(t.name.clone()),
        ctas: timed.ctas,
        waves: timed.waves,
        clock_mhz: clock,
        bytes: timed.dram_bytes,
        flops: 2.0 * (p.b * p.m * p.n) as f64 * p.k as f64,
        launches: 1,
    })
}

/// One GEMM with a given tile and no split-k: for tests and for explaining a choice. As for
/// every framework GEMM, the tile's `bm` runs along `n` (see `GemmProblem::bm_along_n`).
pub fn estimate_with_tile(gpu: &Gpu, _t: &Templates, tile: &GemmTile, m: u64, n: u64, k: u64, dtype: Dtype) -> Result<KernelEstimate> {
    let (path, rate) = math_rate(gpu, dtype)?;
    let p = GemmProblem::new(1, m, n, k, false, dtype);
    let activity = if path == MathPath::Tensor { Activity::Tensor } else { Activity::Ffma };
    let clock = sustained_mhz(gpu, activity, 1.0);
    let t = time_tile(gpu, &p, tile, 1, rate, clock, false).ok_or_else(|| Error::Unsupported {
        gpu: gpu.key().to_string(),
        what: format!("tile {}", tile.name),
        why: "does not fit in one SM".into(),
    })?;
    Ok(KernelEstimate {
        kernel_ms: t.seconds * 1e3,
        bound: t.bound,
        tile: Some(tile.name.clone()),
        ctas: t.ctas,
        waves: t.waves,
        clock_mhz: clock,
        bytes: t.dram_bytes,
        flops: 2.0 * (m * n) as f64 * k as f64,
        launches: t.launches,
    })
}

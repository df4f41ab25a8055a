//! Fused attention (FlashAttention-2/3, split-KV decode) as tiles.
//!
//! Prefill: each CTA owns `br` query rows of one head and walks the keys `bc` at a time;
//! per step it does two MMAs (QKᵀ and PV), an exponent per score on the SFU and the
//! running max/sum on the FMA pipe. Those three serialise inside a warp, so a step costs
//! their sum. Decode (few queries per sequence) is a stream of the KV cache split across
//! CTAs, bound by DRAM and by how many bytes the split keeps in flight.

use super::op::attended_pairs;
use super::templates::AttentionTile;
use super::{ceil_div, Bound, Dtype, KernelEstimate, Op};
use crate::error::{Error, Result};
use crate::hw::{Gpu, Templates};
use crate::sim::clock::{sustained_mhz, Activity};
use crate::sim::memory::{self, Level};

fn pick<'a>(t: &'a Templates, arch: &str, decode: bool, d: u64) -> Option<&'a AttentionTile> {
    let want = |tile: &&AttentionTile| (tile.kind == "splitkv_decode") == decode && tile.max_head_dim as u64 >= d;
    let mut own: Vec<_> = t.attention.tile.iter().filter(want).filter(|x| x.archs.iter().any(|a| a == arch)).collect();
    if own.is_empty() {
        own = t.attention.tile.iter().filter(want).collect();
    }
    // FlashAttention is the default library (FA3 on Hopper for prefill); within it the
    // smallest tile that supports the head dim is the one it dispatches.
    let rank = |x: &AttentionTile| match (x.kind.as_str(), x.name.starts_with("flash_")) {
        ("fa3", _) => 0,
        (_, true) => 1,
        _ => 2,
    };
    own.into_iter().min_by_key(|x| (rank(x), x.max_head_dim, x.br))
}

/// FlashAttention-2's `num_splits_heuristic` (flash_api.cpp): no split when the grid
/// nearly fills the `slots` (SMs × resident CTAs); otherwise the fewest splits whose last
/// wave is at least 85% as full as the best split's. `max_splits` caps it.
fn split_heuristic(grid: u64, slots: u64, max_splits: u64) -> u64 {
    if grid as f64 >= 0.8 * slots as f64 {
        return 1;
    }
    let max_splits = max_splits.min(slots).clamp(1, 128);
    let efficiency = |s: u64| {
        let waves = (grid * s) as f64 / slots as f64;
        waves / waves.ceil()
    };
    let best = (1..=max_splits).map(efficiency).fold(0.0, f64::max);
    (1..=max_splits).find(|&s| efficiency(s) >= 0.85 * best).unwrap_or(1)
}

pub fn estimate(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, l2_warm: bool) -> Result<KernelEstimate> {
    let Op::Attention { b, hq, hkv, sq, skv, d, causal } = *op else { unreachable!() };
    // An fp8 KV cache on a GPU without fp8 MMAs is dequantised to fp16 in the kernel
    // (vLLM's fp8 KV cache on Ampere): fp8 bytes, fp16 math.
    let mma_dtype = match dtype {
        Dtype::Fp32 => Dtype::Tf32,
        Dtype::Fp8 if gpu.tensor_flop_per_clk("fp8").is_none() => Dtype::Fp16,
        d => d,
    };
    let tensor = gpu.tensor_flop_per_clk(mma_dtype.name());
    let eff = &gpu.isa.efficiency;
    let sms = gpu.sms();
    let decode = sq <= 16 && skv > 4 * sq;
    let arch = gpu.profile.architecture.as_str();
    let tile = pick(templates, arch, decode, d).ok_or_else(|| Error::Unsupported {
        gpu: gpu.key().into(),
        what: format!("attention with head dim {d}"),
        why: "no attention tile in kernels/attention.toml supports it".into(),
    })?;
    let e = dtype.bytes();
    let pairs = attended_pairs(sq, skv, causal) * (b * hq) as f64;
    let flops = 4.0 * pairs * d as f64;
    let kv_bytes = (b * hkv * skv * d) as f64 * 2.0 * e;
    let qo_bytes = (b * hq * sq * d) as f64 * 2.0 * e;

    let smem = (tile.br as f64 + 2.0 * tile.bc as f64) * d as f64 * e;
    let c = (gpu.profile.memory.smem_per_sm_max_kib * 1024.0 / smem)
        .min(gpu.profile.memory.max_threads_per_sm as f64 / tile.threads as f64)
        .floor()
        .max(1.0);
    let (ctas, steps_per_cta) = if decode {
        // Query heads of one KV head are packed into the tile rows (GQA); keys split so
        // the grid covers the machine.
        let groups = b * hkv;
        let kv_blocks = ceil_div(skv, tile.bc as u64);
        let splits = split_heuristic(groups, (sms * c) as u64, kv_blocks.max(1));
        (groups * splits, ceil_div(kv_blocks, splits) as f64)
    } else {
        let row_blocks = ceil_div(sq, tile.br as u64);
        let mean_keys = attended_pairs(sq, skv, causal) / sq as f64;
        let steps = (mean_keys / tile.bc as f64).ceil().max(1.0);
        let grid = b * hq * row_blocks;
        // A grid smaller than the machine splits the keys across CTAs (FlashAttention's
        // num_splits, FlashInfer's KV partitioning), keeping at least 4 steps per split.
        let splits = split_heuristic(grid, (sms * c) as u64, ((steps / 4.0) as u64).max(1));
        (grid * splits, (steps / splits as f64).ceil())
    };
    let util = (ctas as f64 / sms).min(1.0);
    let clock = sustained_mhz(gpu, if tensor.is_some() { Activity::Tensor } else { Activity::Ffma }, util);
    let hz = clock * 1e6;

    // One step of one CTA, in cycles on its SM (shared by `conc` resident CTAs).
    let q = ceil_div(ctas, sms as u64);
    let conc = (q as f64).min(c);
    let rounds = (q as f64 / c).ceil();
    let rows = if decode { (hq / hkv).max(1) as f64 } else { tile.br as f64 };
    let warps = conc * tile.threads as f64 / gpu.isa.warp_size as f64;
    let pipe_util = (warps / eff.warps_for_peak).min(1.0);
    let mma_rate = tensor.map(|r| r * eff.tensor_issue).unwrap_or(gpu.rates.ffma_flop_per_clk * eff.ffma_issue);
    // MMA tiles are padded to at least 16 query rows.
    let mma_rows = rows.max(16.0);
    let math = conc * 4.0 * mma_rows * tile.bc as f64 * d as f64 / (mma_rate * pipe_util);
    let sfu = conc * rows * tile.bc as f64 / gpu.rates.sfu_ops_per_clk;
    let fma = conc * rows * tile.bc as f64 * 4.0 / (gpu.rates.ffma_flop_per_clk / 2.0);
    let load = conc * 2.0 * tile.bc as f64 * d as f64 * e / eff.l2_bytes_per_clk_per_sm;
    let latency = gpu.isa.latency.l2_hit_cycles;
    let compute = math + sfu + fma;
    let step = compute.max(load).max(latency);
    let overhead = if tensor.is_some() { eff.tensor_cta_overhead_cycles } else { eff.cta_overhead_cycles };
    let cta_cycles = steps_per_cta * step + gpu.isa.latency.dram_cycles + overhead;
    let sm_s = rounds * cta_cycles / hz;

    let level = if l2_warm && memory::fits_l2(gpu, kv_bytes + qo_bytes) { Level::L2 } else { Level::Dram };
    let inflight = (ctas as f64).min(sms * c) * 2.0 * tile.bc as f64 * d as f64 * e;
    let mem_s = memory::stream_seconds(gpu, level, kv_bytes + qo_bytes, inflight, clock);
    let (mut secs, bound) = if mem_s > sm_s {
        (mem_s, if level == Level::Dram { Bound::Dram } else { Bound::L2 })
    } else if step == compute {
        (sm_s, if tensor.is_some() { Bound::Tensor } else { Bound::Ffma })
    } else if step == load {
        (sm_s, Bound::L2)
    } else {
        (sm_s, Bound::Latency)
    };
    let mut launches = 1;
    if (decode && ctas > b * hkv) || (!decode && ctas > b * hq * ceil_div(sq, tile.br as u64)) {
        // Split-KV partial outputs combined by a second kernel.
        secs += eff.kernel_floor_us * 1e-6;
        launches = 2;
    }
    Ok(KernelEstimate {
        kernel_ms: secs * 1e3,
        bound,
        tile: Some(tile.name.clone()),
        ctas,
        waves: ceil_div(ctas, (sms * c) as u64),
        clock_mhz: clock,
        bytes: if level == Level::Dram { kv_bytes + qo_bytes } else { 0.0 },
        flops,
        launches,
    })
}

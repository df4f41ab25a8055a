//! Kernels whose time is bytes moved: element-wise, norms, softmax, RoPE, embedding.
//!
//! Each op states the bytes it must read and write and the arithmetic per element; time
//! is the larger of streaming those bytes (through L2 when the footprint stays resident,
//! else DRAM, limited by bytes in flight for small grids) and the arithmetic.

use super::{Bound, Dtype, KernelEstimate, Op};
use crate::error::Result;
use crate::hw::Gpu;
use crate::sim::clock::{sustained_mhz, Activity};
use crate::sim::memory::{self, Level};

/// What one op costs before timing: bytes, re-read bytes (second passes that hit L2),
/// FFMA-pipe and SFU operations, and the threads it launches.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub read: f64,
    pub write: f64,
    /// Extra passes over data just read (served from L2 when a row fits).
    pub reread: f64,
    pub flops: f64,
    pub sfu: f64,
    pub threads: f64,
}

/// Per-element arithmetic of element-wise functions: (FMA-pipe ops, SFU ops).
fn fn_cost(func: &str) -> (f64, f64) {
    match func {
        "gelu" => (14.0, 1.0),
        "tanh" => (6.0, 1.0),
        "sigmoid" | "silu" => (6.0, 2.0),
        "exp" => (4.0, 1.0),
        "pow" | "pow_scalar" => (10.0, 2.0),
        "div" => (8.0, 1.0),
        "dropout" => (12.0, 0.0),
        "cumsum" => (2.0, 0.0),
        _ => (1.0, 0.0),
    }
}

pub fn traffic(op: &Op, dtype: Dtype) -> Traffic {
    let e = dtype.bytes();
    match op {
        Op::Elementwise { func, numel, inputs } => {
            let n = *numel as f64;
            let (f, s) = fn_cost(func);
            let extra_write = if func == "dropout" { n } else { 0.0 }; // the mask
            Traffic {
                read: n * e * *inputs as f64,
                write: n * e + extra_write,
                reread: 0.0,
                flops: n * f,
                sfu: n * s,
                threads: n / 4.0,
            }
        }
        Op::Softmax { rows, cols } => {
            let n = (*rows * *cols) as f64;
            // One warp per row keeps a short row in registers; long rows take a second
            // pass (max, then sum and write) over data that stays in L2.
            let reread = if *cols > 1024 { n * e } else { 0.0 };
            Traffic { read: n * e, write: n * e, reread, flops: n * 5.0, sfu: n, threads: n / 4.0 }
        }
        Op::Layernorm { rows, cols } | Op::Rmsnorm { rows, cols } => {
            let n = (*rows * *cols) as f64;
            let params = if matches!(op, Op::Layernorm { .. }) { 2.0 } else { 1.0 };
            Traffic {
                read: n * e + params * *cols as f64 * e,
                write: n * e + *rows as f64 * 8.0,
                reread: 0.0,
                flops: n * 8.0,
                sfu: *rows as f64,
                threads: n / 4.0,
            }
        }
        Op::SiluMul { tokens, cols } => {
            let n = (*tokens * *cols) as f64;
            Traffic { read: 2.0 * n * e, write: n * e, reread: 0.0, flops: n * 8.0, sfu: n * 2.0, threads: n / 2.0 }
        }
        Op::Rope { tokens, hq, hkv, d } => {
            let n = (*tokens * (*hq + *hkv) * *d) as f64;
            // q and k rotated in place; cos/sin cache read once per token.
            let cache = (*tokens * *d) as f64 * e;
            Traffic { read: n * e + cache, write: n * e, reread: 0.0, flops: n * 3.0, sfu: 0.0, threads: n / 2.0 }
        }
        Op::Embedding { tokens, dim, .. } => {
            let n = (*tokens * *dim) as f64;
            Traffic { read: n * e + *tokens as f64 * 8.0, write: n * e, reread: 0.0, flops: 0.0, sfu: 0.0, threads: n / 4.0 }
        }
        _ => Traffic { read: 0.0, write: 0.0, reread: 0.0, flops: 0.0, sfu: 0.0, threads: 1.0 },
    }
}

pub fn estimate(gpu: &Gpu, op: &Op, dtype: Dtype) -> Result<KernelEstimate> {
    let t = traffic(op, dtype);
    let bytes = t.read + t.write;
    let sms = gpu.sms();
    let eff = &gpu.isa.efficiency;
    let util = (t.threads / (sms * gpu.profile.memory.max_threads_per_sm as f64)).min(1.0);
    let clock = sustained_mhz(gpu, Activity::Memory, util);
    // Bytes in flight: each resident thread keeps one 16-byte vector load outstanding,
    // up to the architecture's per-SM limit.
    let threads_resident = t.threads.min(sms * gpu.profile.memory.max_threads_per_sm as f64);
    let inflight = (threads_resident * 16.0).min(sms * eff.bytes_in_flight_per_sm);
    let footprint = bytes;
    let level = if memory::fits_l2(gpu, footprint) { Level::L2 } else { Level::Dram };
    let mem_s = memory::stream_seconds(gpu, level, bytes, inflight, clock)
        + t.reread / memory::l2_bytes_per_s(gpu, clock);
    let math_s = t.flops / (gpu.rates.ffma_flop_per_clk / 2.0 * sms * clock * 1e6);
    let sfu_s = t.sfu / (gpu.rates.sfu_ops_per_clk * sms * clock * 1e6);
    let (secs, bound) = if mem_s >= math_s.max(sfu_s) {
        (mem_s, if level == Level::L2 { Bound::L2 } else { Bound::Dram })
    } else if math_s >= sfu_s {
        (math_s, Bound::Ffma)
    } else {
        (sfu_s, Bound::Sfu)
    };
    let ctas = (t.threads / 256.0).ceil().max(1.0) as u64;
    let per_wave = (sms as u64 * (gpu.profile.memory.max_threads_per_sm as u64 / 256).max(1)).max(1);
    Ok(KernelEstimate {
        kernel_ms: secs * 1e3,
        bound,
        tile: None,
        ctas,
        waves: ctas.div_ceil(per_wave),
        clock_mhz: clock,
        bytes: if level == Level::Dram { bytes } else { 0.0 },
        flops: t.flops,
        launches: 1,
    })
}

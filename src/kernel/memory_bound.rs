//! Kernels whose time is bytes moved: element-wise, norms, softmax, RoPE, embedding.
//!
//! Each op states the bytes it must read and write and its arithmetic per element; how
//! the library implements it (`kernels/memory_bound.toml`: load width, loads in flight,
//! passes, index arithmetic) sets the bytes in flight. Time is the largest of streaming
//! the bytes (through L2 when the footprint is warm in L2, else DRAM, with the bandwidth
//! Little's law allows for those bytes in flight), the FMA-pipe and SFU arithmetic, and
//! the integer issue work.

use super::templates::MemoryBoundImpl;
use super::{Bound, Dtype, KernelEstimate, Op};
use crate::error::Result;
use crate::hw::{Gpu, Templates};
use crate::sim::clock::{sustained_mhz, Activity};
use crate::sim::memory::{self, Level};

/// What one op must do: bytes, FMA-pipe and SFU operations, elements.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    pub read: f64,
    pub write: f64,
    pub flops: f64,
    pub sfu: f64,
    /// Elements the kernel produces (threads × vector width).
    pub elems: f64,
    /// Tensors read per element (independent loads per thread).
    pub inputs: f64,
    /// Bytes of a vector every row reads beside its own elements (norm weights): loaded
    /// alongside the row, so in flight with it.
    pub shared: f64,
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
            Traffic { read: n * e * *inputs as f64, write: n * e + extra_write, flops: n * f, sfu: n * s, elems: n, inputs: *inputs as f64, shared: 0.0 }
        }
        Op::Softmax { rows, cols } => {
            let n = (*rows * *cols) as f64;
            Traffic { read: n * e, write: n * e, flops: n * 5.0, sfu: n, elems: n, inputs: 1.0, shared: 0.0 }
        }
        Op::Layernorm { rows, cols } | Op::Rmsnorm { rows, cols } => {
            let n = (*rows * *cols) as f64;
            let params = if matches!(op, Op::Layernorm { .. }) { 2.0 } else { 1.0 };
            Traffic {
                read: n * e + params * *cols as f64 * e,
                shared: params * *cols as f64 * e,
                write: n * e + *rows as f64 * 8.0,
                flops: n * 8.0,
                sfu: *rows as f64,
                elems: n,
                inputs: 1.0,
            }
        }
        Op::SiluMul { tokens, cols } => {
            let n = (*tokens * *cols) as f64;
            Traffic { read: 2.0 * n * e, write: n * e, flops: n * 8.0, sfu: n * 2.0, elems: n, inputs: 1.0, shared: 0.0 }
        }
        Op::Rope { tokens, hq, hkv, d } => {
            let n = (*tokens * (*hq + *hkv) * *d) as f64;
            // q and k rotated in place; the cos/sin cache read once per token.
            let cache = (*tokens * *d) as f64 * e;
            Traffic { read: n * e + cache, write: n * e, flops: n * 3.0, sfu: 0.0, elems: n / 2.0, inputs: 1.0, shared: 0.0 }
        }
        Op::Embedding { tokens, dim, .. } => {
            let n = (*tokens * *dim) as f64;
            Traffic { read: n * e + *tokens as f64 * 8.0, write: n * e, flops: 0.0, sfu: 0.0, elems: n, inputs: 1.0, shared: 0.0 }
        }
        _ => Traffic { read: 0.0, write: 0.0, flops: 0.0, sfu: 0.0, elems: 1.0, inputs: 1.0, shared: 0.0 },
    }
}

/// The library implementation of an op, or a plain vectorised kernel when none is listed.
fn implementation(t: &Templates, op: &str) -> MemoryBoundImpl {
    t.memory_bound.op.iter().find(|i| i.op == op).cloned().unwrap_or(MemoryBoundImpl {
        op: op.into(),
        implementation: "generic vectorised kernel".into(),
        vector_elems: 4,
        loads_in_flight: 1,
        passes: 1,
        long_row_cols: None,
        long_row_passes: None,
        reread: "row".into(),
        launches: 1,
        block_threads: 128,
        block_per_row: false,
        int_ops_per_elem: 2.0,
        dependent_cycles: 0.0,
        dependent_cycles_source: None,
        source: String::new(),
    })
}

pub fn estimate(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, l2_warm: bool) -> Result<KernelEstimate> {
    let t = traffic(op, dtype);
    let imp = implementation(templates, op.name());
    let bytes = t.read + t.write;
    let sms = gpu.sms();
    let eff = &gpu.isa.efficiency;
    let (rows, cols) = row_shape(op);
    // Resident threads come in whole blocks: a 1024-thread block fits once on a
    // 1536-thread SM (GA10x, AD10x), twice on a 2048-thread one.
    let block = if imp.block_per_row {
        ((cols as f64 / imp.vector_elems as f64 / 32.0).ceil() * 32.0).clamp(32.0, imp.block_threads as f64)
    } else {
        imp.block_threads as f64
    };
    let per_sm_threads = gpu.profile.memory.max_threads_per_sm as f64;
    let blocks_per_sm = (per_sm_threads / block).floor().max(1.0).min(gpu.profile.memory.max_blocks_per_sm.unwrap_or(32) as f64);
    let max_threads = sms * blocks_per_sm * block;
    let threads = (t.elems / imp.vector_elems as f64).ceil().max(1.0);
    let util = (threads / max_threads).min(1.0);
    let clock = sustained_mhz(gpu, Activity::Memory, util);
    let hz = clock * 1e6;
    // Bytes in flight: every resident thread keeps its loads outstanding, up to the
    // SM's limit on outstanding requests.
    let per_thread = imp.vector_elems as f64 * dtype.bytes() * imp.loads_in_flight as f64 * t.inputs;
    // The shared vector's loads go out with the row's (without them a norm over one row
    // would look slower than over two).
    let per_thread = per_thread * (1.0 + t.shared / (t.elems * t.inputs * dtype.bytes()).max(1.0));
    let inflight = (threads.min(max_threads) * per_thread).min(sms * eff.bytes_in_flight_per_sm);
    let level = if l2_warm && memory::fits_l2(gpu, bytes) { Level::L2 } else { Level::Dram };
    // Further passes over the input: from L2 while what they re-read is still there.
    let passes = match (imp.long_row_cols, imp.long_row_passes) {
        (Some(limit), Some(p)) if cols > limit => p,
        _ => imp.passes,
    };
    let reread = t.read * passes.saturating_sub(1) as f64;
    let reuse_bytes = if imp.reread == "tensor" {
        t.read
    } else {
        // Rows in flight: one per resident block for block-per-row kernels, otherwise
        // as many rows as the resident threads cover.
        let rows_in_flight = if imp.block_per_row {
            (sms * blocks_per_sm).min(rows as f64)
        } else {
            (max_threads * imp.vector_elems as f64 / cols.max(1) as f64).max(1.0).min(rows as f64)
        };
        rows_in_flight * cols as f64 * dtype.bytes()
    };
    let reread_s = if level == Level::L2 || memory::fits_l2(gpu, reuse_bytes) {
        reread / memory::l2_bytes_per_s(gpu, clock)
    } else {
        memory::stream_seconds(gpu, Level::Dram, reread, inflight, clock)
    };
    let mem_s = memory::stream_seconds_with_chain(gpu, level, bytes, inflight, clock, imp.dependent_cycles) + reread_s;
    let lanes = gpu.rates.ffma_flop_per_clk / 2.0 * sms * hz;
    let math_s = t.flops / lanes;
    let int_lanes = gpu.rates.int32_ops_per_clk.unwrap_or(gpu.rates.ffma_flop_per_clk / 2.0) * sms * hz;
    let int_s = t.elems * imp.int_ops_per_elem / int_lanes;
    let sfu_s = t.sfu / (gpu.rates.sfu_ops_per_clk * sms * hz);
    let terms = [
        (mem_s, if level == Level::L2 { Bound::L2 } else { Bound::Dram }),
        (math_s + int_s, Bound::Ffma),
        (sfu_s, Bound::Sfu),
    ];
    let (secs, bound) = terms.into_iter().fold((0.0, Bound::Dram), |a, b| if b.0 > a.0 { b } else { a });
    let ctas = (threads / 256.0).ceil().max(1.0) as u64;
    let per_wave = (sms as u64 * (gpu.profile.memory.max_threads_per_sm as u64 / 256).max(1)).max(1);
    Ok(KernelEstimate {
        kernel_ms: secs * 1e3,
        bound,
        tile: Some(imp.implementation.split(' ').take(2).collect::<Vec<_>>().join(" ")),
        ctas,
        waves: ctas.div_ceil(per_wave),
        clock_mhz: clock,
        bytes: if level == Level::Dram { bytes } else { 0.0 },
        flops: t.flops,
        launches: imp.launches,
    })
}

/// (rows, cols) of a row-wise op; element-wise ops are one long row.
fn row_shape(op: &Op) -> (u64, u64) {
    match *op {
        Op::Softmax { rows, cols } | Op::Layernorm { rows, cols } | Op::Rmsnorm { rows, cols } => (rows, cols),
        Op::SiluMul { tokens, cols } => (tokens, cols),
        Op::Embedding { tokens, dim, .. } => (tokens, dim),
        Op::Rope { tokens, hq, hkv, d } => (tokens, (hq + hkv) * d),
        Op::Elementwise { numel, .. } => (1, numel),
        _ => (1, 1),
    }
}

//! One architecture's instruction-level facts, as written in `isa/<arch>.toml`.
//!
//! Rates are per SM per clock so that a GPU's peak follows from its own SM count and
//! modelled clock; the chip table (`[chips.GA100]`, `[chips.GA102]` …) exists because
//! chips of one architecture differ in FP32 lanes and tensor width. The `[efficiency]`
//! table holds the few fitted parameters, each with the command that fitted it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Isa {
    /// File stem and the value of a profile's `architecture` field (`ampere`).
    pub architecture: String,
    /// Display name (`Ampere`).
    pub name: String,
    #[serde(default)]
    pub compute_capabilities: Vec<String>,
    /// Warp width: 32 on NVIDIA, 64 on CDNA.
    #[serde(default = "default_warp")]
    pub warp_size: u32,
    pub latency: Latency,
    /// Matrix instruction shapes, for the record and for tile-shape checks.
    #[serde(default)]
    pub mma: Vec<MmaInstruction>,
    pub chips: BTreeMap<String, ChipRates>,
    #[serde(default)]
    pub efficiency: Efficiency,
    #[serde(default)]
    pub power: PowerModel,
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    #[serde(default)]
    pub notes: Vec<String>,
}

fn default_warp() -> u32 {
    32
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    pub l1_hit_cycles: f64,
    pub l2_hit_cycles: f64,
    pub dram_cycles: f64,
    #[serde(default)]
    pub smem_cycles: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MmaInstruction {
    /// Operand dtype: `fp16`, `bf16`, `tf32`, `fp8`, `int8`, `fp64`, `fp4` …
    pub dtype: String,
    /// PTX/SASS name, e.g. `mma.sync.aligned.m16n8k16`, `wgmma.mma_async.m64nNk16`.
    pub instruction: String,
    pub m: u32,
    /// For instructions with a range of N (wgmma), the largest.
    pub n: u32,
    pub k: u32,
}

/// Dense throughput of one SM per clock. FLOP counts an FMA as 2.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChipRates {
    /// FP32 FMA pipe: 2 × FP32 lanes.
    pub ffma_flop_per_clk: f64,
    /// Packed FP16 on the CUDA cores (no tensor core), where it exists.
    #[serde(default)]
    pub hfma2_flop_per_clk: Option<f64>,
    /// Special-function unit ops (exp, rsqrt …) per clock.
    pub sfu_ops_per_clk: f64,
    /// Tensor-core FLOP (or integer ops) per clock per SM by operand dtype, with FP32
    /// accumulate for fp16/bf16/fp8; absent dtype = not supported by the tensor cores.
    #[serde(default)]
    pub tensor_flop_per_clk: BTreeMap<String, f64>,
    /// INT8 dot-product (dp4a) ops per clock on the CUDA cores.
    #[serde(default)]
    pub dp4a_ops_per_clk: Option<f64>,
    /// 32-bit integer add/multiply-add lanes per clock, where fewer than the FP32 lanes
    /// (from Ampere GA10x on, half the FP32 lanes also do INT32, half do not).
    #[serde(default)]
    pub int32_ops_per_clk: Option<f64>,
}

/// Fitted or stated efficiencies of one architecture. Every value's provenance is in the
/// ISA file's `[sources]` under `efficiency.<field>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Efficiency {
    /// Fraction of the FFMA peak an SGEMM main loop issues (register-blocked FMA with
    /// address arithmetic and shared-memory loads competing for issue slots).
    pub ffma_issue: f64,
    /// Fraction of the tensor peak a tuned MMA main loop sustains.
    pub tensor_issue: f64,
    /// Fraction of the DRAM spec bandwidth a streaming kernel sustains when the spec is
    /// all that is known (where `dram_bandwidth_measured_gbs` exists it is used instead).
    pub dram_stream: f64,
    /// L2 bandwidth per SM per clock in bytes, for tiles fed from L2.
    pub l2_bytes_per_clk_per_sm: f64,
    /// Memory-level parallelism: bytes in flight per SM needed to cover DRAM latency
    /// (Little's law); small grids get bandwidth × (inflight / needed).
    pub bytes_in_flight_per_sm: f64,
    /// Fixed cycles a CTA spends outside its main loop (prologue, epilogue, scheduling),
    /// for CUDA-core (FFMA) kernels.
    pub cta_overhead_cycles: f64,
    /// The same for tensor-core kernels (deeper pipelines, different epilogues).
    pub tensor_cta_overhead_cycles: f64,
    /// GPU time of the shortest kernel (launch to completion of an empty grid), µs.
    pub kernel_floor_us: f64,
    /// Resident warps per SM a main loop needs to keep the math pipes issuing.
    pub warps_for_peak: f64,
    /// An implicit-GEMM convolution main loop's math issue relative to the GEMM kernels'
    /// (`ffma_issue`, `tensor_issue`): below 1 where im2col addresses and boundary
    /// predicates take issue slots, above 1 (up to 1.5) where cuDNN's kernels sustain more
    /// than cuBLAS's on that architecture (T4 and V100 in the NeuSight traces).
    pub conv_issue: f64,
    /// Fraction of the streaming DRAM bandwidth a GEMM's main loop reaches when DRAM
    /// decides its time (a skinny GEMM streaming its weight once, as in LLM decode): its
    /// tile loads keep fewer bytes in flight than a streaming kernel's, and a read-only
    /// stream turns the bus around less well than the stream benchmark's.
    pub gemm_dram: f64,
    /// The same for Winograd convolution (fused: the transforms in the main loop beyond the
    /// adds the model counts; non-fused: the batched GEMM between transform kernels).
    pub winograd_issue: f64,
    /// FFMA issue of cuBLAS's plain (non-batched) SGEMM calls relative to `ffma_issue`,
    /// which is fitted on the strided-batched calls of `torch.bmm`. In the NeuSight traces
    /// aligned Linear calls run ~10% below bmm on Pascal and Ampere and near the FFMA peak
    /// on the V100, where bmm does not. The kernel rows cannot tell a plain call from a
    /// Linear's layout or bias (every big plain call there is an nn.Linear); whole models
    /// can: GPT-2's Conv1D (`_nn`, like bmm) and Switch's bias-free Linear both follow the
    /// Linear rate.
    pub unbatched_issue: f64,
    /// DRAM latency under a bandwidth-saturating load, as a multiple of the unloaded
    /// pointer-chase latency (queueing in the memory controllers).
    pub dram_loaded_latency_factor: f64,
}

impl Default for Efficiency {
    fn default() -> Self {
        Efficiency {
            ffma_issue: 0.85,
            tensor_issue: 0.80,
            dram_stream: 0.90,
            l2_bytes_per_clk_per_sm: 64.0,
            bytes_in_flight_per_sm: 32768.0,
            cta_overhead_cycles: 2000.0,
            tensor_cta_overhead_cycles: 2000.0,
            kernel_floor_us: 2.0,
            warps_for_peak: 4.0,
            dram_loaded_latency_factor: 1.5,
            conv_issue: 0.7,
            winograd_issue: 0.7,
            unbatched_issue: 1.0,
            gemm_dram: 0.9,
        }
    }
}

/// Energy of each kind of work, from which board power limits the sustained clock.
///
/// Dynamic power at clock f is E·rate(f)·(V(f)/V_boost)², with the voltage falling in
/// proportion to the clock down to `v_min_ratio` of the boost voltage and flat below it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PowerModel {
    /// Static and idle board power as a fraction of TDP.
    pub idle_fraction: f64,
    /// Energy per FP32 FLOP on the CUDA cores at boost voltage, pJ (operand delivery included).
    pub ffma_pj_per_flop: f64,
    /// Energy per tensor-core FLOP (FP16 inputs) at boost voltage, pJ.
    pub tensor_pj_per_flop: f64,
    /// Energy per byte moved to or from DRAM, pJ.
    pub dram_pj_per_byte: f64,
    /// Voltage floor as a fraction of the boost voltage.
    pub v_min_ratio: f64,
}

impl Default for PowerModel {
    fn default() -> Self {
        PowerModel { idle_fraction: 0.2, ffma_pj_per_flop: 10.0, tensor_pj_per_flop: 1.0, dram_pj_per_byte: 60.0, v_min_ratio: 0.75 }
    }
}

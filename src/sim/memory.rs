//! Achievable bandwidth of the memory hierarchy for a kernel of a given size.
//!
//! Two effects dominate small and medium kernels: a footprint that fits in L2 runs at L2
//! speed when the data is warm (benchmarks repeat the same call), and a kernel with too
//! few bytes in flight cannot cover the memory latency (Little's law: bandwidth × latency
//! bytes must be in flight to reach the bandwidth).

use crate::hw::Gpu;

/// Fraction of L2 a working set may fill and still be treated as resident.
pub const L2_RESIDENT_FRACTION: f64 = 0.6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    L2,
    Dram,
}

/// L2 bandwidth in bytes/s at a clock.
pub fn l2_bytes_per_s(gpu: &Gpu, clock_mhz: f64) -> f64 {
    let from_isa = gpu.isa.efficiency.l2_bytes_per_clk_per_sm * gpu.sms() * clock_mhz * 1e6;
    match gpu.profile.memory.l2_bandwidth_measured_gbs {
        Some(m) => m * 1e9 * (clock_mhz / gpu.profile.compute.boost_clock_mhz).min(1.0),
        None => from_isa,
    }
}

pub fn dram_bytes_per_s(gpu: &Gpu) -> f64 {
    gpu.dram_gbs() * 1e9
}

/// Whether a footprint of this many bytes stays in L2 between repeated calls.
pub fn fits_l2(gpu: &Gpu, footprint_bytes: f64) -> bool {
    footprint_bytes <= gpu.profile.memory.l2_mib * 1048576.0 * L2_RESIDENT_FRACTION
}

/// Seconds to stream `bytes` through `level` with at most `inflight_bytes` outstanding
/// at once across the machine.
pub fn stream_seconds(gpu: &Gpu, level: Level, bytes: f64, inflight_bytes: f64, clock_mhz: f64) -> f64 {
    stream_seconds_with_chain(gpu, level, bytes, inflight_bytes, clock_mhz, 0.0)
}

/// As `stream_seconds`, for loads issued by loop iterations that each also wait
/// `chain_cycles` of dependent instructions before the next loads go out: the latency a
/// byte in flight is held is the memory's plus the chain's.
pub fn stream_seconds_with_chain(gpu: &Gpu, level: Level, bytes: f64, inflight_bytes: f64, clock_mhz: f64, chain_cycles: f64) -> f64 {
    if bytes <= 0.0 {
        return 0.0;
    }
    let (bw, latency_s) = match level {
        Level::L2 => (l2_bytes_per_s(gpu, clock_mhz), gpu.isa.latency.l2_hit_cycles / (clock_mhz * 1e6)),
        Level::Dram => (
            dram_bytes_per_s(gpu),
            gpu.isa.latency.dram_cycles * gpu.isa.efficiency.dram_loaded_latency_factor / (clock_mhz * 1e6),
        ),
    };
    let latency_s = latency_s + chain_cycles / (clock_mhz * 1e6);
    let needed = bw * latency_s;
    let inflight = inflight_bytes.min(bytes).max(1.0);
    let achieved = bw * (inflight / needed).min(1.0);
    latency_s + bytes / achieved
}

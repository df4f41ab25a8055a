//! NCCL collectives: a ring over the slowest link the ring crosses.
//!
//! All-reduce moves 2(n−1)/n of the buffer over every link of the ring and pays a
//! per-step latency 2(n−1) times; send/recv moves the buffer once. Intra-node links are
//! NVLink (through NVSwitch on SXM boards) or PCIe; crossing nodes uses the network.

use super::{Bound, Dtype, KernelEstimate, Op};
use crate::error::Result;
use crate::hw::Gpu;

/// Per-direction bandwidth (GB/s) and per-hop latency (µs) of the links a collective
/// crosses.
#[derive(Debug, Clone, Copy)]
pub struct Links {
    pub intra_gbs: f64,
    pub intra_latency_us: f64,
    pub inter_gbs: f64,
    pub inter_latency_us: f64,
}

/// PCIe per-direction bandwidth by generation for x16, GB/s (PCI-SIG: 8/16/32/64 GT/s
/// per lane with 128b/130b encoding from gen 3).
pub fn pcie_gbs(gen: u32, lanes: u32) -> f64 {
    let per_lane = match gen {
        1 => 0.25,
        2 => 0.5,
        3 => 0.985,
        4 => 1.969,
        5 => 3.938,
        _ => 7.877,
    };
    per_lane * lanes as f64
}

/// The links of a node built from this GPU when nothing more is known: NVLink when the
/// board has it, else PCIe; a 200 Gb/s network port per GPU between nodes.
pub fn default_links(gpu: &Gpu) -> Links {
    let ic = &gpu.profile.interconnect;
    let pcie = pcie_gbs(ic.pcie_gen.unwrap_or(4), ic.pcie_lanes.unwrap_or(16));
    let intra = ic.nvlink_bandwidth_gbs_per_direction.unwrap_or(pcie);
    Links { intra_gbs: intra, intra_latency_us: 5.0, inter_gbs: 25.0, inter_latency_us: 10.0 }
}

pub fn estimate(gpu: &Gpu, op: &Op, _dtype: Dtype) -> Result<KernelEstimate> {
    let links = default_links(gpu);
    let (bytes, gpus, nodes, all_reduce) = match *op {
        Op::AllReduce { bytes, gpus, nodes, .. } => (bytes as f64, gpus as f64, nodes as f64, true),
        Op::SendRecv { bytes, gpus, nodes, .. } => (bytes as f64, gpus as f64, nodes as f64, false),
        _ => unreachable!(),
    };
    let (bw, lat) = if nodes > 1.0 {
        (links.inter_gbs.min(links.intra_gbs), links.inter_latency_us)
    } else {
        (links.intra_gbs, links.intra_latency_us)
    };
    let (volume, hops) = if all_reduce {
        (2.0 * (gpus - 1.0) / gpus * bytes, 2.0 * (gpus - 1.0))
    } else {
        (bytes, 1.0)
    };
    let secs = hops * lat * 1e-6 + volume / (bw * 1e9);
    Ok(KernelEstimate {
        kernel_ms: secs * 1e3,
        bound: if volume / (bw * 1e9) > hops * lat * 1e-6 { Bound::Network } else { Bound::Latency },
        tile: Some(if all_reduce { "ring".into() } else { "p2p".into() }),
        ctas: 1,
        waves: 1,
        clock_mhz: gpu.profile.compute.boost_clock_mhz,
        bytes: volume,
        flops: 0.0,
        launches: 1,
    })
}

//! NCCL collectives (`all_reduce`, `send_recv`) on a node topology.
//!
//! The model is NCCL's own cost model (`src/graph/tuning.cc`, v2.18-2.19: PyTorch 2.2
//! ships NCCL 2.19.3), applied to the links of the node the collective runs on:
//!
//! * **Topology.** A trace row's `node_type` tag names a table of `kernels/topologies.toml`
//!   (GPUs per node, intra-node fabric `nvswitch | nvlink_pairs | pcie`, NICs and their
//!   speed, CPU vendor, each with a source). Without one, the node is derived from the GPU
//!   profile (`default_topology`).
//! * **Links, as NCCL's topology search counts them** (`src/graph/topo.h`, `topo.cc`):
//!   NVLink is the profile's per-direction figure times NCCL's per-link bandwidth over
//!   the raw per-link rate (SM80: 20 of 25 GB/s); PCIe is `lanes × GT/s × 7.5 / 80`
//!   (Gen4 x16 = 24 GB/s); the network is the NIC's line rate. A ring's bus bandwidth
//!   is its slowest link: NVLink inside an NVSwitch node or a bridged pair, PCIe where a
//!   ring leaves a pair, the node's NICs where it leaves the node.
//! * **Algorithm and protocol.** For every (ring | tree) × (LL | LL128 | Simple) NCCL
//!   enables, time = latency + bytes / algorithm bandwidth, with NCCL's base and per-step
//!   latencies and its protocol bandwidth factors (LL 1/4 of the ring bandwidth for
//!   all-reduce, LL128 92 %, Simple 100 %); like NCCL, the fastest wins. Ring all-reduce
//!   moves 2(n−1)/n of the buffer through every GPU; tree (multi-node only) moves it
//!   twice at half the bus bandwidth.
//! * **Send/recv** moves the buffer once over the path between the two GPUs: LL up to
//!   `NCCL_P2P_LL_THRESHOLD` (16 KiB), Simple above. The traced rank is the sender
//!   (vidur records rank 0, which sends), whose kernel returns once its last chunk sits in
//!   the connection's FIFO: one `NCCL_BUFFSIZE` (4 MiB) can still be in flight.
//! * **Transports.** A node type names how NCCL moved the data in the runs it describes
//!   (`net_transport = ib | socket`, `intra_transport = p2p | shm`), which need not be
//!   what the hardware allows (vidur's DGX runs went over TCP sockets). NCCL still picks
//!   its algorithm and protocol on its own view of the links (the socket transport: one
//!   interface at its line rate; a tree's channels rated at twice the ring's network
//!   share, as NCCL's balanced-tree search charges them); the time is then that pick on
//!   what the transport delivers. The socket and SHM transports stage every byte through
//!   a host-memory buffer, one NCCL channel at the `[staged] channel_gbs` rate: 2
//!   channels per network peer (`NCCL_NCHANNELS_PER_NET_PEER`), one TCP stream each
//!   (`NCCL_SOCKET_NTHREADS` × `NCCL_NSOCKS_PERTHREAD` = 1), 1 channel over SHM. A socket
//!   tree sends each byte across the network once per direction, a ring twice. The
//!   sender of a staged point-to-point send fills its buffers at the channels' rate and
//!   returns when the last byte sits in one: the 2 × 8 × 128 KiB window in flight
//!   (`NCCL_P2P_NET_CHUNKSIZE`, `NCCL_STEPS`) is free of the drain, not of the fill.
//!   The drain is the TCP streams: over Ethernet one stream carries at most the
//!   `[ethernet_stream] channel_gbs` rate (the kernel's TCP cost is per packet, and
//!   Ethernet's frames are 1500 bytes), so past the window a send runs at 2 streams'
//!   rate (~2.1 GB/s on vidur's Ethernet VMs, against ~7.6 GB/s of fill); over IPoIB
//!   (vidur's DGX) no stream limit below the staging rate shows.
//! * **Ring channels over P2P.** NCCL runs a ring on `ring_channels` channels, one CTA
//!   each: its graph search finds one ring per NVLink link (at most 16) and
//!   `ncclTopoPostset` duplicates them (24 on A100 NVLink, 32 on H100 SXM; 4 over PCIe).
//!   What one channel's CTA moves over P2P is no document's figure (`[p2p] channel_gbs`,
//!   fitted); a ring over P2P runs at min(NCCL's link figure, channels × that rate), each
//!   protocol at NCCL's fraction of it. NCCL still picks on its own figures.
//! * **Waiting for the peers.** An all-reduce kernel on one rank cannot finish before
//!   every rank has launched it. In a loop of eager calls whose GPU time is shorter than
//!   the host's time per call, every kernel waits for the slowest rank's next launch, so
//!   a measured all-reduce never takes less than one host call: the eager-call and
//!   library-call costs of `kernels/launch.toml`.
//!
//! Three numbers are fitted to collective measurements, which no document states
//! (`phantom-gpu fit`): the P2P ring channel rate (on the fit rows of all-reduces inside
//! one node over NVLink), then the staged channel rate (on the fit rows of socket nodes on
//! InfiniBand and of SHM), then the Ethernet TCP stream rate (on the fit rows across
//! Ethernet nodes, whose buffers fill at the staged rate).

use super::{Bound, Dtype, KernelEstimate, Op};
use crate::error::{closest, Error, Result};
use crate::hw::{Gpu, Templates};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Topologies (kernels/topologies.toml)
// ---------------------------------------------------------------------------------------

/// How the GPUs of one node talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fabric {
    /// Every GPU reaches every other at its full NVLink bandwidth (DGX/HGX boards).
    Nvswitch,
    /// NVLink bridges join GPUs in pairs (0-1, 2-3, …); anything else crosses PCIe.
    NvlinkPairs,
    /// PCIe only.
    Pcie,
}

/// The inter-node network technology.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Infiniband,
    Ethernet,
}

/// The host CPU vendor: NCCL's tuning picks its multi-node LL bandwidth cap and its
/// per-step network overhead by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuVendor {
    #[default]
    Intel,
    Amd,
}

/// How NCCL moves data between nodes (its network plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetTransport {
    /// NCCL's IB verbs transport (InfiniBand or RoCE NICs): the NIC's line rate, with
    /// GPUDirect RDMA where the node has it.
    Ib,
    /// NCCL's socket transport (TCP through the kernel): every byte is staged through a
    /// host-memory buffer on both sides (no GPUDirect), one TCP stream per connection.
    Socket,
}

/// How NCCL moves data between two GPUs of one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntraTransport {
    /// Peer-to-peer: one GPU writes into the other's memory (NVLink or PCIe).
    #[default]
    P2p,
    /// Shared host memory: the sender writes into a host buffer, the receiver reads it
    /// back, both over PCIe (NCCL's SHM transport, used where P2P is off).
    Shm,
}

/// One node type of `kernels/topologies.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeTopology {
    pub description: String,
    pub gpus_per_node: u32,
    pub intra: Fabric,
    /// NVLink bandwidth per direction between the two cards of a bridged pair (GB/s),
    /// for `nvlink_pairs`; default: the GPU profile's NVLink figure.
    #[serde(default)]
    pub nvlink_bridge_gbs_per_direction: Option<f64>,
    /// NICs NCCL can use for collectives (storage NICs excluded).
    pub nics_per_node: u32,
    /// Line rate of one NIC, Gb/s.
    pub nic_gbps: f64,
    pub network: Network,
    /// NICs read and write GPU memory directly (GPUDirect RDMA). NCCL enables LL128
    /// across nodes only then.
    #[serde(default)]
    pub gpudirect_rdma: bool,
    #[serde(default)]
    pub cpu_vendor: CpuVendor,
    /// NCCL's inter-node transport; default: `ib` on an InfiniBand network, `socket` on
    /// Ethernet.
    #[serde(default)]
    pub net_transport: Option<NetTransport>,
    /// NCCL's intra-node transport between the GPUs in use; default `p2p`.
    #[serde(default)]
    pub intra_transport: IntraTransport,
    /// Field → citation.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    /// Evidence, estimates, what the measurements show.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl NodeTopology {
    /// The inter-node transport, with its default resolved.
    pub fn net_transport(&self) -> NetTransport {
        self.net_transport.unwrap_or(match self.network {
            Network::Infiniband => NetTransport::Ib,
            Network::Ethernet => NetTransport::Socket,
        })
    }
}

/// A per-channel rate of one NCCL transport that no document states: fitted once for
/// every node (`phantom-gpu fit`), with its provenance in `sources`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChannelRate {
    /// GB/s one channel delivers.
    pub channel_gbs: f64,
    /// Field → citation.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

impl ChannelRate {
    /// The host-staged transports (socket, SHM) before any fit: what one channel moves
    /// through a host-memory bounce buffer (its CTA copying between GPU memory and pinned
    /// host memory over PCIe, and for sockets the proxy thread's one TCP stream).
    pub fn staged() -> Self {
        ChannelRate { channel_gbs: DEFAULT_STAGED_CHANNEL_GBS, sources: BTreeMap::new() }
    }

    /// Peer-to-peer links (NVLink or PCIe) inside a node before any fit: the bus
    /// bandwidth one ring channel's CTA delivers per direction, copying and reducing
    /// between GPU memory and the peer's buffer.
    pub fn p2p() -> Self {
        ChannelRate { channel_gbs: DEFAULT_P2P_CHANNEL_GBS, sources: BTreeMap::new() }
    }

    /// One TCP stream of NCCL's socket transport over an Ethernet network before any
    /// fit: what the kernel's TCP stack carries for one connection at Ethernet's
    /// 1500-byte frames (its per-packet cost, not the NIC, sets it).
    pub fn ethernet_stream() -> Self {
        ChannelRate { channel_gbs: DEFAULT_ETHERNET_STREAM_GBS, sources: BTreeMap::new() }
    }

    fn check(&self, table: &str) -> std::result::Result<(), String> {
        if self.channel_gbs.is_finite() && self.channel_gbs > 0.0 {
            Ok(())
        } else {
            Err(format!("[{table}] channel_gbs must be a positive number of GB/s, not {}", self.channel_gbs))
        }
    }
}

/// The staged channel rate before any fit (GB/s): PCIe Gen3 x16 as NCCL counts it over
/// three, an order of magnitude only; `kernels/topologies.toml` carries the fitted value.
pub const DEFAULT_STAGED_CHANNEL_GBS: f64 = 4.0;

/// The P2P channel rate before any fit (GB/s): NCCL's own per-channel figure on SM80
/// NVLink (20 GB/s per link, two channels per link), so that the cap does not bind;
/// `kernels/topologies.toml` carries the fitted value.
pub const DEFAULT_P2P_CHANNEL_GBS: f64 = 10.0;

/// The Ethernet TCP stream rate before any fit (GB/s): 10 Gb/s, an order of magnitude
/// only; `kernels/topologies.toml` carries the fitted value.
pub const DEFAULT_ETHERNET_STREAM_GBS: f64 = 1.25;

/// All node types, by the name trace rows use in their `node_type` tag.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topologies {
    /// The host-staged transports' channel rate (one value for every node).
    #[serde(default = "ChannelRate::staged")]
    pub staged: ChannelRate,
    /// The peer-to-peer channel rate (one value for every node).
    #[serde(default = "ChannelRate::p2p")]
    pub p2p: ChannelRate,
    /// One TCP stream of the socket transport over an Ethernet network (one value for
    /// every node).
    #[serde(default = "ChannelRate::ethernet_stream")]
    pub ethernet_stream: ChannelRate,
    #[serde(default)]
    pub node: BTreeMap<String, NodeTopology>,
}

impl Default for Topologies {
    fn default() -> Self {
        Topologies { staged: ChannelRate::staged(), p2p: ChannelRate::p2p(), ethernet_stream: ChannelRate::ethernet_stream(), node: BTreeMap::new() }
    }
}

impl Topologies {
    /// Parses `kernels/topologies.toml` (or a user's file of the same layout) and checks
    /// what serde cannot: a socket transport has no GPUDirect RDMA, rates are positive.
    pub fn parse(path: &str, text: &str) -> Result<Topologies> {
        let t: Topologies = toml::from_str(text).map_err(|e| Error::Parse {
            path: path.to_string(),
            line: e.span().map(|s| crate::error::line_of(text, s.start)).unwrap_or(0),
            msg: e.message().to_string(),
        })?;
        let bad = |msg: String| Error::Parse { path: path.to_string(), line: 0, msg };
        t.staged.check("staged").map_err(bad)?;
        t.p2p.check("p2p").map_err(bad)?;
        t.ethernet_stream.check("ethernet_stream").map_err(bad)?;
        for (name, n) in &t.node {
            if n.net_transport() == NetTransport::Socket && n.gpudirect_rdma {
                return Err(bad(format!(
                    "node.{name}: net_transport = \"socket\" cannot have gpudirect_rdma = true (NCCL's socket transport stages every byte through host memory)"
                )));
            }
            if !(n.nic_gbps.is_finite() && n.nic_gbps >= 0.0) {
                return Err(bad(format!("node.{name}: nic_gbps must be a non-negative number, not {}", n.nic_gbps)));
            }
        }
        Ok(t)
    }

    /// The node type called `name`, or an error that lists the known ones.
    pub fn get(&self, name: &str) -> Result<&NodeTopology> {
        self.node.get(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = self.node.keys().map(String::as_str).collect();
            let near = closest(name, known.iter().copied());
            Error::Usage(format!(
                "unknown node_type '{name}': kernels/topologies.toml knows {}{}; leave node_type out to derive the node from the GPU profile",
                if known.is_empty() { "none".to_string() } else { known.join(", ") },
                if near.is_empty() { String::new() } else { format!(" (did you mean: {}?)", near.join(", ")) },
            ))
        })
    }
}

/// The node of a GPU nobody described: SXM and OAM boards sit on a switched NVLink
/// fabric (NVSwitch; note that DGX-1's V100 SXM2 hybrid cube mesh is not one), NVL cards
/// in NVLink-bridged pairs, everything else on PCIe; 8 GPUs per node (or as many as the
/// collective uses), one 200 Gb/s HDR InfiniBand NIC with GPUDirect RDMA per GPU.
pub fn default_topology(gpu: &Gpu, gpus_per_node: u64) -> NodeTopology {
    let p = &gpu.profile;
    let nvlink = p.interconnect.nvlink_bandwidth_gbs_per_direction.is_some();
    let intra = match p.form_factor.as_deref() {
        Some("sxm") | Some("oam") if nvlink => Fabric::Nvswitch,
        Some("nvl") if nvlink => Fabric::NvlinkPairs,
        _ => Fabric::Pcie,
    };
    let gpus = gpus_per_node.max(8) as u32;
    NodeTopology {
        description: format!("derived from the {} profile", p.key),
        gpus_per_node: gpus,
        intra,
        nvlink_bridge_gbs_per_direction: None,
        nics_per_node: gpus,
        nic_gbps: 200.0,
        network: Network::Infiniband,
        gpudirect_rdma: true,
        cpu_vendor: CpuVendor::Intel,
        net_transport: Some(NetTransport::Ib),
        intra_transport: IntraTransport::P2p,
        sources: BTreeMap::new(),
        notes: vec![],
    }
}

/// The node a collective runs on: the named node type, or the profile's default.
pub fn topology<'a>(gpu: &Gpu, templates: &'a Templates, node_type: Option<&str>, gpus_per_node: u64) -> Result<Cow<'a, NodeTopology>> {
    match node_type.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => Ok(Cow::Borrowed(templates.topologies.get(name)?)),
        None => Ok(Cow::Owned(default_topology(gpu, gpus_per_node))),
    }
}

// ---------------------------------------------------------------------------------------
// Link bandwidths as NCCL counts them
// ---------------------------------------------------------------------------------------

/// PCIe per-direction bandwidth by generation, GB/s (PCI-SIG: 8/16/32/64 GT/s per lane
/// with 128b/130b encoding from gen 3): the raw link.
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

/// PCIe bandwidth as NCCL's topology counts it, GB/s: `width × speed / 80` with the
/// link speed mapped "8 GT/s" → 60, "16 GT/s" → 120, "32 GT/s" → 240 (NCCL
/// `src/graph/xml.cc` kvDictPciGen, `topo.cc`), i.e. lanes × GT/s × 7.5 / 80: Gen3 x16 =
/// 12 GB/s (`PCI_BW` in `topo.h`), Gen4 x16 = 24 GB/s.
pub fn nccl_pcie_gbs(gen: u32, lanes: u32) -> f64 {
    let gts = match gen {
        1 => 2.5,
        2 => 5.0,
        3 => 8.0,
        4 => 16.0,
        5 => 32.0,
        _ => 64.0,
    };
    lanes as f64 * gts * 7.5 / 80.0
}

/// NCCL's per-link NVLink bandwidth (`src/graph/topo.h`: SM60 18, SM70/SM80 20, SM86
/// 12, SM90 20.6, SM100 40.1 GB/s) over the raw per-direction rate of one link of that
/// generation (NVLink 1: 20, 2-4: 25, GA102's NVLink 3: 14.06, NVLink 5: 50 GB/s), so
/// that profile bandwidth × fraction = links × NCCL's per-link figure.
pub fn nvlink_nccl_fraction(compute_capability: Option<u32>) -> f64 {
    match compute_capability {
        Some(60..=69) => 18.0 / 20.0,
        Some(70..=79) => 20.0 / 25.0,
        Some(80) => 20.0 / 25.0,
        Some(81..=89) => 12.0 / 14.0625,
        Some(90..=99) => 20.6 / 25.0,
        Some(100..) => 40.1 / 50.0,
        _ => 0.8,
    }
}

/// Raw per-direction rate of one NVLink link of the generation a compute capability
/// carries, GB/s (NVLink 1: 20; NVLink 2-4: 25; GA102's NVLink 3: 14.0625; NVLink 5: 50),
/// the denominators of `nvlink_nccl_fraction`.
pub fn nvlink_link_gbs(compute_capability: Option<u32>) -> f64 {
    match compute_capability {
        Some(60..=69) => 20.0,
        Some(81..=89) => 14.0625,
        Some(100..) => 50.0,
        _ => 25.0,
    }
}

/// `NCCL_MAX_NCHANNELS` / 2 (`MAXCHANNELS` 32 in `src/include/device.h`): the most ring
/// channels NCCL's graph search returns before it duplicates them.
pub const MAX_SEARCH_CHANNELS: f64 = 16.0;

/// Ring channels NCCL runs between the GPUs of one node: its graph search finds one ring
/// per NVLink link (each carries NCCL's per-link bandwidth; at most `MAX_SEARCH_CHANNELS`),
/// and `ncclTopoPostset` (`src/graph/connect.cc`) duplicates the rings, so twice that:
/// 12 NVLink 3 links (A100 SXM4 on NVSwitch, or an A100 PCIe bridged pair) give 24
/// channels, as NCCL logs on a DGX A100 ("Channel 23/24"; as recalled); 18 NVLink 4 links
/// (H100 SXM) give 2 × 16 = 32. Over PCIe (one link of NCCL's 24 GB/s for Gen4 x16) the
/// search settles on 2 rings of 12 GB/s (its speed steps 20, 18, 15, 12 GB/s: two of 12
/// beat one of 20), duplicated to 4. estimate: the NVLink rule is the search's result on
/// these uniform fabrics, not a rerun of the search.
pub fn ring_channels(hw: Hw, nvlink_links: f64) -> f64 {
    match hw {
        Hw::NvLink => 2.0 * nvlink_links.round().clamp(1.0, MAX_SEARCH_CHANNELS),
        _ => 4.0,
    }
}

/// `8.6` → 86; None for non-CUDA GPUs.
fn compute_capability(gpu: &Gpu) -> Option<u32> {
    let (a, b) = gpu.profile.compute_capability.as_deref()?.split_once('.')?;
    Some(a.trim().parse::<u32>().ok()? * 10 + b.trim().parse::<u32>().ok()?)
}

/// NCCL's hardware classes for latency (`NCCL_HW_NVLINK`, `NCCL_HW_PCI`, `NCCL_HW_NET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hw {
    NvLink = 0,
    Pci = 1,
    Net = 2,
}

/// The links a collective over `gpus_per_node` GPUs per node on `nodes` nodes crosses.
#[derive(Debug, Clone, Copy)]
pub struct Links {
    /// Per-direction bandwidth of the slowest intra-node link of the ring, GB/s as NCCL
    /// counts it (infinite with one GPU per node).
    pub intra_gbs: f64,
    pub intra_hw: Hw,
    /// Ring channels NCCL runs over the intra-node links (`ring_channels`).
    pub intra_channels: f64,
    /// Network bandwidth per node for the NICs the GPUs in use reach (and their PCIe
    /// links), GB/s.
    pub net_node_gbs: f64,
    /// One NIC behind one GPU's PCIe link, GB/s: what one point-to-point connection gets.
    pub nic_gbs: f64,
}

/// NCCL's NVLink bandwidth between two GPUs (GB/s) and the number of links it counts.
fn nvlink_gbs(gpu: &Gpu, figure: Option<f64>, node: &NodeTopology) -> Result<(f64, f64)> {
    let raw = figure.or(gpu.profile.interconnect.nvlink_bandwidth_gbs_per_direction).ok_or_else(|| Error::Unsupported {
        gpu: gpu.key().to_string(),
        what: format!("a collective on {}", node.description),
        why: "the node's fabric is NVLink and the GPU profile has no NVLink bandwidth".into(),
    })?;
    let cc = compute_capability(gpu);
    Ok((raw * nvlink_nccl_fraction(cc), raw / nvlink_link_gbs(cc)))
}

fn pcie_of(gpu: &Gpu) -> f64 {
    let ic = &gpu.profile.interconnect;
    nccl_pcie_gbs(ic.pcie_gen.unwrap_or(4), ic.pcie_lanes.unwrap_or(16))
}

/// Links of a ring over `gpus_per_node` GPUs per node.
pub fn links(gpu: &Gpu, node: &NodeTopology, gpus_per_node: u64) -> Result<Links> {
    let (intra_gbs, intra_hw, nv_links) = if gpus_per_node <= 1 {
        (f64::INFINITY, Hw::Pci, 0.0)
    } else {
        let nv = |figure| -> Result<(f64, Hw, f64)> {
            let (gbs, links) = nvlink_gbs(gpu, figure, node)?;
            Ok((gbs, Hw::NvLink, links))
        };
        match node.intra {
            Fabric::Nvswitch => nv(None)?,
            // Two GPUs are taken to be a bridged pair (devices 0 and 1); a ring over more
            // leaves its pair over PCIe.
            Fabric::NvlinkPairs if gpus_per_node <= 2 => nv(node.nvlink_bridge_gbs_per_direction)?,
            Fabric::NvlinkPairs | Fabric::Pcie => (pcie_of(gpu), Hw::Pci, 0.0),
        }
    };
    let intra_channels = ring_channels(intra_hw, nv_links);
    // A GPU's network traffic also crosses its own PCIe link (NCCL's path GPU → NIC).
    let pcie = pcie_of(gpu);
    let nic_gbs = (node.nic_gbps / 8.0).min(pcie);
    // The GPUs in use reach their share of the node's NICs (at least one). NCCL's socket
    // transport sees one interface per node. estimate: NCCL takes every interface that
    // matches NCCL_SOCKET_IFNAME, and launchers commonly name one; evidence: on vidur's
    // a100_dgx, NCCL switches from ring to tree across 2 nodes exactly where its tuning
    // does with one 25 GB/s interface (2 GPUs per node: tree only for 8-16 MiB, where its
    // correction factor is 0.8; 4 per node: tree from 4 MiB, where it rises to 0.7), not
    // where 2-8 NICs' worth would put it (never).
    let nics_avail = if node.net_transport() == NetTransport::Socket { 1 } else { node.nics_per_node.max(1) };
    let share = nics_avail as f64 * gpus_per_node as f64 / node.gpus_per_node.max(1) as f64;
    let nics = share.ceil().clamp(1.0, nics_avail as f64);
    let net_node_gbs = (nics * node.nic_gbps / 8.0).min(gpus_per_node.max(1) as f64 * pcie);
    Ok(Links { intra_gbs, intra_hw, intra_channels, net_node_gbs, nic_gbs })
}

// ---------------------------------------------------------------------------------------
// NCCL's tuning model (src/graph/tuning.cc, v2.18-2.19)
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Tree = 0,
    Ring = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ll = 0,
    Ll128 = 1,
    Simple = 2,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Tree => "tree",
            Algo::Ring => "ring",
        }
    }
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Ll => "ll",
            Proto::Ll128 => "ll128",
            Proto::Simple => "simple",
        }
    }
}

/// Base latency per algorithm and protocol, µs (`baseLat`: Tree {6.8, 14.0, 0},
/// Ring {6.6, 14.0, 8.4}).
const BASE_LAT: [[f64; 3]; 2] = [[6.8, 14.0, 0.0], [6.6, 14.0, 8.4]];

/// Latency per step by hardware, algorithm and protocol, µs (`hwLat`).
const HW_LAT: [[[f64; 3]; 2]; 3] = [
    // NVLink: Tree, Ring
    [[0.6, 1.25, 28.0], [0.6, 1.9, 3.4]],
    // PCI
    [[1.0, 1.9, 28.0], [1.0, 2.5, 5.7]],
    // NET
    [[5.0, 8.5, 28.0], [2.7, 4.0, 14.0]],
];

/// LL bandwidth caps, GB/s (`llMaxBws`): rows Volta / Ampere / Hopper on one node, or
/// Intel / AMD hosts across nodes (row 0 / 1); columns 1, 2, more nodes.
const LL_MAX_BWS: [[f64; 3]; 3] = [[39.0, 39.0, 20.4], [87.7, 22.5, 19.0], [141.0, 45.0, 35.0]];

/// Tree bandwidth correction by log2(bytes / 64), per protocol (`treeCorrectionFactor`).
const TREE_CORRECTION: [[f64; 23]; 3] = [
    [1.0, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 1.0],
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.7, 0.7, 0.7, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6],
    [0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.7, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.6, 0.7, 0.8, 0.7, 0.7, 0.8, 0.9, 0.9],
];

/// Ring LL128 bandwidth factor with two or more GPUs per node (120/128 rounded by NCCL)
/// and with one (NIC send and receive on the same GPU).
const RING_LL128_FACTOR: f64 = 0.92;
const RING_LL128_FACTOR_PPN1: f64 = 0.7;
/// Tree bandwidth factor (`busBw * .92`).
const TREE_FACTOR: f64 = 0.92;
/// NCCL's tree graph search charges each of the two GPUs that share a NIC half of a
/// channel's network bandwidth ("Balanced Tree: count half of the bandwidth on first two
/// GPUs", `ncclTopoSearchRecNet` in `src/graph/search.cc`), so a tree's channels are
/// rated at twice the ring's over the same NICs, up to the intra-node links.
const TREE_NET_SHARE: f64 = 2.0;

/// `NCCL_P2P_LL_THRESHOLD` default (bytes): point-to-point uses LL up to this size.
pub const P2P_LL_THRESHOLD: f64 = 16384.0;
/// `NCCL_BUFFSIZE` default (bytes): the Simple protocol's FIFO per connection.
pub const NCCL_BUFFSIZE: f64 = 4.0 * 1024.0 * 1024.0;
/// LL sends 4 bytes of data with each 4-byte flag: half the link.
pub const P2P_LL_EFFICIENCY: f64 = 0.5;

/// Channels a point-to-point connection to a peer on another node uses
/// (`NCCL_NCHANNELS_PER_NET_PEER` default, NCCL 2.12-2.19).
pub const NCHANNELS_PER_NET_PEER: f64 = 2.0;
/// TCP streams per socket connection: `NCCL_SOCKET_NTHREADS` × `NCCL_NSOCKS_PERTHREAD`,
/// both 1 by default outside AWS and GCP (NCCL environment-variable documentation; the
/// auto-detection in `net_socket.cc` raises them only for those clouds' NIC vendors).
pub const SOCKETS_PER_CONNECTION: f64 = 1.0;
/// Channels crossing the node boundary of a ring over the socket transport, each
/// direction. estimate: as point-to-point (`NCHANNELS_PER_NET_PEER`); evidence: the
/// ring rates measured on vidur's a100_dgx do not grow with GPUs per node (bus bandwidth
/// ~5.9, ~6.0, ~7.4 GB/s with 1, 2, 8 GPUs per node).
pub const SOCKET_RING_CHANNELS: f64 = 2.0;
/// Channels between two GPUs of a node that talk through shared host memory. estimate:
/// NCCL gives a peer min(2, the communicator's channels) channels (`init.cc`
/// p2pnChannelsPerPeer); two GPUs joined only through the CPU give a ring search below
/// 25 GB/s, which NCCL does not duplicate: one channel.
pub const SHM_CHANNELS: f64 = 1.0;
/// `NCCL_P2P_NET_CHUNKSIZE` default (bytes) and `NCCL_STEPS`: a point-to-point
/// connection over the network has 8 chunks of 128 KiB in flight per channel.
pub const P2P_NET_CHUNKSIZE: f64 = 128.0 * 1024.0;
pub const NCCL_STEPS: f64 = 8.0;

/// Everything NCCL's tuning needs about one collective.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub ranks: u64,
    pub nodes: u64,
    pub gpus_per_node: u64,
    pub links: Links,
    pub compute_capability: Option<u32>,
    pub cpu: CpuVendor,
    pub gpudirect_rdma: bool,
    pub net_transport: NetTransport,
    pub intra_transport: IntraTransport,
    /// One channel through a host-memory bounce buffer, GB/s (`[staged]`).
    pub staged_channel_gbs: f64,
    /// One ring channel over peer-to-peer links, GB/s (`[p2p]`).
    pub p2p_channel_gbs: f64,
    /// What one TCP stream of the socket transport carries, GB/s: `[ethernet_stream]` on
    /// an Ethernet network; infinite where no stream limit below the staging rate is
    /// known (TCP over IPoIB on InfiniBand; estimate: its 2-4 KiB or 64 KiB frames cost
    /// the kernel a fraction of Ethernet's 1500-byte ones per byte; evidence: vidur's
    /// a100_dgx socket send_recv keeps ~7.8 GB/s, its 2 channels' staging rate, to
    /// 64 MiB, 30x its buffers in flight).
    pub tcp_stream_gbs: f64,
}

/// NCCL's pick for one size and its time.
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub algo: Algo,
    pub proto: Proto,
    pub us: f64,
    pub latency_us: f64,
}

impl Setup {
    /// Bus bandwidth of the graph: the slowest link a ring crosses, GB/s.
    fn bus_gbs(&self, algo: Algo) -> f64 {
        if self.nodes > 1 {
            let share = if algo == Algo::Tree { TREE_NET_SHARE } else { 1.0 };
            self.links.intra_gbs.min(share * self.links.net_node_gbs)
        } else {
            self.links.intra_gbs
        }
    }

    /// The network goes through NCCL's socket transport.
    fn socket(&self) -> bool {
        self.nodes > 1 && self.net_transport == NetTransport::Socket
    }

    /// The GPUs of a node talk through shared host memory.
    fn shm(&self) -> bool {
        self.gpus_per_node > 1 && self.intra_transport == IntraTransport::Shm
    }

    /// Per-direction intra-node rate the transport delivers, GB/s: NCCL's link figure,
    /// or for SHM its channels through host memory.
    fn intra_actual_gbs(&self) -> f64 {
        if self.shm() {
            self.links.intra_gbs.min(SHM_CHANNELS * self.staged_channel_gbs)
        } else if self.gpus_per_node > 1 {
            self.links.intra_gbs.min(self.links.intra_channels * self.p2p_channel_gbs)
        } else {
            self.links.intra_gbs
        }
    }

    /// Per-direction network rate of a node that the transport delivers, GB/s: the NICs,
    /// or for the socket transport its channels' streams through host memory.
    fn net_actual_gbs(&self, channels: f64) -> f64 {
        if self.socket() {
            // Each channel stages through host memory and its streams carry it: the
            // slower of the two sets a ring's steady rate.
            let per_channel = self.staged_channel_gbs.min(SOCKETS_PER_CONNECTION * self.tcp_stream_gbs);
            self.links.net_node_gbs.min(channels * per_channel)
        } else {
            self.links.net_node_gbs
        }
    }

    fn cc_index(&self) -> usize {
        match self.compute_capability {
            Some(c) if c >= 90 => 2,
            Some(c) if c >= 80 => 1,
            _ => 0,
        }
    }

    /// NCCL's default LL128 enable: NVLink inside the node, the NIC reached without
    /// the CPU (GPUDirect RDMA) across nodes, and an architecture it was validated on
    /// (SM 7.0, 8.0, 9.0; not SM 8.6).
    fn ll128_enabled(&self) -> bool {
        let arch_ok = matches!(self.compute_capability, Some(70) | Some(80) | Some(90));
        let intra_ok = self.gpus_per_node <= 1 || self.links.intra_hw == Hw::NvLink;
        let inter_ok = self.nodes <= 1 || self.gpudirect_rdma;
        arch_ok && intra_ok && inter_ok
    }

    fn net_overhead_us(&self) -> f64 {
        // getNetOverhead(): 1 µs on Intel hosts, 2 µs on AMD hosts.
        match self.cpu {
            CpuVendor::Intel => 1.0,
            CpuVendor::Amd => 2.0,
        }
    }

    /// NCCL's time for one all-reduce of `bytes` with an algorithm and protocol, µs.
    /// NCCL's own estimate (`actual` false) rates every link by what NCCL's topology
    /// sees (NIC line rates, PCIe); `actual` times the same algorithm and protocol on
    /// what the transports deliver (host-staged socket and SHM channels).
    pub fn all_reduce_us(&self, algo: Algo, proto: Proto, bytes: f64, actual: bool) -> Option<(f64, f64)> {
        let n = self.ranks as f64;
        let nodes = self.nodes as f64;
        if algo == Algo::Tree && self.nodes <= 1 {
            return None; // NCCL's tree spans nodes; inside one it never beats the ring.
        }
        if proto == Proto::Ll128 && !self.ll128_enabled() {
            return None;
        }
        let b = if actual {
            let intra = self.intra_actual_gbs();
            if self.nodes <= 1 {
                intra
            } else if self.socket() {
                // A socket tree's network share is applied below, on the algorithm
                // bandwidth.
                if algo == Algo::Tree {
                    intra
                } else {
                    intra.min(self.net_actual_gbs(SOCKET_RING_CHANNELS))
                }
            } else {
                // NCCL's own view of the network, on the channels' intra-node rate.
                let share = if algo == Algo::Tree { TREE_NET_SHARE } else { 1.0 };
                intra.min(share * self.links.net_node_gbs)
            }
        } else {
            self.bus_gbs(algo)
        };
        let col = (self.nodes.clamp(1, 3) - 1) as usize;
        let row = if self.nodes == 1 {
            self.cc_index()
        } else if self.cpu == CpuVendor::Amd {
            1
        } else {
            0
        };
        let ll_max = LL_MAX_BWS[row][col];
        let nsteps = 2.0 * (n - 1.0);
        let (bus, ratio) = match (algo, proto) {
            (Algo::Ring, Proto::Ll) if actual && (self.socket() || self.shm()) => {
                // NCCL's 1/4 rates LL against fast links; through a host-memory buffer
                // the staged channels carry LL's 8-byte lines at half their payload.
                let mut bw = ll_max.min(self.links.intra_gbs / 4.0);
                if self.shm() {
                    bw = bw.min(P2P_LL_EFFICIENCY * self.intra_actual_gbs());
                }
                if self.socket() {
                    bw = bw.min(P2P_LL_EFFICIENCY * self.net_actual_gbs(SOCKET_RING_CHANNELS));
                }
                (bw, n / nsteps)
            }
            (Algo::Ring, Proto::Ll) => (ll_max.min(b / 4.0), n / nsteps),
            (Algo::Ring, Proto::Ll128) => {
                (b * if self.gpus_per_node < 2 { RING_LL128_FACTOR_PPN1 } else { RING_LL128_FACTOR }, n / nsteps)
            }
            (Algo::Ring, Proto::Simple) => (b, n / nsteps),
            (Algo::Tree, Proto::Ll) => ((b * TREE_FACTOR / 3.8).min(ll_max), 0.5),
            (Algo::Tree, Proto::Ll128) => (b * TREE_FACTOR * if self.nodes == 1 { 7.0 / 9.0 } else { 120.0 / 128.0 }, 0.5),
            (Algo::Tree, Proto::Simple) => (b * TREE_FACTOR, 0.5),
        };
        let mut alg_bw = bus * ratio;
        let intra_lat = HW_LAT[self.links.intra_hw as usize][algo as usize][proto as usize];
        let inter_lat = HW_LAT[Hw::Net as usize][algo as usize][proto as usize];
        let mut lat = BASE_LAT[algo as usize][proto as usize];
        match algo {
            Algo::Ring => {
                let inter_steps = if self.nodes > 1 { 2.0 * nodes } else { 0.0 };
                let mut intra = intra_lat;
                if self.nodes > 1 {
                    // Inter-node rings still launch every step through the network proxy.
                    let overhead = self.net_overhead_us() * if proto == Proto::Simple { 3.0 } else { 1.0 };
                    intra = intra.max(overhead);
                }
                // NCCL counts nsteps − 2·nodes intra steps; with one GPU per node that is
                // negative, which we read as none.
                lat += (nsteps - inter_steps).max(0.0) * intra + inter_steps * inter_lat;
                if proto == Proto::Simple && self.nodes > 1 {
                    // "Plateau effect of ring" (enqueue.cc ncclTopoGetAlgoTime).
                    lat *= if self.cc_index() >= 1 { 1.4 } else { 1.9 };
                }
            }
            Algo::Tree => {
                let ppn = self.gpus_per_node as f64;
                lat += 2.0 * ((ppn - 1.0) * intra_lat + nodes.log2() * inter_lat);
                let log_size = (bytes / 64.0).max(1.0).log2().floor() as usize;
                if log_size < 23 {
                    alg_bw *= TREE_CORRECTION[proto as usize][log_size];
                }
                if actual && self.socket() {
                    // NCCL's 1/2 counts a GPU's link carrying the reduction up and the
                    // broadcast down; a node's network link carries each byte once per
                    // direction (the two trees of NCCL's double binary tree each send
                    // half the buffer up and half down), LL at half its payload.
                    let payload = if proto == Proto::Ll { P2P_LL_EFFICIENCY } else { 1.0 };
                    alg_bw = alg_bw.min(payload * self.net_actual_gbs(SOCKET_RING_CHANNELS));
                }
            }
        }
        if alg_bw.is_nan() || alg_bw <= 0.0 {
            return None;
        }
        Some((lat + bytes / (1000.0 * alg_bw), lat))
    }

    /// The algorithm and protocol NCCL picks for an all-reduce of `bytes`, and its time.
    /// NCCL picks by its own estimate, on the links its topology sees; the time is what
    /// the transports deliver for that pick (host-staged channels; P2P ring channels at
    /// the `[p2p]` rate).
    pub fn all_reduce(&self, bytes: f64) -> Choice {
        let mut best = Choice { algo: Algo::Ring, proto: Proto::Simple, us: f64::INFINITY, latency_us: 0.0 };
        for algo in [Algo::Tree, Algo::Ring] {
            for proto in [Proto::Ll, Proto::Ll128, Proto::Simple] {
                if let Some((us, lat)) = self.all_reduce_us(algo, proto, bytes, false) {
                    if us < best.us {
                        best = Choice { algo, proto, us, latency_us: lat };
                    }
                }
            }
        }
        if best.us.is_finite() {
            if let Some((us, lat)) = self.all_reduce_us(best.algo, best.proto, bytes, true) {
                best.us = us;
                best.latency_us = lat;
            }
        }
        best
    }

    /// One send of `bytes` to one peer, timed on the sender, µs.
    pub fn send_recv(&self, bytes: f64) -> Choice {
        let (bw, hw) = if self.nodes > 1 {
            (self.links.nic_gbs, Hw::Net)
        } else {
            (self.links.intra_gbs, self.links.intra_hw)
        };
        let proto = if bytes <= P2P_LL_THRESHOLD { Proto::Ll } else { Proto::Simple };
        let lat = BASE_LAT[Algo::Ring as usize][proto as usize] + HW_LAT[hw as usize][Algo::Ring as usize][proto as usize];
        let staged = if self.nodes > 1 { self.socket() } else { self.shm() };
        if staged {
            // The sender's CTAs write into host-memory buffers (fill); the proxy's TCP
            // streams or the receiver's reads drain them. The sender returns once its
            // last byte sits in a buffer: the window of chunks in flight is free of the
            // drain, not of the fill.
            let (channels, path, window) = if self.nodes > 1 {
                (NCHANNELS_PER_NET_PEER, self.links.nic_gbs, NCHANNELS_PER_NET_PEER * P2P_NET_CHUNKSIZE * NCCL_STEPS)
            } else {
                (SHM_CHANNELS, self.links.intra_gbs, SHM_CHANNELS * P2P_NET_CHUNKSIZE * NCCL_STEPS)
            };
            let fill = channels * self.staged_channel_gbs;
            // Across nodes the proxy threads' TCP streams drain the buffers (no faster
            // than they fill in steady state; over Ethernet at the fitted stream rate);
            // inside a node the receiver's channels read them back at the fill rate.
            let drain = if self.nodes > 1 {
                path.min(channels * SOCKETS_PER_CONNECTION * self.tcp_stream_gbs).min(fill)
            } else {
                path.min(fill)
            };
            let us = match proto {
                Proto::Simple => (bytes / fill).max((bytes - window).max(0.0) / drain) / 1000.0,
                _ => bytes / (1000.0 * drain * P2P_LL_EFFICIENCY),
            };
            return Choice { algo: Algo::Ring, proto, us: lat + us, latency_us: lat };
        }
        let (moved, bw) = match proto {
            Proto::Simple => ((bytes - NCCL_BUFFSIZE).max(0.0), bw),
            _ => (bytes, bw * P2P_LL_EFFICIENCY),
        };
        Choice { algo: Algo::Ring, proto, us: lat + moved / (1000.0 * bw), latency_us: lat }
    }
}

/// Host time of one eager collective call, µs: the floor of a measured all-reduce in a
/// loop (see the module notes). The eager-call and library-call costs of
/// `kernels/launch.toml`.
pub fn host_call_us(gpu: &Gpu, templates: &Templates) -> f64 {
    templates.launch.host_us(&gpu.profile.vendor, "gemm")
}

/// The setup of one collective op on a node.
pub fn setup(gpu: &Gpu, node: &NodeTopology, op: &Op, rates: &Topologies) -> Result<Setup> {
    let (gpus, nodes, gpn) = match *op {
        Op::AllReduce { gpus, nodes, gpus_per_node, .. } | Op::SendRecv { gpus, nodes, gpus_per_node, .. } => {
            (gpus, nodes.max(1), gpus_per_node.max(1))
        }
        _ => unreachable!("collective::setup on a non-collective op"),
    };
    let what = || format!("{} over {gpus} GPUs ({nodes} nodes × {gpn})", op.name());
    if gpn > node.gpus_per_node as u64 {
        return Err(Error::Unsupported {
            gpu: gpu.key().to_string(),
            what: what(),
            why: format!("{} has {} GPUs per node", node.description, node.gpus_per_node),
        });
    }
    if nodes > 1 && (node.nics_per_node == 0 || node.nic_gbps <= 0.0) {
        return Err(Error::Unsupported { gpu: gpu.key().to_string(), what: what(), why: format!("{} has no network", node.description) });
    }
    Ok(Setup {
        ranks: gpus,
        nodes,
        gpus_per_node: gpn,
        links: links(gpu, node, gpn)?,
        compute_capability: compute_capability(gpu),
        cpu: node.cpu_vendor,
        gpudirect_rdma: node.gpudirect_rdma && node.net_transport() == NetTransport::Ib,
        net_transport: node.net_transport(),
        intra_transport: node.intra_transport,
        staged_channel_gbs: rates.staged.channel_gbs,
        p2p_channel_gbs: rates.p2p.channel_gbs,
        tcp_stream_gbs: if node.net_transport() == NetTransport::Socket && node.network == Network::Ethernet {
            rates.ethernet_stream.channel_gbs
        } else {
            f64::INFINITY
        },
    })
}

/// GPU time of one collective on the recorded rank. `node_type` names a table of
/// `kernels/topologies.toml`; `None` derives the node from the GPU profile.
pub fn estimate(gpu: &Gpu, templates: &Templates, op: &Op, _dtype: Dtype, node_type: Option<&str>) -> Result<KernelEstimate> {
    let (bytes, gpus, gpn, all_reduce) = match *op {
        Op::AllReduce { bytes, gpus, gpus_per_node, .. } => (bytes as f64, gpus, gpus_per_node, true),
        Op::SendRecv { bytes, gpus, gpus_per_node, .. } => (bytes as f64, gpus, gpus_per_node, false),
        _ => unreachable!("collective::estimate on a non-collective op"),
    };
    let node = topology(gpu, templates, node_type, gpn)?;
    let s = setup(gpu, &node, op, &templates.topologies)?;
    let n = gpus as f64;
    let mut est = KernelEstimate {
        kernel_ms: 0.0,
        bound: Bound::Latency,
        tile: None,
        ctas: 1,
        waves: 1,
        clock_mhz: gpu.profile.compute.boost_clock_mhz,
        bytes: 0.0,
        flops: 0.0,
        launches: 1,
    };
    if gpus < 2 {
        // NCCL returns at once for one rank.
        est.tile = Some("none".into());
        return Ok(est);
    }
    let (c, volume) = if all_reduce {
        (s.all_reduce(bytes), 2.0 * (n - 1.0) / n * bytes)
    } else {
        (s.send_recv(bytes), bytes)
    };
    let prefix = if all_reduce { c.algo.name() } else { "p2p" };
    est.tile = Some(format!("{prefix}/{}", c.proto.name()));
    est.bytes = volume;
    est.kernel_ms = c.us / 1000.0;
    est.bound = if c.us - c.latency_us > c.latency_us { Bound::Network } else { Bound::Latency };
    if all_reduce {
        let floor = host_call_us(gpu, templates);
        if floor > c.us {
            est.kernel_ms = floor / 1000.0;
            est.bound = Bound::Launch;
        }
    }
    Ok(est)
}

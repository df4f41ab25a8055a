//! NCCL collectives: physical behaviour on the node topologies of kernels/topologies.toml,
//! and accuracy against vidur's measurements when ../shared/traces is present.

use phantom_gpu::hw::Registry;
use phantom_gpu::kernel::collective::{IntraTransport, NetTransport, Topologies};
use phantom_gpu::kernel::{self, Context, Dtype, Op, Prediction, Timing};
use phantom_gpu::trace::canonical::{TraceFile, TraceKind};
use phantom_gpu::validate::{self, fit};
use std::path::Path;

fn reg() -> Registry {
    Registry::builtin().expect("built-in data loads")
}

fn all_reduce(bytes: u64, gpus: u64, nodes: u64) -> Op {
    Op::AllReduce { bytes, gpus, nodes, gpus_per_node: gpus.div_ceil(nodes) }
}

fn send_recv(bytes: u64, nodes: u64) -> Op {
    Op::SendRecv { bytes, gpus: 2, nodes, gpus_per_node: 2 / nodes }
}

fn predict(reg: &Registry, gpu: &str, op: &Op, node_type: Option<&str>) -> phantom_gpu::Result<Prediction> {
    let g = reg.gpu(gpu).unwrap();
    kernel::predict_on(g, &reg.templates, op, Dtype::Fp16, Context::for_timing(Timing::Kernel), node_type)
}

fn ms(reg: &Registry, gpu: &str, op: &Op, node_type: Option<&str>) -> f64 {
    predict(reg, gpu, op, node_type).unwrap_or_else(|e| panic!("{gpu} {op:?} on {node_type:?}: {e}")).predicted_ms
}

const SETUPS: &[(&str, Option<&str>)] = &[
    ("a100-sxm4-80gb", Some("a100_dgx")),
    ("a100-pcie-80gb", Some("a100_pairwise_nvlink")),
    ("a40", Some("a40_pairwise_nvlink")),
    ("h100-sxm5-80gb", Some("h100_dgx")),
    ("a100-sxm4-80gb", None),
    ("a100-pcie-80gb", None),
    ("t4", None),
];

#[test]
fn all_reduce_time_grows_with_bytes() {
    let reg = reg();
    for &(gpu, node) in SETUPS {
        let gpn: u64 = if node == Some("a100_pairwise_nvlink") { 4 } else { 8 };
        for (gpus, nodes) in [(2, 1), (gpn, 1), (2, 2), (2 * gpn, 2)] {
            // NCCL picks its algorithm on the links its topology sees; over the socket
            // transport the wire is slower than that view, so where NCCL switches the
            // time can step down, as measured (vidur a100_dgx, 4 GPUs on 2 nodes:
            // 7.88 MiB in 1.94 ms, 8.25 MiB in 1.21 ms when NCCL turns to the tree).
            // The same holds through shared host memory (SHM). Elsewhere the time never
            // falls; on these nodes never by more than that.
            let topo = node.map(|n| reg.templates.topologies.get(n).unwrap());
            let staged = topo.is_some_and(|t| {
                (nodes > 1 && t.net_transport() == NetTransport::Socket) || (gpus > 1 && nodes == 1 && t.intra_transport == IntraTransport::Shm)
            });
            let slack = if staged { 0.5 } else { 1.0 };
            let mut last = 0.0;
            let mut bytes = 2048u64;
            while bytes <= 1 << 30 {
                let t = ms(&reg, gpu, &all_reduce(bytes, gpus, nodes), node);
                assert!(t.is_finite() && t > 0.0);
                assert!(t >= last * slack, "{gpu} {node:?} {gpus} GPUs/{nodes} nodes: {bytes} B takes {t} ms < {last} ms for half as much");
                last = t;
                bytes *= 2;
            }
            let big = ms(&reg, gpu, &all_reduce(1 << 30, gpus, nodes), node);
            let small = ms(&reg, gpu, &all_reduce(1 << 20, gpus, nodes), node);
            assert!(big > 10.0 * small, "{gpu} {node:?}: 1 GiB ({big} ms) not bandwidth-bound against 1 MiB ({small} ms)");
        }
    }
}

#[test]
fn all_reduce_time_grows_with_gpus_on_one_node() {
    let reg = reg();
    for &(gpu, node) in SETUPS {
        let max = if node == Some("a100_pairwise_nvlink") { 4 } else { 8 };
        for bytes in [64u64 << 10, 16 << 20, 256 << 20] {
            let mut last = 0.0;
            for gpus in (2..=max).step_by(2) {
                let t = ms(&reg, gpu, &all_reduce(bytes, gpus, 1), node);
                assert!(t >= last, "{gpu} {node:?}: {gpus} GPUs take {t} ms < {last} ms with fewer, {bytes} B");
                last = t;
            }
        }
    }
}

#[test]
fn crossing_nodes_is_slower_than_staying_in_a_node_for_large_buffers() {
    let reg = reg();
    for &(gpu, node) in SETUPS {
        let gpn: u64 = if node == Some("a100_pairwise_nvlink") { 4 } else { 8 };
        for bytes in [64u64 << 20, 512 << 20] {
            let inside = ms(&reg, gpu, &all_reduce(bytes, gpn, 1), node);
            let across = ms(&reg, gpu, &all_reduce(bytes, gpn, 2), node);
            assert!(across > inside, "{gpu} {node:?}: {gpn} GPUs on 2 nodes ({across} ms) not slower than on 1 ({inside} ms), {bytes} B");
            let p2p_inside = ms(&reg, gpu, &send_recv(bytes, 1), node);
            let p2p_across = ms(&reg, gpu, &send_recv(bytes, 2), node);
            // GPUDirect traffic crosses the GPU's own PCIe link, so on a PCIe-only node
            // the network is never faster than a peer inside the node; over sockets on
            // Ethernet (a40_pairwise_nvlink) the TCP streams drain slower than one SHM
            // channel.
            assert!(p2p_across >= p2p_inside * 0.99, "{gpu} {node:?}: send_recv across nodes {p2p_across} ms < inside {p2p_inside} ms");
        }
    }
}

#[test]
fn nvlink_nodes_beat_pcie_nodes_and_bus_bandwidth_stays_below_the_link() {
    let reg = reg();
    let op = all_reduce(256 << 20, 4, 1);
    // The same A100 PCIe card: a ring over 4 bridged cards leaves each pair over PCIe;
    // two bridged cards stay on NVLink.
    let pair = ms(&reg, "a100-pcie-80gb", &all_reduce(256 << 20, 2, 1), Some("a100_pairwise_nvlink"));
    let pcie_pair = ms(&reg, "a100-pcie-80gb", &all_reduce(256 << 20, 2, 1), None);
    assert!(pair * 5.0 < pcie_pair, "NVLink pair {pair} ms vs PCIe pair {pcie_pair} ms");
    let dgx = ms(&reg, "a100-sxm4-80gb", &op, Some("a100_dgx"));
    let four_pcie = ms(&reg, "a100-pcie-80gb", &op, Some("a100_pairwise_nvlink"));
    assert!(dgx * 5.0 < four_pcie, "NVSwitch {dgx} ms vs pairs+PCIe {four_pcie} ms");
    for &(gpu, node) in SETUPS {
        let g = reg.gpu(gpu).unwrap();
        let p = predict(&reg, gpu, &op, node).unwrap();
        let link = g.profile.interconnect.nvlink_bandwidth_gbs_per_direction.unwrap_or(0.0).max(64.0);
        assert!(p.gbs <= link, "{gpu} {node:?}: bus bandwidth {} GB/s above its fastest link", p.gbs);
        assert!(p.tile.as_deref().is_some_and(|t| t.starts_with("ring/") || t.starts_with("tree/")), "{:?}", p.tile);
    }
}

#[test]
fn unknown_node_type_is_an_error_that_names_the_known_ones() {
    let reg = reg();
    let op = all_reduce(1 << 20, 8, 1);
    let err = predict(&reg, "a100-sxm4-80gb", &op, Some("a100_dgz")).unwrap_err().to_string();
    assert!(err.contains("unknown node_type 'a100_dgz'"), "{err}");
    assert!(err.contains("a100_dgx") && err.contains("a40_pairwise_nvlink"), "{err}");
    assert!(err.contains("did you mean: a100_dgx"), "{err}");
    // An empty tag is no node type: the node comes from the GPU profile.
    assert_eq!(ms(&reg, "a100-sxm4-80gb", &op, Some("")), ms(&reg, "a100-sxm4-80gb", &op, None));
    // A node type cannot host more GPUs per node than it has.
    let err = predict(&reg, "a100-pcie-80gb", &op, Some("a100_pairwise_nvlink")).unwrap_err().to_string();
    assert!(err.contains("4 GPUs per node"), "{err}");
}

#[test]
fn without_a_node_type_sxm_boards_get_nvswitch_and_pcie_boards_get_pcie() {
    let reg = reg();
    let op = all_reduce(256 << 20, 8, 1);
    let sxm = ms(&reg, "a100-sxm4-80gb", &op, None);
    let dgx = ms(&reg, "a100-sxm4-80gb", &op, Some("a100_dgx"));
    assert!((sxm / dgx - 1.0).abs() < 1e-9, "default SXM node {sxm} ms vs DGX {dgx} ms");
    let pcie = ms(&reg, "a100-pcie-80gb", &op, None);
    // NCCL counts PCIe Gen4 x16 as 24 GB/s: 2·7/8·256 MiB / 24 GB/s ≈ 19.6 ms.
    assert!((pcie / 19.57 - 1.0).abs() < 0.05, "PCIe ring {pcie} ms");
}

#[test]
fn the_socket_transport_is_slower_than_infiniband_at_large_sizes_and_shm_slower_than_p2p() {
    let reg = reg();
    let g = reg.gpu("a100-sxm4-80gb").unwrap();
    let dgx = reg.templates.topologies.get("a100_dgx").unwrap().clone();
    assert_eq!(dgx.net_transport(), NetTransport::Socket, "vidur's a100_dgx runs are modelled on sockets");
    let mut ib = dgx.clone();
    ib.net_transport = Some(NetTransport::Ib);
    ib.gpudirect_rdma = true;
    let mut topo = reg.templates.clone();
    topo.topologies.node.insert("dgx_ib".into(), ib);
    let time = |op: &Op, node: &str| {
        kernel::predict_on(g, &topo, op, Dtype::Fp16, Context::for_timing(Timing::Kernel), Some(node)).unwrap().predicted_ms
    };
    for bytes in [64u64 << 20, 512 << 20] {
        for (gpus, nodes) in [(2, 2), (8, 2), (16, 2)] {
            let op = all_reduce(bytes, gpus, nodes);
            let (sock, fast) = (time(&op, "a100_dgx"), time(&op, "dgx_ib"));
            // Sockets: 2 channels of ~4 GB/s through host memory; IB: one HDR port
            // (~23 GB/s as NCCL counts it) at the least.
            assert!(sock > 2.5 * fast, "{gpus} GPUs/{nodes} nodes, {bytes} B: socket {sock} ms vs IB {fast} ms");
        }
        let op = send_recv(bytes, 2);
        let (sock, fast) = (time(&op, "a100_dgx"), time(&op, "dgx_ib"));
        assert!(sock > 2.0 * fast, "send_recv {bytes} B: socket {sock} ms vs IB {fast} ms");
        // The socket's rate is its channels through host memory, whatever the NIC: two
        // channels per network peer at the fitted staged rate.
        let gbs = bytes as f64 / (sock * 1e6);
        let two = 2.0 * reg.templates.topologies.staged.channel_gbs;
        assert!((gbs / two - 1.0).abs() < 0.05, "send_recv over sockets at {gbs} GB/s, 2 channels give {two}");
        // Inside one node nothing changes: the transport is P2P over NVSwitch.
        let inside = all_reduce(bytes, 8, 1);
        assert_eq!(time(&inside, "a100_dgx"), time(&inside, "dgx_ib"));
    }
    // SHM through host memory against P2P over the same bridge.
    let a40 = reg.gpu("a40").unwrap();
    let mut p2p = reg.templates.topologies.get("a40_pairwise_nvlink").unwrap().clone();
    assert_eq!(p2p.intra_transport, IntraTransport::Shm);
    p2p.intra_transport = IntraTransport::P2p;
    topo.topologies.node.insert("a40_p2p".into(), p2p);
    let op = send_recv(64 << 20, 1);
    let t = |node: &str| kernel::predict_on(a40, &topo, &op, Dtype::Fp16, Context::for_timing(Timing::Kernel), Some(node)).unwrap().predicted_ms;
    assert!(t("a40_pairwise_nvlink") > 5.0 * t("a40_p2p"), "SHM {} ms vs P2P {} ms", t("a40_pairwise_nvlink"), t("a40_p2p"));
}

#[test]
fn a_bad_transport_in_a_topology_file_is_a_clear_error() {
    let base = |extra: &str| {
        format!(
            "[node.x]\ndescription = \"x\"\ngpus_per_node = 8\nintra = \"nvswitch\"\nnics_per_node = 8\nnic_gbps = 200.0\nnetwork = \"infiniband\"\n{extra}"
        )
    };
    let t = Topologies::parse("my_topologies.toml", &base("net_transport = \"socket\"\n")).unwrap();
    assert_eq!(t.node["x"].net_transport(), NetTransport::Socket);
    assert_eq!(Topologies::parse("t.toml", &base("")).unwrap().node["x"].net_transport(), NetTransport::Ib);
    let err = Topologies::parse("my_topologies.toml", &base("net_transport = \"tcp\"\n")).unwrap_err().to_string();
    assert!(err.contains("my_topologies.toml") && err.contains("tcp") && err.contains("ib") && err.contains("socket"), "{err}");
    let err = Topologies::parse("t.toml", &base("intra_transport = \"nvlink\"\n")).unwrap_err().to_string();
    assert!(err.contains("nvlink") && err.contains("p2p") && err.contains("shm"), "{err}");
    let err = Topologies::parse("t.toml", &base("net_transport = \"socket\"\ngpudirect_rdma = true\n")).unwrap_err().to_string();
    assert!(err.contains("node.x") && err.contains("socket") && err.contains("gpudirect_rdma"), "{err}");
    let err = Topologies::parse("t.toml", "[staged]\nchannel_gbs = -1.0\n").unwrap_err().to_string();
    assert!(err.contains("channel_gbs"), "{err}");
    let err = Topologies::parse("t.toml", "[p2p]\nchannel_gbs = 0.0\n").unwrap_err().to_string();
    assert!(err.contains("[p2p] channel_gbs") && err.contains("positive"), "{err}");
    let err = Topologies::parse("t.toml", "[p2p]\nchannel_gbs = \"fast\"\n").unwrap_err().to_string();
    assert!(err.contains("t.toml"), "{err}");
}

#[test]
fn p2p_rings_run_at_their_channels_rate_up_to_nccls_link_figure() {
    use phantom_gpu::kernel::collective::{ring_channels, Hw};
    // NCCL's ring channels: one per NVLink link from its search, duplicated; at most 16
    // searched. 12 NVLink 3 links (A100 SXM4, A100 PCIe bridged pair) give 24, 18 NVLink 4
    // links (H100 SXM) 32; PCIe 4.
    assert_eq!(ring_channels(Hw::NvLink, 12.0), 24.0);
    assert_eq!(ring_channels(Hw::NvLink, 18.0), 32.0);
    assert_eq!(ring_channels(Hw::Pci, 0.0), 4.0);
    let reg = reg();
    let rate = reg.templates.topologies.p2p.channel_gbs;
    let bus = |gpu: &str, gpus: u64, node: &str| {
        let bytes = 1u64 << 30;
        let t = ms(&reg, gpu, &all_reduce(bytes, gpus, 1), Some(node));
        2.0 * (gpus as f64 - 1.0) / gpus as f64 * bytes as f64 / (t * 1e6)
    };
    // Large buffers: Simple protocol, latency negligible; the bus bandwidth is the
    // channels' rate where that is below NCCL's figure (A100 NVLink: 12 x 20 = 240 GB/s).
    for (gpu, gpus, node, channels, nccl) in [
        ("a100-pcie-80gb", 2, "a100_pairwise_nvlink", 24.0, 240.0),
        ("a100-sxm4-80gb", 8, "a100_dgx", 24.0, 240.0),
        ("h100-sxm5-80gb", 8, "h100_dgx", 32.0, 18.0 * 20.6),
    ] {
        let want = (channels * rate).min(nccl);
        let got = bus(gpu, gpus, node);
        assert!((got / want - 1.0).abs() < 0.03, "{gpu} {node}: bus {got} GB/s, channels give {want}");
    }
    // A PCIe ring is held to NCCL's PCIe figure, not to its channels.
    let pcie = bus("a100-pcie-80gb", 4, "a100_pairwise_nvlink");
    assert!((pcie / 24.0 - 1.0).abs() < 0.03, "PCIe ring bus {pcie} GB/s");
}

// ---------------------------------------------------------------------------------------
// Against vidur's measurements
// ---------------------------------------------------------------------------------------

/// Median APE (%) of all_reduce report rows, and of those matching `setup`.
fn vidur_median_ape(op: &str, keep: impl Fn(&str, &str) -> bool) -> Option<(usize, f64)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/vidur.collectives.csv");
    if !path.exists() {
        eprintln!("skipping: {} not found (the real traces live beside the checkout)", path.display());
        return None;
    }
    let reg = reg();
    let f = TraceFile::read(&path).unwrap();
    assert_eq!(f.kind, TraceKind::Kernels);
    let rows = validate::replay_kernels(&reg, &f, None, &|_| {});
    let mut errs = vec![];
    for ((rec, r), &line) in f.rows.iter().zip(&rows).zip(&f.lines) {
        let k = f.kernel_row(rec);
        if k.op != op || fit::is_fit_line(line) || !keep(k.shape, k.tags) {
            continue;
        }
        let (Some(p), Some(m)) = (r.predicted_ms, k.measured_ms) else {
            panic!("line {line}: no prediction ({})", r.status);
        };
        errs.push(((p - m) / m * 100.0).abs());
    }
    errs.sort_by(f64::total_cmp);
    Some((errs.len(), validate::metrics::percentile(&errs, 0.5)))
}

#[test]
fn vidur_all_reduce_median_ape_does_not_regress() {
    // 33.4 % with NCCL's model on the documented hardware; 22.2 % with the transports the
    // runs used (kernels/topologies.toml: sockets across nodes, SHM on the A40 node);
    // 12.9 % with P2P ring channels at the fitted [p2p] rate.
    let Some((n, ape)) = vidur_median_ape("all_reduce", |_, _| true) else { return };
    eprintln!("vidur all_reduce: {n} report rows, median APE {ape:.1} %");
    assert!(n > 10_000, "{n} rows");
    assert!(ape <= 14.0, "median APE {ape:.1} % (was 12.9 %)");
    // The bridged A100 PCIe pair, NVLink only: 22.9 % before the channel rate, 6.2 % with.
    let Some((n, ape)) = vidur_median_ape("all_reduce", |shape, tags| {
        tags.contains("node_type=a100_pairwise_nvlink") && shape.contains("gpus=2;")
    }) else {
        return;
    };
    assert!(n > 2000 && ape <= 8.0, "a100_pairwise_nvlink 2 GPUs: {n} rows, median APE {ape:.1} %");
}

#[test]
fn vidur_send_recv_median_ape_does_not_regress() {
    // 79.5 % with NCCL over the documented hardware, 19.5 % with the runs' transports,
    // 8.8 % with the TCP streams of the Ethernet nodes draining at the fitted
    // [ethernet_stream] rate.
    let Some((n, ape)) = vidur_median_ape("send_recv", |_, _| true) else { return };
    eprintln!("vidur send_recv: {n} report rows, median APE {ape:.1} %");
    assert!(n > 5000, "{n} rows");
    assert!(ape <= 10.0, "median APE {ape:.1} % (was 8.8 %)");
    // Across 2 Ethernet VMs over sockets: 7.6 GB/s while the buffers in flight fill,
    // then ~2.2 GB/s, the TCP streams (65.8 % and 63.3 % before the stream rate).
    for (node, limit) in [("a100_pairwise_nvlink", 16.0), ("a40_pairwise_nvlink", 14.0)] {
        let Some((n, ape)) = vidur_median_ape("send_recv", |shape, tags| tags.contains(&format!("node_type={node}")) && shape.contains("nodes=2;")) else {
            return;
        };
        assert!(n > 800 && ape <= limit, "{node} across nodes: {n} rows, median APE {ape:.1} %");
    }
    // Across 2 DGX nodes over sockets: the flat ~7.8 GB/s is two staged channels.
    let Some((n, ape)) = vidur_median_ape("send_recv", |shape, tags| tags.contains("node_type=a100_dgx") && shape.contains("nodes=2;")) else {
        return;
    };
    assert!(n > 800 && ape <= 12.0, "a100_dgx across nodes: {n} rows, median APE {ape:.1} %");
}

#[test]
fn vidur_pcie_ring_is_within_five_percent() {
    // 4 bridged A100 PCIe cards: the ring leaves each pair over PCIe, which NCCL counts as
    // 24 GB/s. Nothing about this node is unknown, and the model lands at 1.8 %.
    let Some((n, ape)) = vidur_median_ape("all_reduce", |shape, tags| {
        tags.contains("node_type=a100_pairwise_nvlink") && shape.contains("gpus=4;")
    }) else {
        return;
    };
    eprintln!("vidur all_reduce a100_pairwise_nvlink 4 GPUs: {n} report rows, median APE {ape:.1} %");
    assert!(n > 2000, "{n} rows");
    assert!(ape <= 5.0, "median APE {ape:.1} %");
}

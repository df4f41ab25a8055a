//! Discrete-event scheduler: runs a kernel DAG on one GPU. The host issues kernels in
//! program order, paying each framework call's dispatch cost; a kernel starts once the
//! host has launched it, its stream is free and its inputs are ready. The step ends when
//! the last kernel does.
//!
//! Invariant: kernel times come from `crate::kernel` (one estimate per distinct (op,
//! dtype) of the DAG, so repeated layers cost one estimate); the scheduler only places
//! them in time.

use crate::error::Result;
use crate::hw::{Gpu, Templates};
use crate::kernel::{self, KernelEstimate};
use crate::lower::{Execution, KernelDag, Phase};
use serde::Serialize;
use std::collections::BTreeMap;

/// One kernel placed on the timeline (times in µs from the step's start).
#[derive(Debug, Clone, Serialize)]
pub struct Placed {
    pub name: String,
    pub category: &'static str,
    pub phase: Phase,
    pub stream: u32,
    /// When the host finished launching it.
    pub issued_us: f64,
    pub start_us: f64,
    pub end_us: f64,
    pub bound: &'static str,
    pub tile: Option<String>,
    /// The SM clock the kernel runs at (the power model's sustained clock for its work).
    pub clock_mhz: f64,
    pub flops: f64,
    pub bytes: f64,
}

/// Time spent per kernel category.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CategoryTotal {
    pub kernels: u64,
    pub ms: f64,
    pub flops: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub gpu: String,
    pub kernels: Vec<Placed>,
    /// Wall time of the step, ms.
    pub step_ms: f64,
    /// Sum of kernel durations, ms.
    pub gpu_busy_ms: f64,
    /// Host time to issue everything, ms.
    pub host_ms: f64,
    pub by_category: BTreeMap<&'static str, CategoryTotal>,
    pub by_phase: BTreeMap<&'static str, f64>,
    /// Mean SM clock over the busy time, MHz.
    pub mean_clock_mhz: f64,
}

/// Host cost of issuing one kernel, µs.
fn host_us(gpu: &Gpu, templates: &Templates, exec: Execution, call: Option<&'static str>, launches: u32) -> f64 {
    let l = &templates.launch;
    let extra = launches.saturating_sub(1) as f64 * l.extra_launch_us;
    match (exec, call) {
        (Execution::CudaGraphs, _) => 0.0,
        // Inductor's generated wrapper launches kernels directly: no dispatcher or module
        // overhead, just the launch.
        (Execution::Compiled, _) => l.extra_launch_us * launches.max(1) as f64,
        (Execution::Eager, Some(call)) => l.host_us(&gpu.profile.vendor, call) + extra,
        (Execution::Eager, None) => l.extra_launch_us + extra,
    }
}

/// Schedules the DAG on `gpu`.
/// `keep_kernels` records every placed kernel (for timelines); summaries are always kept.
pub fn run(gpu: &Gpu, templates: &Templates, dag: &KernelDag, keep_kernels: bool) -> Result<Timeline> {
    // Inside a model step other layers' weights evict L2 between calls: cold estimates.
    let estimates: Vec<KernelEstimate> = dag.unique.iter().map(|(op, dtype)| kernel::estimate(gpu, templates, op, *dtype, false)).collect::<Result<_>>()?;
    let exec = dag.options.execution;
    let n = dag.len();
    let mut end = vec![0.0f64; n];
    let mut stream_free: BTreeMap<u32, f64> = BTreeMap::new();
    // A captured graph is launched once.
    let mut host = if exec == Execution::CudaGraphs { templates.launch.eager_op_us } else { 0.0 };
    let mut placed = Vec::with_capacity(if keep_kernels { n } else { 0 });
    let mut by_category: BTreeMap<&'static str, CategoryTotal> = BTreeMap::new();
    let mut by_phase: BTreeMap<&'static str, f64> = BTreeMap::new();
    let (mut busy, mut clock_weighted) = (0.0, 0.0);
    // A repeated block is simulated once; when its last kernel is placed the rest of its
    // runs are added in steady state: each run takes the larger of its GPU time and its
    // host issue time.
    let mut block: Option<(usize, f64, f64)> = None; // (repeat index, host at start, GPU busy so far)
    for (idx, k) in dag.kernels() {
        let i = idx.index();
        let rep = dag.repeats.iter().position(|(r, _)| r.contains(&i));
        if let (Some(r), None) = (rep, block) {
            block = Some((r, host, busy));
        }
        let runs = rep.map_or(1, |r| dag.repeats[r].1) as f64;
        let est = &estimates[dag.unique_of[idx.index()]];
        host += host_us(gpu, templates, exec, k.host_call, est.launches);
        let ready = dag.dag.neighbors_directed(idx, petgraph::Direction::Incoming).map(|p| end[p.index()]).fold(0.0, f64::max);
        let free = stream_free.get(&k.stream).copied().unwrap_or(0.0);
        let start = host.max(ready).max(free);
        let dur = est.kernel_ms * 1000.0 * k.work;
        let finish = start + dur;
        end[i] = finish;
        stream_free.insert(k.stream, finish);
        busy += dur;
        clock_weighted += dur * est.clock_mhz * runs;
        let c = by_category.entry(k.category).or_default();
        c.kernels += runs as u64;
        c.ms += dur * runs / 1000.0;
        c.flops += est.flops * k.work * runs;
        *by_phase.entry(k.phase.name()).or_default() += dur * runs / 1000.0;
        if let Some((r, host0, busy0)) = block {
            let (range, times) = &dag.repeats[r];
            if i + 1 == range.end {
                let per_run = (busy - busy0).max(host - host0);
                let extra = per_run * (*times as f64 - 1.0);
                host += extra;
                busy += (busy - busy0) * (*times as f64 - 1.0);
                for v in stream_free.values_mut() {
                    *v += extra;
                }
                for e in &mut end[range.clone()] {
                    *e += extra;
                }
                block = None;
            }
        }
        if !keep_kernels {
            continue;
        }
        placed.push(Placed {
            name: k.name.clone(),
            category: k.category,
            phase: k.phase,
            stream: k.stream,
            issued_us: host,
            start_us: start,
            end_us: finish,
            bound: est.bound.name(),
            tile: est.tile.clone(),
            clock_mhz: est.clock_mhz,
            flops: est.flops * k.work,
            bytes: est.bytes * k.work,
        });
    }
    let step_us = end.iter().copied().fold(host, f64::max);
    Ok(Timeline {
        gpu: gpu.key().to_string(),
        kernels: placed,
        step_ms: step_us / 1000.0,
        gpu_busy_ms: busy / 1000.0,
        host_ms: host / 1000.0,
        by_category,
        by_phase,
        mean_clock_mhz: if busy > 0.0 { clock_weighted / busy } else { 0.0 },
    })
}

/// The timeline as Chrome-trace JSON (Perfetto and chrome://tracing open it): one track
/// for the host's launches, one per GPU stream.
pub fn chrome_trace(timelines: &[Timeline]) -> serde_json::Value {
    let mut events = Vec::new();
    for (pid, t) in timelines.iter().enumerate() {
        events.push(serde_json::json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": format!("{} (predicted)", t.gpu)}}));
        events.push(serde_json::json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "host launches"}}));
        let mut prev_clock = f64::NAN;
        let mut prev_issue = 0.0;
        for k in &t.kernels {
            if k.issued_us > prev_issue {
                events.push(serde_json::json!({"name": format!("launch {}", k.name), "cat": "host", "ph": "X", "pid": pid, "tid": 0, "ts": prev_issue, "dur": k.issued_us - prev_issue}));
            }
            prev_issue = k.issued_us;
            if k.clock_mhz != prev_clock {
                // A counter track: the SM clock over the step.
                events.push(serde_json::json!({"name": "SM clock (MHz)", "ph": "C", "pid": pid, "ts": k.start_us, "args": {"MHz": k.clock_mhz}}));
                prev_clock = k.clock_mhz;
            }
            events.push(serde_json::json!({
                "name": k.name, "cat": k.category, "ph": "X", "pid": pid, "tid": 1 + k.stream,
                "ts": k.start_us, "dur": (k.end_us - k.start_us).max(0.001),
                "args": {"phase": k.phase.name(), "bound": k.bound, "tile": k.tile, "clock_mhz": k.clock_mhz, "gflop": k.flops / 1e9, "mb": k.bytes / 1e6}
            }));
        }
    }
    serde_json::json!({"traceEvents": events, "displayTimeUnit": "ms"})
}

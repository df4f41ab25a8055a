//! Whole-model commands: list-models, load-model, benchmark, compare-models.

use crate::error::{Error, Result};
use crate::graph::transformer::Workload;
use crate::graph::{self, zoo, Graph};
use crate::hw::{Gpu, Registry};
use crate::lower::{AttentionImpl, Execution, Mode, Options, Precision};
use crate::report::{num, text, Format, Table};
use crate::run::{self, ModelRun};
use crate::sim::scheduler;
use serde_json::Value;
use std::path::PathBuf;

/// How to run a model, as given on the command line.
#[derive(Debug, Clone)]
pub struct RunArgs {
    pub seq_len: Option<u64>,
    pub past: u64,
    pub precision: String,
    pub mode: Mode,
    pub execution: Execution,
    pub attention: AttentionImpl,
    pub no_optimizer: bool,
}

impl RunArgs {
    fn options(&self) -> Result<Options> {
        Ok(Options {
            precision: Precision::parse(&self.precision)?,
            mode: self.mode,
            execution: self.execution,
            attention: self.attention,
            optimizer_step: !self.no_optimizer,
            flash_available: true,
        })
    }
    fn workload(&self, model: &str, batch: u64) -> Result<Workload> {
        if batch == 0 {
            return Err(Error::Usage("--batch-size must be at least 1".into()));
        }
        let seq_len = match self.seq_len {
            Some(0) => return Err(Error::Usage("--seq-len must be at least 1".into())),
            Some(s) => s,
            None => graph::default_seq_len(model).unwrap_or(512),
        };
        Ok(Workload { batch, seq_len, past: self.past })
    }
}

pub fn list_models(format: Format) -> Result<String> {
    let mut t = Table::new(&["name", "family", "params", "published_params", "default_seq_len", "aliases", "params_source"]);
    for m in zoo::models() {
        let g = m.build(Workload { batch: 1, seq_len: m.default_seq_len().min(16), past: 0 })?;
        t.push(vec![
            text(m.name),
            text(m.family),
            Value::from(g.params()),
            if m.published_params > 0 { Value::from(m.published_params) } else { Value::Null },
            Value::from(m.default_seq_len()),
            text(m.aliases.join(" ")),
            text(m.params_source),
        ]);
    }
    Ok(t.render(format))
}

/// Parameters, forward FLOPs and the op breakdown of one model at batch 1.
pub fn load_model(spec: &str, seq_len: Option<u64>, format: Format) -> Result<String> {
    let seq_len = seq_len.or_else(|| graph::default_seq_len(spec)).unwrap_or(128);
    let g = graph::load_model(spec, Workload { batch: 1, seq_len, past: 0 })?;
    for w in &g.warnings {
        eprintln!("warning: {w}");
    }
    let breakdown = g.op_breakdown();
    if format == Format::Json {
        let ops: serde_json::Map<String, Value> =
            breakdown.iter().map(|(k, (n, f))| (k.to_string(), serde_json::json!({"count": n, "flops": f}))).collect();
        let v = serde_json::json!({
            "name": g.name, "family": g.family, "params": g.params(), "flops": g.flops(),
            "nodes": g.nodes.len(), "seq_len": seq_len, "ops": ops, "warnings": g.warnings,
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut t = Table::new(&["op", "count", "gflops", "share"]);
    let total = g.flops().max(1.0);
    for (k, (n, f)) in &breakdown {
        t.push(vec![text(*k), Value::from(*n), num(f / 1e9), num(f / total)]);
    }
    let mut out = format!("{} ({}): {:.1} M parameters, {:.2} GFLOPs forward at batch 1, {} ops\n\n", g.name, g.family, g.params() as f64 / 1e6, g.flops() / 1e9, g.nodes.len());
    if format == Format::Csv {
        out.clear();
    }
    out += &t.render(format);
    Ok(out)
}

fn run_one(reg: &Registry, gpu: &Gpu, g: &Graph, wl: Workload, opts: Options, keep_kernels: bool) -> Result<ModelRun> {
    run::run_model(gpu, &reg.templates, g, wl.batch, wl.seq_len, opts, run::Keep { time_even_if_oom: false, kernels: keep_kernels })
}

fn run_row(r: &ModelRun) -> Vec<Value> {
    vec![
        text(&r.model),
        text(&r.gpu),
        Value::from(r.batch),
        Value::from(r.seq_len),
        text(&r.precision),
        r.latency_ms.map(num).unwrap_or(Value::Null),
        r.throughput_per_s.map(num).unwrap_or(Value::Null),
        num(r.memory_gb),
        num(r.gpu_memory_gb),
        text(if r.fits { "yes" } else { "OOM" }),
    ]
}

const RUN_HEADERS: &[&str] = &["model", "gpu", "batch", "seq_len", "precision", "latency_ms", "throughput_per_s", "memory_gb", "gpu_memory_gb", "fits"];

pub fn benchmark(reg: &Registry, model: &str, gpus: &[String], batch: u64, args: &RunArgs, timeline: Option<&PathBuf>, format: Format) -> Result<String> {
    let wl = args.workload(model, batch)?;
    let opts = args.options()?;
    let g = graph::load_model(model, wl)?;
    for w in &g.warnings {
        eprintln!("warning: {w}");
    }
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    let runs: Vec<ModelRun> = gpus.iter().map(|gpu| run_one(reg, gpu, &g, wl, opts, timeline.is_some())).collect::<Result<_>>()?;
    if let Some(path) = timeline {
        let tls: Vec<_> = runs.iter().filter_map(|r| r.timeline.clone()).collect();
        let json = serde_json::to_string(&scheduler::chrome_trace(&tls)).unwrap_or_default();
        std::fs::write(path, json).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        eprintln!("timeline written to {} (open it in https://ui.perfetto.dev)", path.display());
    }
    if format == Format::Json {
        let list: Vec<Value> = runs
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let (Some(tl), Some(obj)) = (&r.timeline, v.as_object_mut()) {
                    obj.remove("timeline");
                    obj.insert("breakdown".into(), serde_json::to_value(&tl.by_category).unwrap_or_default());
                    obj.insert("by_phase".into(), serde_json::to_value(&tl.by_phase).unwrap_or_default());
                    obj.insert("step_ms".into(), num(tl.step_ms));
                    obj.insert("gpu_busy_ms".into(), num(tl.gpu_busy_ms));
                    obj.insert("host_ms".into(), num(tl.host_ms));
                    obj.insert("mean_clock_mhz".into(), num(tl.mean_clock_mhz));
                }
                v
            })
            .collect();
        let v = if list.len() == 1 { list[0].clone() } else { Value::Array(list) };
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut t = Table::new(RUN_HEADERS);
    for r in &runs {
        t.push(run_row(r));
    }
    let mut out = t.render(format);
    if format == Format::Table {
        out += &format!(
            "\n{}: {:.1} M parameters, {:.1} GFLOPs per step; {:?} {:?}, {} kernels.\n",
            g.name,
            g.params() as f64 / 1e6,
            g.flops() / 1e9,
            opts.mode,
            opts.execution,
            runs.first().map(|r| r.kernels).unwrap_or(0)
        );
        for r in &runs {
            let m = &r.memory;
            out += &format!(
                "{}: memory {:.2} GiB = weights {:.2} + gradients {:.2} + optimizer {:.2} + activations {:.2} + KV cache {:.2} + workspace {:.2} + context {:.2} (+{:.0}% allocator)",
                r.gpu, m.total_gb, m.weights_gb, m.gradients_gb, m.optimizer_gb, m.activations_gb, m.kv_cache_gb, m.workspace_gb, m.context_gb, crate::lower::memory::ALLOCATOR_OVERHEAD * 100.0
            );
            out += if r.fits { "\n" } else { " — does not fit\n" };
        }
    }
    Ok(out)
}

pub fn compare_models(reg: &Registry, models: &[String], gpus: &[String], batches: &[u64], args: &RunArgs, format: Format) -> Result<String> {
    let opts = args.options()?;
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    // Build each (model, batch) graph once, then every GPU in parallel.
    let mut graphs = Vec::new();
    for m in models {
        for &b in batches {
            let wl = args.workload(m, b)?;
            graphs.push((wl, graph::load_model(m, wl)?));
        }
    }
    let runs = run::sweep(reg, &graphs, &gpus, opts)?;
    let mut t = Table::new(RUN_HEADERS);
    for r in &runs {
        t.push(run_row(r));
    }
    Ok(t.render(format))
}

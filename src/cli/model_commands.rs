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

/// Baseline name → (its APEs, ours on the same rows).
type BaselineApes = std::collections::BTreeMap<String, (Vec<f64>, Vec<f64>)>;

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
    pub parallel: crate::lower::Parallel,
}

impl RunArgs {
    pub(super) fn options(&self) -> Result<Options> {
        Ok(Options {
            precision: Precision::parse(&self.precision)?,
            mode: self.mode,
            execution: self.execution,
            attention: self.attention,
            optimizer_step: !self.no_optimizer,
            flash_available: true,
            parallel: self.parallel,
        })
    }
    /// One GPU's share of the step: the global batch over replicas and micro-batches.
    pub(super) fn workload(&self, model: &str, batch: u64) -> Result<Workload> {
        if batch == 0 {
            return Err(Error::Usage("--batch-size must be at least 1".into()));
        }
        let p = self.parallel;
        if p.dp == 0 || p.pp == 0 || p.micro_batches == 0 || p.gpus_per_node == 0 {
            return Err(Error::Usage("--dp, --pp, --micro-batches and --gpus-per-node must be at least 1".into()));
        }
        if !batch.is_multiple_of(p.dp * p.micro_batches) {
            return Err(Error::Usage(format!("--batch-size {batch} does not split into {} replicas × {} micro-batches", p.dp, p.micro_batches)));
        }
        let batch = batch / (p.dp * p.micro_batches);
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

pub(super) fn run_row(r: &ModelRun) -> Vec<Value> {
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

pub(super) const RUN_HEADERS: &[&str] = &["model", "gpu", "batch", "seq_len", "precision", "latency_ms", "throughput_per_s", "memory_gb", "gpu_memory_gb", "fits"];

pub fn benchmark(reg: &Registry, model: &str, gpus: &[String], batch: u64, args: &RunArgs, timeline: Option<&PathBuf>, format: Format) -> Result<String> {
    let wl = args.workload(model, batch)?;
    let opts = args.options()?;
    let g = graph::load_model_tp(model, wl, self_tp(args))?;
    for w in &g.warnings {
        eprintln!("warning: {w}");
    }
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    let runs: Vec<ModelRun> = gpus.iter().map(|gpu| run_one(reg, gpu, &g, wl, opts, timeline.is_some())).collect::<Result<_>>()?;
    if let Some(path) = timeline {
        let tls: Vec<_> = runs.iter().filter_map(|r| r.timeline.clone()).collect();
        let json = serde_json::to_string(&scheduler::chrome_trace(&tls)).unwrap_or_default();
        std::fs::write(path, json).map_err(|e| Error::Write { path: path.clone(), source: e })?;
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
        let out = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
        return fits_somewhere(out, &g.name, runs.iter().map(|r| (r.fits, r.gpu.as_str(), r.memory_gb, r.gpu_memory_gb)));
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
    fits_somewhere(out, &g.name, runs.iter().map(|r| (r.fits, r.gpu.as_str(), r.memory_gb, r.gpu_memory_gb)))
}

/// `out` if the model fits on at least one GPU (fits, GPU key, needed GiB, GPU GiB);
/// otherwise an error that still carries `out`, so the table is written before it.
pub(super) fn fits_somewhere<'a>(out: String, model: &str, runs: impl Iterator<Item = (bool, &'a str, f64, f64)>) -> Result<String> {
    let mut need = Vec::new();
    for (fits, gpu, need_gb, have_gb) in runs {
        if fits {
            return Ok(out);
        }
        need.push((gpu.to_string(), need_gb, have_gb));
    }
    if need.is_empty() {
        return Ok(out);
    }
    Err(Error::DoesNotFit { report: out, msg: crate::error::does_not_fit(model, &need) })
}

pub fn compare_models(reg: &Registry, models: &[String], gpus: &[String], batches: &[u64], args: &RunArgs, format: Format) -> Result<String> {
    let opts = args.options()?;
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    // Build each (model, batch) graph once, then every GPU in parallel.
    let mut graphs = Vec::new();
    for m in models {
        for &b in batches {
            let wl = args.workload(m, b)?;
            graphs.push((wl, graph::load_model_tp(m, wl, self_tp(args))?));
        }
    }
    let runs = run::sweep(reg, &graphs, &gpus, opts)?;
    let mut t = Table::new(RUN_HEADERS);
    for r in &runs {
        t.push(run_row(r));
    }
    Ok(t.render(format))
}

/// `validate --models`: whole-model rows against their measurements and the baselines'
/// predictions, and the per-op sums of the model-ops trace against the whole model.
pub fn validate_models(reg: &Registry, dir: &std::path::Path, gpu_filter: Option<&str>, format: Format) -> Result<String> {
    use crate::trace::canonical::{find_traces, tag, TraceFile, TraceKind};
    use crate::validate::metrics::{pct_error, percentile};
    use std::collections::BTreeMap;
    let mut rows_t = Table::new(&["source", "gpu", "model", "mode", "option", "batch", "seq_len", "measured_ms", "predicted_ms", "ape", "status", "neusight_ms", "roofline_ms"]);
    // (vendor, mode, option) → our APEs, and each baseline's APEs on the rows it predicted.
    let mut groups: BTreeMap<(String, String, String), (Vec<f64>, BaselineApes)> = BTreeMap::new();
    let mut fw_measured: BTreeMap<String, f64> = BTreeMap::new();
    for path in find_traces(dir)? {
        let file = TraceFile::read(&path)?;
        if file.kind != TraceKind::Models {
            continue;
        }
        let source = path.file_name().map(|n| n.to_string_lossy().replace(".csv", "")).unwrap_or_default();
        for s in crate::validate::models::score(reg, &file) {
            let r = &s.row;
            if gpu_filter.is_some_and(|g| reg.gpu(&r.gpu).map(|x| x.key() != g).unwrap_or(true)) {
                continue;
            }
            let base = |name: &str| s.baselines.iter().find(|(p, _)| p == name).map(|(_, v)| *v);
            let ape = match (s.predicted_ms, r.measured_ms) {
                (Some(p), Some(m)) => Some(pct_error(p, m).abs()),
                _ => None,
            };
            rows_t.push(vec![
                text(&source),
                text(&r.gpu),
                text(&r.model),
                text(&s.mode),
                text(&s.option),
                Value::from(r.batch),
                Value::from(r.seq_len),
                r.measured_ms.map(num).unwrap_or(Value::Null),
                s.predicted_ms.map(num).unwrap_or(Value::Null),
                ape.map(num).unwrap_or(Value::Null),
                text(&s.status),
                base("neusight").map(num).unwrap_or(Value::Null),
                base("roofline").map(num).unwrap_or(Value::Null),
            ]);
            let (Some(a), Some(m)) = (ape, r.measured_ms) else { continue };
            let vendor = reg.gpu(&r.gpu).map(|g| g.profile.vendor.clone()).unwrap_or_default();
            let e = groups.entry((vendor.clone(), s.mode.clone(), s.option.clone())).or_default();
            e.0.push(a);
            let all = groups.entry((vendor, "all".into(), "all".into())).or_default();
            all.0.push(a);
            for (pred, v) in &s.baselines {
                for key in [(s.mode.clone(), s.option.clone()), ("all".into(), "all".into())] {
                    let vendor = reg.gpu(&r.gpu).map(|g| g.profile.vendor.clone()).unwrap_or_default();
                    let g = groups.entry((vendor, key.0, key.1)).or_default();
                    let b = g.1.entry(pred.clone()).or_default();
                    b.0.push(pct_error(*v, m).abs());
                    b.1.push(a);
                }
            }
        }
        // Forward time of each measured model configuration, for the op-sum check.
        for rec in &file.rows {
            let f = |n: &str| file.model_field(rec, n).trim().to_string();
            let tags = file.column(rec, "tags").unwrap_or("");
            let fw = tag(tags, "fw_ms").and_then(|v| v.parse::<f64>().ok()).or_else(|| f("measured_ms").parse().ok());
            let (Some(fw), Some(cfg)) = (fw, tag(tags, "config")) else { continue };
            if f("option") != "eager" {
                continue;
            }
            let mode = if f("mode") == "training" { "train" } else { "inf" };
            fw_measured.insert(format!("{}|{}|{}|{}|{}", f("gpu"), cfg.trim_end_matches(".json"), mode, f("batch"), f("seq_len")), fw);
        }
    }
    let mut sum_t = Table::new(&["vendor", "mode", "option", "rows", "median_ape", "p90_ape", "baseline", "baseline_rows", "baseline_median_ape", "baseline_p90_ape", "ours_on_those_rows_median_ape"]);
    for ((vendor, mode, option), (ours, bl)) in &groups {
        let mut o = ours.clone();
        o.sort_by(f64::total_cmp);
        if bl.is_empty() {
            sum_t.push(vec![text(vendor), text(mode), text(option), Value::from(o.len()), num(percentile(&o, 0.5)), num(percentile(&o, 0.9)), Value::Null, Value::Null, Value::Null, Value::Null, Value::Null]);
        }
        for (pred, (b, mine)) in bl {
            let (mut b, mut mine) = (b.clone(), mine.clone());
            b.sort_by(f64::total_cmp);
            mine.sort_by(f64::total_cmp);
            sum_t.push(vec![
                text(vendor),
                text(mode),
                text(option),
                Value::from(o.len()),
                num(percentile(&o, 0.5)),
                num(percentile(&o, 0.9)),
                text(pred),
                Value::from(b.len()),
                num(percentile(&b, 0.5)),
                num(percentile(&b, 0.9)),
                num(percentile(&mine, 0.5)),
            ]);
        }
    }
    // Σ(op × repeat) of the model-ops trace: measured and ours, against the whole model.
    let mut ops_t = Table::new(&["gpu", "model", "mode", "batch", "seq_len", "ops", "sum_measured_ms", "sum_predicted_ms", "sum_ape", "model_forward_measured_ms", "sum_measured_over_model"]);
    for path in find_traces(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if !name.ends_with("model_ops.csv") {
            continue;
        }
        let file = TraceFile::read(&path)?;
        let replayed = crate::validate::replay_kernels(reg, &file, None, &|_| {});
        let mut sums: BTreeMap<String, (u64, f64, f64, bool)> = BTreeMap::new();
        for (rec, r) in file.rows.iter().zip(&replayed) {
            let k = file.kernel_row(rec);
            if gpu_filter.is_some_and(|g| reg.gpu(k.gpu).map(|x| x.key() != g).unwrap_or(true)) {
                continue;
            }
            let t = k.tags;
            let (Some(model), Some(mode), Some(batch), Some(seq)) = (tag(t, "model"), tag(t, "mode"), tag(t, "batch"), tag(t, "seq_len")) else { continue };
            let repeat: f64 = tag(t, "repeat").and_then(|v| v.parse().ok()).unwrap_or(1.0);
            let e = sums.entry(format!("{}|{model}|{mode}|{batch}|{seq}", k.gpu)).or_insert((0, 0.0, 0.0, true));
            e.0 += 1;
            e.1 += k.measured_ms.unwrap_or(0.0) * repeat;
            match r.predicted_ms {
                Some(p) => e.2 += p * repeat,
                None => e.3 = false,
            }
        }
        for (key, (n, meas, pred, complete)) in sums {
            let parts: Vec<&str> = key.split('|').collect();
            let whole = fw_measured.get(&key).copied();
            ops_t.push(vec![
                text(parts[0]),
                text(parts[1]),
                text(parts[2]),
                text(parts[3]),
                text(parts[4]),
                Value::from(n),
                num(meas),
                if complete { num(pred) } else { Value::Null },
                if complete { num(pct_error(pred, meas).abs()) } else { Value::Null },
                whole.map(num).unwrap_or(Value::Null),
                whole.map(|w| num(meas / w)).unwrap_or(Value::Null),
            ]);
        }
    }
    if format != Format::Table {
        return Ok(rows_t.render(format));
    }
    let mut out = String::from("Whole models, one row per measured step:\n");
    out += &rows_t.render(format);
    out += "\nSummary (APE %, every row scored; nothing is fitted on model rows). Baselines are scored on the rows they predicted, with ours on the same rows beside them:\n";
    out += &sum_t.render(format);
    out += "\nPer-op sums of the model-ops trace (one layer measured op by op, × repeat) against the whole model's forward time:\n";
    out += &ops_t.render(format);
    Ok(out)
}

fn self_tp(args: &RunArgs) -> u64 {
    args.parallel.tp
}

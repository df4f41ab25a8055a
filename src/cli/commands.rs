//! One function per command: call the library, build a `Table`, render it.

use crate::error::{Error, Result};
use crate::hw::{Gpu, Registry};
use crate::kernel::{self, Dtype, Op, Timing};
use crate::report::{num, text, Format, Table};
use crate::trace::canonical::{tag, TraceFile, TraceKind};
use crate::validate::{self, GroupKey};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Per (GPU, op) replay summary: rows, (predicted, measured) pairs, summed predicted and
/// measured time.
type ReplayGroup = (usize, Vec<(f64, f64)>, f64, f64);

fn opt(x: Option<f64>) -> Value {
    x.map(num).unwrap_or(Value::Null)
}

pub fn list_gpus(reg: &Registry, verbose: bool, format: Format) -> String {
    let mut headers = vec!["key", "name", "architecture", "chip", "memory_gb", "sms", "boost_mhz", "dram_gbs", "l2_mib", "fp32_tflops", "fp16_tensor_tflops", "tdp_w", "aliases"];
    if verbose {
        headers.extend(["smem_per_sm_kib", "max_threads_per_sm", "dram_measured_gbs", "nvlink_gbs", "sources"]);
    }
    let mut t = Table::new(&headers);
    for g in reg.gpus() {
        let p = &g.profile;
        let clk = p.compute.boost_clock_mhz * 1e6;
        let fp32 = g.rates.ffma_flop_per_clk * g.sms() * clk / 1e12;
        let fp16 = g.tensor_flop_per_clk("fp16").map(|r| r * g.sms() * clk / 1e12);
        let mut row = vec![
            text(&p.key),
            text(&p.name),
            text(&g.isa.name),
            text(&p.chip),
            num(p.memory.memory_gb),
            Value::from(p.compute.sm_count),
            num(p.compute.boost_clock_mhz),
            num(p.memory.dram_bandwidth_gbs),
            num(p.memory.l2_mib),
            num(fp32),
            opt(fp16),
            num(p.power.tdp_w),
            text(reg.aliases_of(&crate::hw::normalize(&p.key)).into_iter().filter(|a| !p.device_names.iter().any(|d| crate::hw::normalize(d) == *a)).collect::<Vec<_>>().join(" ")),
        ];
        if verbose {
            row.extend([
                num(p.memory.smem_per_sm_max_kib),
                Value::from(p.memory.max_threads_per_sm),
                opt(p.memory.dram_bandwidth_measured_gbs),
                opt(p.interconnect.nvlink_bandwidth_gbs_per_direction),
                text(p.sources.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(" | ")),
            ]);
        }
        t.push(row);
    }
    let mut out = t.render(format);
    if format == Format::Table {
        out += "\nPeak rates are the ISA's per-SM rates at boost clock; predictions use the modelled sustained clock.\n";
    }
    out
}

pub fn predict(reg: &Registry, op: &str, gpus: &[String], dtype: &str, shape: &str, timing: &str, format: Format) -> Result<String> {
    let op = Op::parse(op, shape)?;
    let dtype = Dtype::parse(dtype)?;
    let timing = Timing::parse(timing)?;
    let gpus: Vec<&Gpu> = gpus.iter().map(|g| reg.gpu(g)).collect::<Result<_>>()?;
    let mut t = Table::new(&["gpu", "op", "dtype", "predicted_ms", "bound", "tflops", "gbs", "tile", "ctas", "waves", "clock_mhz", "launches", "kernel_ms", "host_ms"]);
    for g in gpus {
        let p = kernel::predict(g, &reg.templates, &op, dtype, timing)?;
        t.push(vec![
            text(&p.gpu),
            text(&p.op),
            text(p.dtype.name()),
            num(p.predicted_ms),
            text(p.bound),
            num(p.tflops),
            num(p.gbs),
            p.tile.clone().map(text).unwrap_or(Value::Null),
            Value::from(p.ctas),
            Value::from(p.waves),
            num(p.clock_mhz),
            Value::from(p.launches),
            num(p.kernel_ms),
            num(p.host_ms),
        ]);
    }
    if format == Format::Json && t.rows.len() == 1 {
        // One kernel on one GPU: a single object.
        let list: Vec<Value> = serde_json::from_str(&t.render(Format::Json)).unwrap_or_default();
        return Ok(serde_json::to_string_pretty(&list[0]).unwrap_or_default() + "\n");
    }
    Ok(t.render(format))
}

pub fn gemm_candidates(reg: &Registry, op: &str, gpus: &[String], dtype: &str, shape: &str, timing: &str, format: Format) -> Result<String> {
    let Op::Gemm { b, m, n, k, bias } = Op::parse(op, shape)? else {
        return Err(Error::Usage("--candidates applies to gemm".into()));
    };
    let dtype = Dtype::parse(dtype)?;
    let ctx = kernel::Context::for_timing(Timing::parse(timing)?);
    let mut t = Table::new(&["gpu", "tile", "split_k", "kernel_ms", "bound", "waves"]);
    for g in gpus {
        let g = reg.gpu(g)?;
        let p = kernel::gemm::GemmProblem::new(b, m, n, k, bias, dtype);
        for (name, split, ms, bound, waves) in kernel::gemm::candidates_timed(g, &reg.templates, p, ctx.l2_warm)? {
            t.push(vec![text(g.key()), text(name), Value::from(split), num(ms), text(bound.name()), Value::from(waves)]);
        }
    }
    Ok(t.render(format))
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rows ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn replay_file(reg: &Registry, file: &TraceFile, target: Option<&Gpu>) -> Vec<validate::ReplayRow> {
    let name = file.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let pb = progress(file.rows.len() as u64, &name);
    let rows = validate::replay_kernels(reg, file, target, &|n| pb.inc(n));
    pb.finish_and_clear();
    rows
}

pub fn replay(reg: &Registry, files: &[PathBuf], gpu: Option<&str>, format: Format) -> Result<String> {
    let target = gpu.map(|g| reg.gpu(g)).transpose()?;
    let mut out = String::new();
    let mut summary = Table::new(&["file", "gpu", "op", "rows", "simulated", "median_ape", "p90_ape", "bias", "predicted_total_ms", "measured_total_ms"]);
    for path in files {
        let file = TraceFile::read(path)?;
        let rows = replay_file(reg, &file, target);
        match format {
            Format::Csv | Format::Json => {
                let mut t = Table { headers: file.headers.iter().map(str::to_string).collect(), rows: vec![] };
                t.headers.push("predicted_ms".into());
                t.headers.push("status".into());
                t.headers.push("tile".into());
                t.headers.push("bound".into());
                for (rec, r) in file.rows.iter().zip(&rows) {
                    let mut row: Vec<Value> = rec.iter().map(text).collect();
                    row.push(r.predicted_ms.map(num).unwrap_or(Value::Null));
                    row.push(text(&r.status));
                    row.push(text(r.tile.as_deref().unwrap_or("")));
                    row.push(text(r.bound));
                    t.rows.push(row);
                }
                let rendered = t.render(format);
                if format == Format::Csv && !out.is_empty() {
                    // Several files: one header per file's block.
                    out.push('\n');
                }
                out += &rendered;
            }
            Format::Table | Format::Markdown => {
                let mut groups: BTreeMap<(String, String), ReplayGroup> = BTreeMap::new();
                for (rec, r) in file.rows.iter().zip(&rows) {
                    let (gpu_name, op_name, measured) = if file.kind == TraceKind::Kernels {
                        let k = file.kernel_row(rec);
                        (target.map(|g| g.key()).unwrap_or(k.gpu).to_string(), k.op.to_string(), k.measured_ms)
                    } else {
                        let f = |n: &str| file.model_field(rec, n).trim().to_string();
                        (f("gpu"), format!("{} {} {}", f("model"), f("mode"), f("option")), f("measured_ms").parse::<f64>().ok())
                    };
                    let e = groups.entry((gpu_name, op_name)).or_default();
                    e.0 += 1;
                    if let Some(p) = r.predicted_ms {
                        e.2 += p;
                        if let Some(m) = measured.filter(|_| target.is_none()) {
                            e.1.push((p, m));
                            e.3 += m;
                        }
                    }
                }
                let fname = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                for ((g, o), (n, pairs, ptot, mtot)) in groups {
                    let key = GroupKey { source: String::new(), gpu: g.clone(), op: o.clone(), dtype: String::new() };
                    let s = validate::metrics::stats(key, pairs.iter().map(|(p, m)| validate::metrics::pct_error(*p, *m)).collect());
                    summary.push(vec![
                        text(&fname),
                        text(g),
                        text(o),
                        Value::from(n),
                        Value::from(if pairs.is_empty() { 0 } else { pairs.len() }),
                        if pairs.is_empty() { Value::Null } else { num(s.median_ape) },
                        if pairs.is_empty() { Value::Null } else { num(s.p90_ape) },
                        if pairs.is_empty() { Value::Null } else { num(s.bias) },
                        num(ptot),
                        if mtot > 0.0 { num(mtot) } else { Value::Null },
                    ]);
                }
            }
        }
    }
    if matches!(format, Format::Table | Format::Markdown) {
        out = summary.render(format);
        out += "\nPer-row predictions: --format csv (input columns, predicted_ms, status, tile, bound).\n";
    }
    Ok(out)
}

/// Default trace folder: $PHANTOM_TRACES, else ../shared/traces.
pub fn default_traces() -> PathBuf {
    std::env::var_os("PHANTOM_TRACES").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../shared/traces"))
}

/// Baseline predictions of `<stem>_predictions.csv` keyed like the rows of a model_ops trace.
fn load_op_baselines(path: &Path) -> HashMap<String, Vec<(String, f64)>> {
    let mut map: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    let Ok(mut rdr) = csv::Reader::from_path(path) else { return map };
    let Ok(h) = rdr.headers().cloned() else { return map };
    let idx = |n: &str| h.iter().position(|x| x == n);
    let cols: Option<Vec<usize>> = ["gpu", "model", "mode", "seq_len", "batch", "node", "predictor", "pred_fw_ms"].iter().map(|c| idx(c)).collect();
    let Some(c) = cols else { return map };
    for rec in rdr.records().flatten() {
        let key = format!("{}|{}|{}|{}|{}|{}", &rec[c[0]], &rec[c[1]], &rec[c[2]], &rec[c[3]], &rec[c[4]], &rec[c[5]]);
        if let Ok(v) = rec[c[7]].parse::<f64>() {
            if v > 0.0 {
                map.entry(key).or_default().push((rec[c[6]].to_string(), v));
            }
        }
    }
    map
}

fn op_row_key(gpu: &str, tags: &str) -> Option<String> {
    Some(format!(
        "{}|{}|{}|{}|{}|{}",
        gpu,
        tag(tags, "model")?,
        tag(tags, "mode")?,
        tag(tags, "seq_len")?,
        tag(tags, "batch")?,
        tag(tags, "node")?
    ))
}

/// The library's kernel family from a recorded kernel name (`ampere_sgemm_128x64_tn` →
/// `ampere_sgemm_128x64`).
pub fn kernel_family(name: &str) -> &str {
    for suffix in ["_nn", "_tn", "_nt", "_tt"] {
        if let Some(s) = name.strip_suffix(suffix) {
            return s;
        }
    }
    name
}

pub struct ValidateOptions {
    pub traces: Option<PathBuf>,
    pub gpu: Option<String>,
    pub op: Option<String>,
    pub leave_one_gpu_out: bool,
    pub tiles: bool,
    pub include_fit_rows: bool,
}

fn trace_dir(traces: Option<PathBuf>) -> Result<PathBuf> {
    let dir = traces.unwrap_or_else(default_traces);
    if !dir.is_dir() {
        return Err(Error::File {
            path: dir.display().to_string(),
            msg: "trace folder not found (pass --traces DIR or set PHANTOM_TRACES; the data is in shared/traces beside the checkout)".into(),
        });
    }
    Ok(dir)
}

fn read_kernel_traces(dir: &Path) -> Result<Vec<TraceFile>> {
    let mut v = vec![];
    for path in crate::trace::canonical::find_traces(dir)? {
        let f = TraceFile::read(&path)?;
        if f.kind == TraceKind::Kernels {
            v.push(f);
        }
    }
    Ok(v)
}

pub fn fit(mut reg: Registry, traces: Option<PathBuf>, write: Option<PathBuf>, sweeps: usize, format: Format) -> Result<String> {
    use crate::validate::fit;
    let dir = trace_dir(traces)?;
    let files = read_kernel_traces(&dir)?;
    let samples = fit::samples(&reg, &files, fit::is_fit_line);
    eprintln!("fitting on {} fit rows from {}", samples.len(), dir.display());
    let report = fit::fit(&mut reg, &samples, sweeps);
    let mut t = Table::new(&["scope", "parameter", "value", "fit_rows", "median_abs_ln_error", "at_bound"]);
    let mut on_bound = vec![];
    for ((scope, name), (v, rows, obj)) in &report.values {
        // Only a value the rows fitted (a pooled one, rows 0, copies fitted values).
        let bound = if *rows > 0 { fit::at_bound(name, *v) } else { None };
        if let Some(b) = bound {
            on_bound.push(format!("{scope} {name} = {v:.4} ({b} bound)"));
        }
        t.push(vec![text(scope), text(name), num(*v), Value::from(*rows), num(*obj), text(bound.unwrap_or(""))]);
    }
    let mut out = t.render(format);
    if format == Format::Table && !on_bound.is_empty() {
        out += &format!(
            "\n{} fitted value(s) sit on a bound of their range, so the range, not the rows, decided them: {}\n",
            on_bound.len(),
            on_bound.join("; ")
        );
    }
    if let Some(repo) = write {
        let cmd = format!("phantom-gpu fit --traces {} --sweeps {sweeps} --write .", dir.display());
        for f in fit::write_back(&report, &repo, &cmd)? {
            eprintln!("wrote {f}");
        }
    } else if format == Format::Table {
        out += "\n(not written: pass --write REPO to store these in isa/ and kernels/launch.toml)\n";
    }
    Ok(out)
}

pub fn validate(reg: &Registry, o: &ValidateOptions, format: Format) -> Result<String> {
    let dir = trace_dir(o.traces.clone())?;
    let gpu_filter = o.gpu.as_deref().map(|g| reg.gpu(g).map(|g| g.key().to_string())).transpose()?;
    if let Some(op) = o.op.as_deref() {
        if !kernel::op::OP_NAMES.contains(&op) {
            return Err(Error::UnknownOp { name: op.into(), suggestions: crate::error::closest(op, kernel::op::OP_NAMES.iter().copied()) });
        }
    }
    let files = read_kernel_traces(&dir)?;
    let mut samples = vec![];
    let mut baseline_samples: BTreeMap<(GroupKey, String), Vec<f64>> = BTreeMap::new();
    let mut tile_hits: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    // (algorithm cuDNN ran, algorithm the model picked) → convolution rows.
    let mut algo_confusion: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut skipped: BTreeMap<String, usize> = BTreeMap::new();
    let mut fit_rows = 0usize;
    // (gpu, file index, row index) of every scored row, for the leave-one-GPU-out pass.
    let mut scored: Vec<(GroupKey, usize, usize, f64)> = vec![];
    for (fi, file) in files.iter().enumerate() {
        let path = &file.path;
        let keep: Vec<usize> = (0..file.rows.len())
            .filter(|&i| {
                let r = file.kernel_row(&file.rows[i]);
                gpu_filter.as_deref().is_none_or(|g| reg.gpu(r.gpu).map(|x| x.key() == g).unwrap_or(false))
                    && o.op.as_deref().is_none_or(|op| r.op == op)
            })
            .collect();
        let keep: Vec<usize> = keep
            .into_iter()
            .filter(|&i| {
                let fit = crate::validate::fit::is_fit_line(file.lines[i]);
                fit_rows += fit as usize;
                o.include_fit_rows || !fit
            })
            .collect();
        if keep.is_empty() {
            continue;
        }
        let mut sub = file.clone();
        sub.rows = keep.iter().map(|&i| file.rows[i].clone()).collect();
        sub.lines = keep.iter().map(|&i| file.lines[i]).collect();
        let rows = replay_file(reg, &sub, None);
        let stem = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let pred_path = path.with_file_name(stem.replace(".csv", "_predictions.csv"));
        let baselines = if pred_path.exists() { load_op_baselines(&pred_path) } else { HashMap::new() };
        for ((rec, r), &orig) in sub.rows.iter().zip(&rows).zip(&keep) {
            let k = sub.kernel_row(rec);
            let (Some(p), Some(m)) = (r.predicted_ms, k.measured_ms) else {
                *skipped.entry(format!("{}: {}", k.gpu, r.status)).or_default() += 1;
                continue;
            };
            let key = GroupKey { source: stem.trim_end_matches(".csv").to_string(), gpu: k.gpu.into(), op: k.op.into(), dtype: k.dtype.into() };
            if let Some(bl) = op_row_key(k.gpu, k.tags).and_then(|key| baselines.get(&key)) {
                for (pred, v) in bl {
                    baseline_samples.entry((key.clone(), pred.clone())).or_default().push(validate::metrics::pct_error(*v, m).abs());
                }
            }
            if o.tiles && k.op == "gemm" {
                if let (Some(name), Some(tile)) = (tag(k.tags, "kernel"), r.tile.as_deref()) {
                    let e = tile_hits.entry(format!("{}|{}", k.gpu, k.op)).or_default();
                    e.1 += 1;
                    let chosen = tile.split(':').next_back().unwrap_or(tile).trim_end_matches("+splitk");
                    if kernel_family(name) == chosen {
                        e.0 += 1;
                    }
                }
            }
            if o.tiles && k.op == "conv2d" {
                // cuDNN's benchmark mode ran the fastest algorithm: does the model pick it?
                if let Some((measured, chosen)) = validate::replay::conv_algorithms(reg, k.tags, r.tile.as_deref()) {
                    let e = tile_hits.entry(format!("{}|conv2d algorithm", k.gpu)).or_default();
                    e.1 += 1;
                    if measured == chosen {
                        e.0 += 1;
                    }
                    *algo_confusion.entry((measured.name(), chosen.name())).or_default() += 1;
                }
            }
            scored.push((key.clone(), fi, orig, m));
            samples.push((key, p, m));
        }
    }
    // Every GPU together, per source × op × dtype: the figure the accuracy targets name.
    let all: Vec<(GroupKey, f64, f64)> =
        samples.iter().map(|(k, p, m)| (GroupKey { gpu: "all".into(), ..k.clone() }, *p, *m)).collect();
    let mut stats = validate::summarize(samples);
    let gpus_seen: std::collections::BTreeSet<&str> = stats.iter().map(|s| s.key.gpu.as_str()).collect();
    let aggregate = if gpus_seen.len() > 1 { validate::summarize(all) } else { vec![] };
    for s in &mut stats {
        for ((k, pred), errs) in &baseline_samples {
            if *k == s.key {
                let mut e = errs.clone();
                e.sort_by(f64::total_cmp);
                s.baselines.insert(pred.clone(), validate::metrics::percentile(&e, 0.5));
            }
        }
    }
    let logo = if o.leave_one_gpu_out { Some(leave_one_gpu_out(&files, &scored)?) } else { None };
    stats.extend(aggregate);
    let predictors: Vec<String> = {
        let mut v: Vec<String> = baseline_samples.keys().map(|(_, p)| p.clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut headers: Vec<String> = ["source", "gpu", "op", "dtype", "rows", "median_ape", "p90_ape", "bias"].iter().map(|s| s.to_string()).collect();
    if logo.is_some() {
        headers.extend(["logo_median_ape".to_string(), "logo_p90_ape".to_string()]);
    }
    headers.extend(predictors.iter().map(|p| format!("{p}_median_ape")));
    let mut t = Table { headers, rows: vec![] };
    for s in &stats {
        let mut row = vec![text(&s.key.source), text(&s.key.gpu), text(&s.key.op), text(&s.key.dtype), Value::from(s.rows), num(s.median_ape), num(s.p90_ape), num(s.bias)];
        if let Some(l) = &logo {
            match l.get(&s.key) {
                Some(x) => row.extend([num(x.median_ape), num(x.p90_ape)]),
                None => row.extend([Value::Null, Value::Null]),
            }
        }
        row.extend(predictors.iter().map(|p| s.baselines.get(p).copied().map(num).unwrap_or(Value::Null)));
        t.push(row);
    }
    let mut out = t.render(format);
    if format == Format::Table {
        out += "\nAPE = |predicted - measured| / measured, %; bias = median signed error, % (+ = predicted too slow).\n";
        if o.include_fit_rows {
            out += &format!("Includes the {fit_rows} fit rows (one in {}), which the fitted parameters saw.\n", crate::validate::fit::FIT_EVERY);
        } else {
            out += &format!("Scored on report rows only: the {fit_rows} fit rows (one line in {}, by a hash of the line number) are excluded.\n", crate::validate::fit::FIT_EVERY);
        }
        if logo.is_some() {
            out += "logo_* = leave-one-GPU-out: every fitted parameter refitted without that GPU's rows, then scored on it.\n";
        }
        if !skipped.is_empty() {
            out += "Rows not simulated:\n";
            for (why, n) in &skipped {
                out += &format!("  {n:>7}  {why}\n");
            }
        }
        if o.tiles {
            out += "\nTile selector vs the library's kernel (rows with a recorded kernel name):\n";
            let mut tt = Table::new(&["gpu|op", "rows", "agree", "agree_pct"]);
            for (k, (hit, n)) in &tile_hits {
                tt.push(vec![text(k), Value::from(*n), Value::from(*hit), num(*hit as f64 / *n as f64 * 100.0)]);
            }
            out += &tt.render(Format::Table);
            if !algo_confusion.is_empty() {
                out += "\nConvolution algorithm: cuDNN's pick (benchmark mode) vs the model's, every GPU:\n";
                let mut ct = Table::new(&["cudnn", "model", "rows"]);
                for ((measured, chosen), n) in &algo_confusion {
                    ct.push(vec![text(*measured), text(*chosen), Value::from(*n)]);
                }
                out += &ct.render(Format::Table);
            }
        }
    }
    Ok(out)
}

/// For each GPU: a fresh registry, every parameter refitted on the other GPUs' fit rows,
/// then that GPU's scored rows predicted.
fn leave_one_gpu_out(files: &[TraceFile], scored: &[(GroupKey, usize, usize, f64)]) -> Result<HashMap<GroupKey, validate::GroupStats>> {
    use crate::validate::fit;
    let base = Registry::builtin()?;
    let all = fit::samples(&base, files, fit::is_fit_line);
    let gpus: std::collections::BTreeSet<String> = scored.iter().filter_map(|(k, ..)| base.gpu(&k.gpu).ok().map(|g| g.key().to_string())).collect();
    let mut errs: BTreeMap<GroupKey, Vec<f64>> = BTreeMap::new();
    let pb = progress(gpus.len() as u64, "leave-one-GPU-out refits");
    for g in &gpus {
        let mut reg = Registry::builtin()?;
        let train: Vec<fit::Sample> = all.iter().filter(|s| &s.gpu != g).cloned().collect();
        fit::fit(&mut reg, &train, 4);
        for (key, fi, ri, m) in scored.iter().filter(|(k, ..)| base.gpu(&k.gpu).map(|x| x.key() == g).unwrap_or(false)) {
            let r = validate::replay::replay_row(&reg, &files[*fi], *ri, None);
            if let Some(p) = r.predicted_ms {
                errs.entry(key.clone()).or_default().push(validate::metrics::pct_error(p, *m));
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let mut all: BTreeMap<GroupKey, Vec<f64>> = BTreeMap::new();
    for (k, v) in &errs {
        all.entry(GroupKey { gpu: "all".into(), ..k.clone() }).or_default().extend(v);
    }
    errs.extend(all);
    Ok(errs.into_iter().map(|(k, v)| (k.clone(), validate::metrics::stats(k, v))).collect())
}

pub fn calibrate(reg: &Registry, traces: &[PathBuf], out: &Path, sweeps: usize, format: Format) -> Result<String> {
    use crate::validate::calibrate;
    let mut files = Vec::new();
    for p in traces {
        let f = if crate::trace::kineto::is_kineto_path(p) {
            // A PyTorch profiler trace: the kernels whose shapes it records, on its GPU.
            let trace = crate::trace::kineto::KinetoTrace::read(p)?;
            let gpu = super::kineto_commands::recorded_gpu(reg, &trace, None)?;
            let mapped = crate::trace::kineto::classify::classify(&trace);
            let csv = crate::validate::kineto::canonical_csv(&trace, &mapped, gpu.key());
            let f = TraceFile::from_reader(p, csv.as_bytes())?;
            if f.rows.is_empty() {
                return Err(Error::File { path: p.display().to_string(), msg: "no kernel in this trace has a recorded shape to calibrate on (record with record_shapes=True)".into() });
            }
            f
        } else {
            TraceFile::read(p)?
        };
        if f.kind != TraceKind::Kernels {
            return Err(Error::File { path: p.display().to_string(), msg: "calibration reads kernel traces (gpu,op,dtype,shape,timing,measured_ms,...) or PyTorch profiler traces (.json, .json.gz), not model traces".into() });
        }
        files.push(f);
    }
    let samples = calibrate::samples_of(reg, &files);
    let c = calibrate::calibrate(reg, &samples, sweeps)?;
    let command = format!("phantom-gpu calibrate --traces {} --out {}", traces.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "), out.display());
    std::fs::write(out, calibrate::overlay_toml(&c, &command)).map_err(|e| Error::Write { path: out.to_path_buf(), source: e })?;
    let mut t = Table::new(&["scope", "parameter", "value", "rows"]);
    for ((scope, name), (v, rows, _)) in &c.report.values {
        t.push(vec![text(scope), text(name), num(*v), Value::from(*rows)]);
    }
    let mut s = format!(
        "{} rows of GPUs {}.\n{}-fold cross-validated APE (each row predicted by a calibration that did not see it):\n  before: median {:.1}%, p90 {:.1}%\n  after:  median {:.1}%, p90 {:.1}%\nOverlay written to {} (fitted on all rows; apply it with --calibration).\n\n",
        c.rows,
        c.report.gpus.iter().cloned().collect::<Vec<_>>().join(", "),
        calibrate::FOLDS,
        c.before.0,
        c.before.1,
        c.after.0,
        c.after.1,
        out.display()
    );
    if format != Format::Table {
        s.clear();
    }
    s += &t.render(format);
    Ok(s)
}

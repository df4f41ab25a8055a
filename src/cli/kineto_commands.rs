//! `replay` of PyTorch profiler (Kineto) traces: printing only; the replay itself is
//! `validate::kineto`.

use crate::error::{Error, Result};
use crate::hw::{Gpu, Registry};
use crate::report::{Format, Table};
use crate::trace::kineto::{classify, is_kineto_path, KinetoTrace};
use crate::validate::kineto::{self as kreplay, KinetoReplay};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// True when the files are Kineto traces; an error when they mix Kineto and CSV.
pub fn is_kineto(files: &[PathBuf]) -> Result<bool> {
    let k = files.iter().filter(|f| is_kineto_path(f)).count();
    if k > 0 && k < files.len() {
        return Err(Error::Usage("replay takes either Kineto traces (.json, .json.gz) or canonical CSV traces, not both".into()));
    }
    Ok(k > 0)
}

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
}

fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn pct(p: f64, m: f64) -> Value {
    if m > 0.0 {
        num(100.0 * (p - m) / m)
    } else {
        Value::Null
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        None
    } else if v.len() % 2 == 1 {
        Some(v[v.len() / 2])
    } else {
        Some((v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0)
    }
}

/// The GPU a trace was recorded on: `--recorded-on`, else its `deviceProperties` name.
pub(super) fn recorded_gpu<'a>(reg: &'a Registry, trace: &KinetoTrace, recorded_on: Option<&str>) -> Result<&'a Gpu> {
    let file = trace.path.display();
    if let Some(g) = recorded_on {
        return reg.gpu(g);
    }
    match trace.device_name() {
        None => Err(Error::Usage(format!("{file}: the trace does not name its GPU (no deviceProperties); pass --recorded-on GPU"))),
        Some(name) => reg.gpu(name).map_err(|e| match e {
            Error::UnknownGpu { suggestions, .. } => Error::Usage(format!(
                "{file}: recorded on '{name}', which is not a known GPU{}; pass --recorded-on GPU to name it (phantom-gpu list-gpus shows the keys)",
                if suggestions.is_empty() { String::new() } else { format!(" (closest: {})", suggestions.join(", ")) }
            )),
            other => other,
        }),
    }
}

/// Reads, classifies and replays one Kineto trace.
pub fn replay_one(reg: &Registry, path: &Path, target: Option<&str>, recorded_on: Option<&str>) -> Result<(KinetoTrace, KinetoReplay)> {
    let trace = KinetoTrace::read(path)?;
    let recorded = recorded_gpu(reg, &trace, recorded_on)?;
    let target = match target {
        Some(t) => reg.gpu(t)?,
        None => recorded,
    };
    let mapped = classify::classify(&trace);
    let r = kreplay::replay(&trace, &mapped, recorded, target, &reg.templates)?;
    Ok((trace, r))
}

pub fn replay(
    reg: &Registry,
    files: &[PathBuf],
    target: Option<&str>,
    recorded_on: Option<&str>,
    timeline: Option<&PathBuf>,
    format: Format,
) -> Result<String> {
    if timeline.is_some() && files.len() != 1 {
        return Err(Error::Usage("--timeline takes one trace file".into()));
    }
    let mut out = String::new();
    let mut json = vec![];
    for path in files {
        let (trace, r) = replay_one(reg, path, target, recorded_on)?;
        if let Some(t) = timeline {
            let text = serde_json::to_string(&kreplay::chrome_trace(&trace, &r)).unwrap_or_default();
            std::fs::write(t, text).map_err(|e| Error::Write { path: t.clone(), source: e })?;
            eprintln!("wrote the predicted timeline to {} (open it in https://ui.perfetto.dev)", t.display());
        }
        match format {
            Format::Csv => {
                let mut t = Table::new(&["kernel", "category", "op", "shape", "measured_ms", "predicted_ms", "status"]);
                for row in &r.rows {
                    t.push(vec![
                        text(&row.name),
                        text(row.category.name()),
                        text(&row.op),
                        text(&row.shape),
                        num(row.measured_ms),
                        row.predicted_ms.map(num).unwrap_or(Value::Null),
                        text(&row.status),
                    ]);
                }
                if !out.is_empty() {
                    out.push('\n');
                }
                out += &t.render(Format::Csv);
            }
            Format::Json => json.push(summary_json(&trace, &r)),
            Format::Table | Format::Markdown => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out += &summary_text(&trace, &r);
            }
        }
    }
    if format == Format::Json {
        out = serde_json::to_string_pretty(&Value::Array(json)).unwrap_or_default() + "\n";
    }
    Ok(out)
}

fn category_table(r: &KinetoReplay) -> Table {
    let change = if r.validation { "error_pct" } else { "change_pct" };
    let mut t = Table::new(&["category", "kernels", "measured_ms", "predicted_ms", change, "from_shape_ms", "k_from_time_ms", "kept_ms", "shape_ops", "median_ape_pct", "alone_ops", "median_ape_alone_pct"]);
    let mut tot = kreplay::CategoryTotals::default();
    for (c, x) in &r.categories {
        t.push(vec![
            text(c.name()),
            Value::from(x.kernels),
            num(x.measured_ms),
            num(x.predicted_ms),
            pct(x.predicted_ms, x.measured_ms),
            num(x.shape_ms),
            num(x.k_from_time_ms),
            num(x.kept_ms),
            Value::from(x.group_ape.len()),
            if r.validation { median(&x.group_ape).map(num).unwrap_or(Value::Null) } else { Value::Null },
            Value::from(x.group_ape_alone.len()),
            if r.validation { median(&x.group_ape_alone).map(num).unwrap_or(Value::Null) } else { Value::Null },
        ]);
        tot.kernels += x.kernels;
        tot.measured_ms += x.measured_ms;
        tot.predicted_ms += x.predicted_ms;
        tot.shape_ms += x.shape_ms;
        tot.k_from_time_ms += x.k_from_time_ms;
        tot.kept_ms += x.kept_ms;
        tot.group_ape.extend(&x.group_ape);
        tot.group_ape_alone.extend(&x.group_ape_alone);
    }
    t.push(vec![
        text("total"),
        Value::from(tot.kernels),
        num(tot.measured_ms),
        num(tot.predicted_ms),
        pct(tot.predicted_ms, tot.measured_ms),
        num(tot.shape_ms),
        num(tot.k_from_time_ms),
        num(tot.kept_ms),
        Value::from(tot.group_ape.len()),
        if r.validation { median(&tot.group_ape).map(num).unwrap_or(Value::Null) } else { Value::Null },
        Value::from(tot.group_ape_alone.len()),
        if r.validation { median(&tot.group_ape_alone).map(num).unwrap_or(Value::Null) } else { Value::Null },
    ]);
    t
}

fn step_table(r: &KinetoReplay) -> Table {
    let change = if r.validation { "error_pct" } else { "change_pct" };
    let mut t = Table::new(&["step", "gpu_events", "measured_ms", "predicted_ms", change, "measured_busy_ms", "predicted_busy_ms", "measured_gap_ms", "predicted_gap_ms"]);
    let row = |name: &str, k: usize, m: f64, p: f64, mb: f64, pb: f64| {
        vec![text(name), Value::from(k), num(m), num(p), pct(p, m), num(mb), num(pb), num(m - mb), num(p - pb)]
    };
    for s in &r.steps {
        t.push(row(&s.name, s.kernels, s.measured_ms, s.predicted_ms, s.measured_busy_ms, s.predicted_busy_ms));
    }
    if r.steps.len() > 1 {
        let k = r.steps.len() as f64;
        let mean = |f: &dyn Fn(&kreplay::StepTimes) -> f64| r.steps.iter().map(f).sum::<f64>() / k;
        t.push(row(
            "mean",
            r.steps.iter().map(|s| s.kernels).sum::<usize>() / r.steps.len(),
            mean(&|s| s.measured_ms),
            mean(&|s| s.predicted_ms),
            mean(&|s| s.measured_busy_ms),
            mean(&|s| s.predicted_busy_ms),
        ));
    }
    t
}

fn summary_text(trace: &KinetoTrace, r: &KinetoReplay) -> String {
    let device = trace.device_name().unwrap_or("?");
    let mut s = format!(
        "{}: recorded on {} ('{}'); {} on {}\n{} GPU events\n\n",
        r.file,
        r.recorded_on,
        device,
        if r.validation { "replayed (a validation)" } else { "predicted" },
        r.target,
        r.rows.len()
    );
    s += &category_table(r).render(Format::Table);
    if r.validation {
        for (c, x) in r.categories.iter().filter(|(_, x)| !x.helper_ape.is_empty()) {
            s += &format!(
                "{}: shape_ops are its matrix kernels; its {} cuBLAS helper kernels (split-k reductions, bias epilogues), predicted as element-wise passes over the output, have a median APE of {:.1}%\n",
                c.name(),
                x.helper_ape.len(),
                median(&x.helper_ape).unwrap_or(0.0)
            );
        }
    }
    let change = |p: f64, m: f64| 100.0 * (p - m) / m.max(1e-12);
    s += &format!(
        "\nGPU busy (union of GPU event intervals): measured {:.3} ms on {}, predicted {:.3} ms on {} ({:+.1}%); kernels alone: {:.3} ms, {:.3} ms ({:+.1}%)\n\n",
        r.measured_busy_ms,
        r.recorded_on,
        r.predicted_busy_ms,
        r.target,
        change(r.predicted_busy_ms, r.measured_busy_ms),
        r.measured_kernel_busy_ms,
        r.predicted_kernel_busy_ms,
        change(r.predicted_kernel_busy_ms, r.measured_kernel_busy_ms),
    );
    s += &step_table(r).render(Format::Table);
    let kept: f64 = r.categories.values().map(|c| c.kept_ms).sum();
    let kft: f64 = r.categories.values().map(|c| c.k_from_time_ms).sum();
    let total: f64 = r.categories.values().map(|c| c.measured_ms).sum();
    s += &format!(
        "\nmeasured_ms is on {}. Of {:.3} ms of GPU time, {:.3} ms ({:.1}%) kept its measured time{}, and {:.3} ms ({:.1}%) are matrix kernels without shapes whose k was inferred from the recorded time{}.\n",
        r.recorded_on,
        total,
        kept,
        100.0 * kept / total.max(1e-12),
        if r.validation { "" } else { " scaled by the stated ratios" },
        kft,
        100.0 * kft / total.max(1e-12),
        if r.validation { " (not a validation)" } else { "" }
    );
    s += "median_ape_pct: ops predicted from a shape, each op's prediction against its kernels' summed time (a GEMM kernel, and each cuBLAS helper kernel beside it, is predicted on its own); _alone: only ops whose kernels overlapped nothing on another stream. Steps: first GPU start to last GPU end of the events launched in each ProfilerStep; gap = step − busy.\nPer-kernel rows: --format csv.\n";
    s
}

fn summary_json(trace: &KinetoTrace, r: &KinetoReplay) -> Value {
    let table_json = |t: Table| serde_json::from_str::<Value>(&t.render(Format::Json)).unwrap_or(Value::Null);
    serde_json::json!({
        "file": r.file,
        "device_name": trace.device_name(),
        "recorded_on": r.recorded_on,
        "target": r.target,
        "validation": r.validation,
        "gpu_events": r.rows.len(),
        "measured_busy_ms": r.measured_busy_ms,
        "predicted_busy_ms": r.predicted_busy_ms,
        "measured_kernel_busy_ms": r.measured_kernel_busy_ms,
        "predicted_kernel_busy_ms": r.predicted_kernel_busy_ms,
        "categories": table_json(category_table(r)),
        "helper_kernels": r.categories.iter().filter(|(_, x)| !x.helper_ape.is_empty()).map(|(c, x)| serde_json::json!({
            "category": c.name(),
            "kernels": x.helper_ape.len(),
            "median_ape_pct": if r.validation { median(&x.helper_ape) } else { None },
        })).collect::<Vec<_>>(),
        "steps": table_json(step_table(r)),
    })
}

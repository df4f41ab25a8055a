//! Replay of whole-model trace rows (`*.models.csv`): build the model the row names (from
//! the HuggingFace config its tags point at, else the zoo), lower it as the row ran it
//! (eager or compiled, inference or training, fp32 …) and simulate one step.

use super::ReplayRow;
use crate::graph::transformer::{Head, Workload};
use crate::graph::zoo::{self, Recipe};
use crate::graph::Graph;
use crate::hw::{Gpu, Registry};
use crate::kernel::Dtype;
use crate::lower::{AttentionImpl, Execution, Mode, Options, Parallel, Precision};
use crate::run;
use crate::trace::canonical::{tag, TraceFile};
use rayon::prelude::*;
use std::path::Path;

/// How a model row ran, read from its columns and tags.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub gpu: String,
    pub model: String,
    pub options: Options,
    pub batch: u64,
    pub seq_len: u64,
    pub measured_ms: Option<f64>,
    pub config: Option<String>,
    pub source: String,
}

/// Parses a row; an option the simulator cannot run yet is an `Err` status.
pub fn parse_row(file: &TraceFile, index: usize) -> Result<ModelRow, String> {
    let rec = &file.rows[index];
    let f = |n: &str| file.model_field(rec, n).trim().to_string();
    let int = |n: &str| -> Result<u64, String> { f(n).parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| format!("{n}='{}' is not a positive integer", f(n))) };
    let dtype = Dtype::parse(&f("dtype")).map_err(|e| e.to_string())?;
    let mode = match f("mode").as_str() {
        "inference" => Mode::Inference,
        "training" => Mode::Training,
        m => return Err(format!("unknown mode '{m}' (expected inference or training)")),
    };
    let gpus = int("num_gpus").unwrap_or(1);
    if gpus > crate::kernel::op::MAX_GPUS {
        return Err(format!("num_gpus={gpus} is beyond any GPU system (at most {})", crate::kernel::op::MAX_GPUS));
    }
    // `dpN`: N data-parallel replicas; `ppN_M`: N pipeline stages, M micro-batches.
    let option = f("option");
    let (execution, parallel) = match option.as_str() {
        "eager" => (Execution::Eager, Parallel::default()),
        "compiled" => (Execution::Compiled, Parallel::default()),
        o if o.starts_with("dp") => (Execution::Eager, Parallel { dp: gpus, ..Parallel::default() }),
        o if o.starts_with("pp") => {
            let m = o.split_once('_').and_then(|(_, m)| m.parse().ok()).unwrap_or(1);
            if !(1..=crate::graph::transformer::MAX_BATCH).contains(&m) {
                return Err(format!("option '{o}': {m} micro-batches (expected 1 to {})", crate::graph::transformer::MAX_BATCH));
            }
            (Execution::Eager, Parallel { pp: gpus, micro_batches: m, ..Parallel::default() })
        }
        o if o.starts_with("tp") => (Execution::Eager, Parallel { tp: gpus, ..Parallel::default() }),
        o => return Err(format!("unknown option '{o}' (expected eager, compiled, dpN, tpN or ppN_M)")),
    };
    let tags = file.column(rec, "tags").unwrap_or("");
    // NeuSight built its models with `attn_implementation="eager"`; a row can say otherwise.
    let attention = match tag(tags, "attn") {
        Some("flash") | Some("sdpa") => AttentionImpl::Flash,
        _ => AttentionImpl::Eager,
    };
    let options = Options { precision: Precision::of(dtype), mode, execution, attention, optimizer_step: false, flash_available: true, parallel };
    Ok(ModelRow {
        gpu: f("gpu"),
        model: f("model"),
        options,
        batch: int("batch")?,
        seq_len: int("seq_len")?,
        measured_ms: f("measured_ms").parse().ok(),
        config: tag(tags, "config").map(str::to_string),
        source: file.column(rec, "source").unwrap_or("").trim().to_string(),
    })
}

/// The model of a row: its HuggingFace config next to the trace (`<source>/configs/`)
/// when the tags name one, else the zoo entry of that name. Training a BERT uses the
/// pre-training heads (as the BERT recipes and NeuSight do); inference the classifier.
pub fn build_graph(row: &ModelRow, trace_dir: &Path) -> Result<Graph, String> {
    // One GPU's share: the global batch over replicas and micro-batches.
    let par = row.options.parallel;
    let share = par.dp * par.micro_batches;
    if !row.batch.is_multiple_of(share) {
        return Err(format!("global batch {} does not split into {} replicas × {} micro-batches", row.batch, par.dp, par.micro_batches));
    }
    let wl = Workload { batch: row.batch / share, seq_len: row.seq_len, past: 0 };
    if let Some(cfg) = &row.config {
        let path = trace_dir.join(&row.source).join("configs").join(cfg);
        if path.exists() {
            return crate::graph::hf_config::build_for_trace(&path, wl, row.options.mode == Mode::Training, par.tp).map_err(|e| e.to_string());
        }
    }
    let mut m = zoo::find(&row.model).map_err(|e| e.to_string())?;
    if let Recipe::Transformer(c) = &mut m.recipe {
        c.tp = par.tp;
        if row.options.mode == Mode::Training && matches!(c.head, Head::Classifier(_)) {
            c.head = Head::MaskedLm;
        }
    }
    m.build(wl).map_err(|e| e.to_string())
}

/// Simulates one row on its GPU (or `target`).
pub fn replay_model_row(reg: &Registry, file: &TraceFile, index: usize, target: Option<&Gpu>) -> ReplayRow {
    let skipped = |s: String| ReplayRow { predicted_ms: None, status: s, tile: None, bound: "" };
    let row = match parse_row(file, index) {
        Ok(r) => r,
        Err(e) => return skipped(e),
    };
    let gpu = match target {
        Some(g) => g,
        None => match reg.gpu(&row.gpu) {
            Ok(g) => g,
            Err(_) => return skipped(format!("unknown gpu '{}'", row.gpu)),
        },
    };
    let dir = file.path.parent().unwrap_or(Path::new("."));
    let graph = match build_graph(&row, dir) {
        Ok(g) => g,
        Err(e) => return skipped(e),
    };
    // A measured row ran, so it fit; time it even if our memory estimate disagrees.
    let share = row.batch / (row.options.parallel.dp * row.options.parallel.micro_batches);
    match run::run_model(gpu, &reg.templates, &graph, share, row.seq_len, row.options, run::Keep { time_even_if_oom: true, kernels: false }) {
        Ok(r) => ReplayRow { predicted_ms: r.latency_ms, status: String::new(), tile: None, bound: "" },
        Err(e) => skipped(e.to_string()),
    }
}

/// Every row, in parallel, in input order.
pub fn replay_models(reg: &Registry, file: &TraceFile, target: Option<&Gpu>, progress: &(dyn Fn(u64) + Sync)) -> Vec<ReplayRow> {
    (0..file.rows.len())
        .into_par_iter()
        .map(|i| {
            let r = replay_model_row(reg, file, i, target);
            progress(1);
            r
        })
        .collect()
}

/// Other predictors' estimates of the same rows (`<stem>_predictions.csv` beside
/// `<stem>s.csv`, e.g. `neusight.model_predictions.csv`), keyed by
/// (gpu, config stem, mode, batch, seq_len, option) in the canonical names.
pub fn load_baselines(path: &Path) -> std::collections::HashMap<String, Vec<(String, f64)>> {
    let mut map: std::collections::HashMap<String, Vec<(String, f64)>> = Default::default();
    let Ok(mut rdr) = csv::Reader::from_path(path) else { return map };
    let Ok(h) = rdr.headers().cloned() else { return map };
    let idx = |n: &str| h.iter().position(|x| x == n);
    let Some(c) = ["gpu", "model", "mode", "seq_len", "batch", "option", "predictor", "pred_latency_ms"].iter().map(|n| idx(n)).collect::<Option<Vec<usize>>>() else { return map };
    for rec in rdr.records().flatten() {
        let mode = match &rec[c[2]] {
            "inf" => "inference",
            "train" => "training",
            m => m,
        };
        let option = match &rec[c[5]] {
            "none" => "eager",
            "fusion" => "compiled",
            o => o,
        };
        let key = baseline_key(&rec[c[0]], &rec[c[1]], mode, &rec[c[4]], &rec[c[3]], option);
        if let Ok(v) = rec[c[7]].parse::<f64>() {
            if v > 0.0 {
                map.entry(key).or_default().push((rec[c[6]].to_string(), v));
            }
        }
    }
    map
}

pub fn baseline_key(gpu: &str, config_stem: &str, mode: &str, batch: &str, seq_len: &str, option: &str) -> String {
    format!("{gpu}|{config_stem}|{mode}|{batch}|{seq_len}|{option}")
}

/// One scored model row: ours and the baselines' predictions beside the measurement.
#[derive(Debug, Clone)]
pub struct ModelScore {
    pub row: ModelRow,
    pub mode: String,
    pub option: String,
    pub predicted_ms: Option<f64>,
    pub status: String,
    pub baselines: Vec<(String, f64)>,
}

/// Replays a models trace and pairs each row with the baselines' predictions.
pub fn score(reg: &Registry, file: &TraceFile) -> Vec<ModelScore> {
    let stem = file.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let pred_path = file.path.with_file_name(stem.replace("models.csv", "model_predictions.csv"));
    let baselines = load_baselines(&pred_path);
    let replayed = replay_models(reg, file, None, &|_| {});
    let mut out = Vec::new();
    for (i, r) in replayed.into_iter().enumerate() {
        let rec = &file.rows[i];
        let f = |n: &str| file.model_field(rec, n).trim().to_string();
        let row = match parse_row(file, i) {
            Ok(row) => row,
            Err(_) => ModelRow {
                gpu: f("gpu"),
                model: f("model"),
                options: Options::default(),
                batch: f("batch").parse().unwrap_or(0),
                seq_len: f("seq_len").parse().unwrap_or(0),
                measured_ms: f("measured_ms").parse().ok(),
                config: None,
                source: String::new(),
            },
        };
        let stem = row.config.as_deref().map(|c| c.trim_end_matches(".json").to_string()).unwrap_or_else(|| row.model.clone());
        let key = baseline_key(&row.gpu, &stem, &f("mode"), &f("batch"), &f("seq_len"), &f("option"));
        out.push(ModelScore { mode: f("mode"), option: f("option"), predicted_ms: r.predicted_ms, status: r.status, baselines: baselines.get(&key).cloned().unwrap_or_default(), row });
    }
    out
}

//! Replay of whole-model trace rows (`*.models.csv`): build the model the row names (from
//! the HuggingFace config its tags point at, else the zoo), lower it as the row ran it
//! (eager or compiled, inference or training, fp32 …) and simulate one step.

use super::ReplayRow;
use crate::graph::transformer::{Head, Workload};
use crate::graph::zoo::{self, Recipe};
use crate::graph::Graph;
use crate::hw::{Gpu, Registry};
use crate::kernel::Dtype;
use crate::lower::{AttentionImpl, Execution, Mode, Options, Precision};
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
    let execution = match f("option").as_str() {
        "eager" => Execution::Eager,
        "compiled" => Execution::Compiled,
        o => return Err(format!("option '{o}' runs on {} GPUs: multi-GPU simulation is not implemented yet", f("num_gpus"))),
    };
    let tags = file.column(rec, "tags").unwrap_or("");
    // NeuSight built its models with `attn_implementation="eager"`; a row can say otherwise.
    let attention = match tag(tags, "attn") {
        Some("flash") | Some("sdpa") => AttentionImpl::Flash,
        _ => AttentionImpl::Eager,
    };
    let options = Options { precision: Precision { dtype, int4_weights: false }, mode, execution, attention, optimizer_step: false, flash_available: true };
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
    let wl = Workload { batch: row.batch, seq_len: row.seq_len, past: 0 };
    if let Some(cfg) = &row.config {
        let path = trace_dir.join(&row.source).join("configs").join(cfg);
        if path.exists() {
            if let Ok(g) = crate::graph::hf_config::build_for_trace(&path, wl, row.options.mode == Mode::Training) {
                return Ok(g);
            }
        }
    }
    let mut m = zoo::find(&row.model).map_err(|e| e.to_string())?;
    if let Recipe::Transformer(c) = &mut m.recipe {
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
    match run::run_model(gpu, &reg.templates, &graph, row.batch, row.seq_len, row.options, run::Keep { time_even_if_oom: true, kernels: false }) {
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

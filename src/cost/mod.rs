//! What a simulated step costs in the cloud: the unit of work a model produces (tokens,
//! images, samples), its rate from a `ModelRun`, and dollars per hour, per unit of work and
//! per training run at a listed price (`prices`).
//!
//! Formulas (also printed by the commands):
//! * work per second = samples per second × tokens per sample (the step's new tokens per
//!   sequence, `--seq-len`) for language models; = samples per second for vision models.
//! * $ per 1M tokens (1k images) = $/hour ÷ 3600 ÷ work per second × 10⁶ (10³).
//! * training run: hours = work of the run ÷ work per second ÷ 3600, where the work is
//!   `--train-tokens`, or `--epochs` × `--dataset-size` samples (× `--seq-len` tokens per
//!   sample for language models); cost = hours × $/hour. Nothing else (data loading,
//!   evaluation, checkpoints, restarts, idle time) is counted.

pub mod prices;

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphOp};
use crate::run::ModelRun;
use serde::Serialize;

pub use prices::{Price, PriceBook, Pricing};

/// The unit of work a model's step produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    /// Language models: tokens (prompt tokens in a prefill, generated tokens in decode).
    Tokens,
    /// Vision models (anything with a convolution, incl. ViT's patch embedding, CLIP,
    /// detectors and diffusion pipelines): images.
    Images,
    /// Anything else: one sample per batch element.
    Samples,
}

impl Unit {
    /// Images if the graph convolves, tokens if it embeds token ids, samples otherwise.
    pub fn of(graph: &Graph) -> Unit {
        if graph.nodes.iter().any(|n| matches!(n.op, GraphOp::Conv2d { .. })) {
            Unit::Images
        } else if graph.nodes.iter().any(|n| matches!(n.op, GraphOp::Embedding { .. })) {
            Unit::Tokens
        } else {
            Unit::Samples
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Unit::Tokens => "tokens",
            Unit::Images => "images",
            Unit::Samples => "samples",
        }
    }
    /// How many units the cost is quoted per.
    pub fn block(self) -> f64 {
        match self {
            Unit::Tokens => 1e6,
            _ => 1e3,
        }
    }
    /// `1M tokens`, `1k images`.
    pub fn block_name(self) -> String {
        match self {
            Unit::Tokens => "1M tokens".into(),
            u => format!("1k {}", u.name()),
        }
    }
    /// Column-name form: `1m_tokens`, `1k_images`.
    pub fn block_key(self) -> String {
        self.block_name().to_lowercase().replace(' ', "_")
    }
    /// Units of work in one sample (sequence or image) of a step with `seq_len` new tokens.
    pub fn per_sample(self, seq_len: u64) -> f64 {
        match self {
            Unit::Tokens => seq_len as f64,
            _ => 1.0,
        }
    }
}

/// Units of work per second of a run (`None` when it has no time: out of memory).
pub fn work_per_s(run: &ModelRun, unit: Unit) -> Option<f64> {
    run.throughput_per_s.map(|s| s * unit.per_sample(run.seq_len))
}

/// Dollars per `unit.block()` units at `usd_per_hour` and `work_per_s`.
pub fn usd_per_block(usd_per_hour: f64, work_per_s: f64, unit: Unit) -> f64 {
    usd_per_hour / 3600.0 / work_per_s * unit.block()
}

/// The size of a training run, from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainingRun {
    pub tokens: Option<f64>,
    pub epochs: Option<f64>,
    pub dataset_size: Option<f64>,
}

impl TrainingRun {
    pub fn given(&self) -> bool {
        self.tokens.is_some() || self.epochs.is_some() || self.dataset_size.is_some()
    }

    /// Units of work of the whole run, and the formula in words.
    pub fn work(&self, unit: Unit, seq_len: u64) -> Result<Option<(f64, String)>> {
        match (self.tokens, self.epochs, self.dataset_size) {
            (None, None, None) => Ok(None),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(Error::Usage("give either --train-tokens or --epochs with --dataset-size, not both".into())),
            (Some(t), None, None) => {
                if unit != Unit::Tokens {
                    return Err(Error::Usage(format!(
                        "--train-tokens is for language models; this model's work is {} (use --epochs and --dataset-size)",
                        unit.name()
                    )));
                }
                Ok(Some((t, format!("{} tokens", si(t)))))
            }
            (None, Some(e), Some(d)) => {
                let per = unit.per_sample(seq_len);
                let what = if unit == Unit::Tokens { "sequences" } else { unit.name() };
                let formula = if unit == Unit::Tokens {
                    format!("{e} epochs × {} {what} × {seq_len} tokens = {} tokens", si(d), si(e * d * per))
                } else {
                    format!("{e} epochs × {} {what}", si(d))
                };
                Ok(Some((e * d * per, formula)))
            }
            _ => Err(Error::Usage("--epochs and --dataset-size go together".into())),
        }
    }
}

/// 1.5e12 → "1.5T", 3e8 → "300M".
pub fn si(x: f64) -> String {
    let (v, s) = if x >= 1e12 {
        (x / 1e12, "T")
    } else if x >= 1e9 {
        (x / 1e9, "B")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let t = format!("{v:.2}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    format!("{t}{s}")
}

/// Parses `300B`, `1.5T`, `2e12`, `50000`, `1.2M`, `10k` as a positive number.
pub fn parse_count(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('b' | 'B' | 'g' | 'G') => (&t[..t.len() - 1], 1e9),
        Some('t' | 'T') => (&t[..t.len() - 1], 1e12),
        _ => (t.as_str(), 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * mult),
        _ => Err(format!("'{s}' is not a positive number (examples: 2e12, 300B, 1.5T, 50000, 10k)")),
    }
}

/// Hours at `usd_per_hour` for a run of `work` units at `work_per_s`, and its cost.
pub fn training_cost(work: f64, work_per_s: f64, usd_per_hour: f64) -> (f64, f64) {
    let hours = work / work_per_s / 3600.0;
    (hours, hours * usd_per_hour)
}

/// The cost of one simulated run on one GPU at its cheapest listed price per GPU.
#[derive(Debug, Clone, Serialize)]
pub struct RunCost {
    pub usd_per_gpu_hour: f64,
    /// GPUs the run uses (`--dp` × `--tp` × `--pp`).
    pub gpus: u64,
    /// `usd_per_gpu_hour` × `gpus`.
    pub usd_per_hour: f64,
    pub provider: String,
    pub instance: String,
    pub gpus_per_instance: u32,
    pub region: String,
    pub pricing: String,
    pub price_date: String,
    pub price_source: String,
    pub unit: Unit,
    pub work_per_s: Option<f64>,
    /// Dollars per `unit.block()` units.
    pub usd_per_block: Option<f64>,
    pub block: String,
    pub train_hours: Option<f64>,
    pub train_usd: Option<f64>,
}

/// The cost of `run` on `gpus` GPUs at `price` (the GPU's per-GPU-hour price: an N-GPU
/// instance counts at its price / N, assuming its other GPUs do the same work).
pub fn run_cost(run: &ModelRun, unit: Unit, price: &Price, gpus: u64, training: Option<f64>) -> RunCost {
    let rate = work_per_s(run, unit);
    let usd_h = price.usd_per_gpu_hour() * gpus.max(1) as f64;
    let train = match (training, rate) {
        (Some(w), Some(r)) => Some(training_cost(w, r, usd_h)),
        _ => None,
    };
    RunCost {
        usd_per_gpu_hour: price.usd_per_gpu_hour(),
        gpus: gpus.max(1),
        usd_per_hour: usd_h,
        provider: price.provider.clone(),
        instance: price.instance.clone(),
        gpus_per_instance: price.gpus,
        region: price.region.clone(),
        pricing: price.pricing.clone(),
        price_date: price.as_of.clone(),
        price_source: price.cite.clone().map(|c| format!("{}: {c}", price.source)).unwrap_or_else(|| price.source.clone()),
        unit,
        work_per_s: rate,
        usd_per_block: rate.map(|r| usd_per_block(usd_h, r, unit)),
        block: unit.block_name(),
        train_hours: train.map(|t| t.0),
        train_usd: train.map(|t| t.1),
    }
}

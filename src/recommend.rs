//! `recommend-gpu`: which priced GPU or multi-GPU instance runs a model step most cheaply
//! while fitting in memory and meeting the user's latency, throughput and budget targets.
//!
//! The rule for an instance with N GPUs (kept simple on purpose; stated in the output):
//! * It runs N/t replicas of a t-way tensor-parallel shard, t a power of two dividing N.
//!   t = 1 is plain data parallelism (N copies of the model, each with `--batch-size`);
//!   t > 1 is Megatron tensor parallelism as `benchmark --tp t` simulates it (heads, FFN
//!   and vocabulary split t ways, an NCCL all-reduce after each row-parallel projection,
//!   timed by `kernel::collective` on the instance's node fabric), so memory per GPU and
//!   step time are the shard's own. Every t whose shard fits is tried; the one with the
//!   lowest cost per unit of work that meets the targets is shown.
//! * Inference replicas are independent. Training replicas all-reduce their gradients
//!   (`--dp`: bucketed, overlapped with the backward pass as PyTorch DDP does).
//! * Only single instances are considered (no multi-node jobs). Models the transformer
//!   builder cannot shard (CNNs, ONNX graphs) run unsplit.
//! * Cost per unit of work = instance $/hour ÷ (the instance's work per second).

use crate::cost::{self, Price, PriceBook, Pricing, Unit};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::hw::Registry;
use crate::lower::{Mode, Options, Parallel};
use crate::run::{self, Keep};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the user asks for.
#[derive(Debug, Clone)]
pub struct Request {
    pub batch: u64,
    pub seq_len: u64,
    pub opts: Options,
    /// Work units (tokens, images) per second the instance must sustain.
    pub target_throughput: Option<f64>,
    pub max_latency_ms: Option<f64>,
    /// The most an instance may cost per hour.
    pub budget_usd_per_hour: Option<f64>,
    /// The budget as the user gave it (`$500/month`).
    pub budget_label: String,
    pub pricing: Pricing,
}

/// Why a configuration is not recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Ok,
    TooSlow,
    BelowTarget,
    OverBudget,
    OutOfMemory,
    NotModelled,
}

/// One way of running the step on an instance.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Copies of the (split) model.
    pub replicas: u32,
    pub memory_per_gpu_gb: f64,
    /// Time of one step of one replica, ms (includes `all_reduce_ms`).
    pub latency_ms: f64,
    /// GPU time in collectives (all-reduces) per step, ms.
    pub all_reduce_ms: f64,
    /// Samples (sequences, images) per second of the whole instance.
    pub throughput_per_s: f64,
    /// Work units per second of the whole instance.
    pub work_per_s: f64,
    /// Dollars per `unit.block()` units.
    pub usd_per_block: f64,
    pub failures: Vec<(Verdict, String)>,
}

impl Plan {
    pub fn describe(&self) -> String {
        match (self.tp, self.replicas) {
            (1, 1) => "one copy".into(),
            (1, r) => format!("{r} data-parallel replicas"),
            (t, 1) => format!("{t}-way tensor parallel"),
            (t, r) => format!("{r} replicas × {t}-way tensor parallel"),
        }
    }
}

/// One priced instance shape (GPU × count) with its cheapest listing.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub gpu: String,
    pub gpu_count: u32,
    pub gpu_memory_gb: f64,
    pub price: Price,
    /// Other current listings of the same shape (dearer), `provider instance $/h`.
    pub other_listings: Vec<String>,
    /// The chosen plan (the best that meets the targets, else the closest).
    pub plan: Option<Plan>,
    pub verdict: Verdict,
    pub reason: String,
}

impl Candidate {
    pub fn total_memory_gb(&self) -> f64 {
        self.gpu_memory_gb * self.gpu_count as f64
    }
    pub fn label(&self) -> String {
        format!("{} ×{}", self.gpu, self.gpu_count)
    }
    /// `aws p5.48xlarge, $55.04/h, as of 2026-06-17` (and how close the listed GPU is to
    /// the profile when it is not the same product).
    pub fn price_text(&self) -> String {
        let mut s = format!("{}, ${:.2}/h, {}", self.price.listing(), self.price.usd_per_hour, self.price.dated());
        match self.price.gpu_match.as_str() {
            "exact" => {}
            "related" => s += &format!(", listed GPU only related to the {}", self.gpu),
            "variant-unstated" => s += ", form factor unstated",
            other => s += &format!(", listed GPU: {other}"),
        }
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub unit: Unit,
    /// Configurations that fit and meet every target, best (cheapest per unit) first.
    pub ranked: Vec<Candidate>,
    /// The others, with the reason.
    pub rejected: Vec<Candidate>,
    /// GPUs with no listed price of the chosen kind (not ranked).
    pub unpriced: Vec<String>,
}

/// Ranks every priced instance shape for a model. `build(t)` builds one GPU's shard of the
/// model under `t`-way tensor parallelism (`graph::load_model_tp`) for `req.batch` ×
/// `req.seq_len`; `t = 1` is the whole model.
pub fn recommend(reg: &Registry, build: &(dyn Fn(u64) -> Result<Graph> + Sync), req: &Request, book: &PriceBook) -> Result<Outcome> {
    let whole = build(1)?;
    let unit = Unit::of(&whole);
    let training = req.opts.mode == Mode::Training;
    // Cheapest listing of each (GPU, count).
    let mut shapes: BTreeMap<(String, u32), Vec<&Price>> = BTreeMap::new();
    for p in book.current(req.pricing) {
        shapes.entry((p.gpu.clone(), p.gpus)).or_default().push(p);
    }
    for v in shapes.values_mut() {
        v.sort_by(|a, b| a.usd_per_hour.total_cmp(&b.usd_per_hour).then(b.date_key().cmp(&a.date_key())));
    }
    // One shard per tensor-parallel degree any instance can use.
    let max_n = shapes.keys().map(|k| k.1).max().unwrap_or(1);
    let mut shards: BTreeMap<u32, std::result::Result<Graph, String>> = BTreeMap::new();
    shards.insert(1, Ok(whole));
    let mut t = 2;
    while t <= max_n {
        shards.insert(t, build(t as u64).map_err(|e| e.to_string()));
        t *= 2;
    }
    let per_sample = unit.per_sample(req.seq_len);
    let keys: Vec<(&(String, u32), &Vec<&Price>)> = shapes.iter().collect();
    let evaluated: Vec<Result<Candidate>> = keys
        .par_iter()
        .map(|&((key, n), listings)| -> Result<Candidate> {
            let gpu = reg.gpu(key)?;
            let price = listings[0].clone();
            let other_listings = listings[1..].iter().map(|p| format!("{} ${:.2}/h ({})", p.listing(), p.usd_per_hour, p.dated())).collect();
            let mut cand = Candidate {
                gpu: key.clone(),
                gpu_count: *n,
                gpu_memory_gb: gpu.profile.memory.memory_gb,
                price,
                other_listings,
                plan: None,
                verdict: Verdict::Ok,
                reason: String::new(),
            };
            let over_budget = req.budget_usd_per_hour.filter(|b| cand.price.usd_per_hour > *b);
            let mut plans: Vec<Plan> = Vec::new();
            // The smallest memory per GPU seen, with its split, for the out-of-memory reason.
            let mut least: Option<(f64, u32)> = None;
            let mut cannot_split: Option<String> = None;
            let mut t = 1u32;
            while t <= *n && n % t == 0 {
                let graph = match &shards[&t] {
                    Ok(g) => g,
                    Err(e) => {
                        cannot_split.get_or_insert_with(|| e.clone());
                        break;
                    }
                };
                let replicas = n / t;
                let mut opts = req.opts;
                opts.parallel = Parallel { dp: if training { replicas as u64 } else { 1 }, tp: t as u64, pp: 1, micro_batches: 1, gpus_per_node: *n as u64 };
                let r = match run::run_model(gpu, &reg.templates, graph, req.batch, req.seq_len, opts, Keep::default()) {
                    Ok(r) => r,
                    Err(e) => {
                        cand.verdict = Verdict::NotModelled;
                        cand.reason = format!("cannot be simulated: {e}");
                        return Ok(cand);
                    }
                };
                if least.is_none_or(|(m, _)| r.memory_gb < m) {
                    least = Some((r.memory_gb, t));
                }
                let (Some(latency), Some(samples), Some(tl)) = (r.latency_ms, r.throughput_per_s, r.timeline.as_ref()) else {
                    t *= 2;
                    continue;
                };
                // A run's throughput counts its data-parallel replicas (training); inference
                // replicas are independent copies.
                let samples = samples * if training { 1.0 } else { replicas as f64 };
                let work = samples * per_sample;
                let mut failures = Vec::new();
                if let Some(l) = req.max_latency_ms.filter(|l| latency > *l) {
                    failures.push((Verdict::TooSlow, format!("too slow: {latency:.1} ms per step > {l} ms")));
                }
                if let Some(x) = req.target_throughput.filter(|x| work < *x) {
                    failures.push((Verdict::BelowTarget, format!("below target: {} {}/s < {}", fmt_rate(work), unit.name(), fmt_rate(x))));
                }
                if let Some(b) = over_budget {
                    failures.push((Verdict::OverBudget, format!("too expensive: ${:.2}/h > budget {} (${b:.2}/h)", cand.price.usd_per_hour, req.budget_label)));
                }
                plans.push(Plan {
                    tp: t,
                    replicas,
                    memory_per_gpu_gb: r.memory_gb,
                    latency_ms: latency,
                    all_reduce_ms: tl.by_category.get("collective").map(|c| c.ms).unwrap_or(0.0),
                    throughput_per_s: samples,
                    work_per_s: work,
                    usd_per_block: cost::usd_per_block(cand.price.usd_per_hour, work, unit),
                    failures,
                });
                t *= 2;
            }
            if plans.is_empty() {
                let (need, split) = least.unwrap_or((f64::NAN, 1));
                cand.verdict = Verdict::OutOfMemory;
                cand.reason = if split == 1 {
                    format!("out of memory: needs {need:.1} GiB, has {} GB", cand.gpu_memory_gb)
                } else {
                    format!("out of memory: needs {need:.1} GiB per GPU even split {split} ways, has {} GB", cand.gpu_memory_gb)
                };
                if let (Some(e), true) = (&cannot_split, *n > 1) {
                    cand.reason += &format!(" (not split: {e})");
                }
                return Ok(cand);
            }
            let best_ok = plans.iter().filter(|p| p.failures.is_empty()).min_by(|a, b| a.usd_per_block.total_cmp(&b.usd_per_block)).cloned();
            match best_ok {
                Some(p) => cand.plan = Some(p),
                None => {
                    // The closest: fewest failed targets, then the fastest.
                    let p = plans
                        .iter()
                        .min_by(|a, b| a.failures.len().cmp(&b.failures.len()).then(a.latency_ms.total_cmp(&b.latency_ms)))
                        .cloned()
                        .ok_or_else(|| Error::Usage("no plan".into()))?;
                    cand.verdict = p.failures[0].0;
                    cand.reason = p.failures.iter().map(|f| f.1.clone()).collect::<Vec<_>>().join("; ");
                    if p.tp > 1 || p.replicas > 1 {
                        cand.reason += &format!(" (best split: {})", p.describe());
                    }
                    cand.plan = Some(p);
                }
            }
            Ok(cand)
        })
        .collect();
    let mut ranked = Vec::new();
    let mut rejected = Vec::new();
    for c in evaluated {
        let c = c?;
        if c.verdict == Verdict::Ok {
            ranked.push(c);
        } else {
            rejected.push(c);
        }
    }
    ranked.sort_by(|a, b| {
        let (pa, pb) = (a.plan.as_ref().unwrap(), b.plan.as_ref().unwrap());
        pa.usd_per_block.total_cmp(&pb.usd_per_block).then(a.price.usd_per_hour.total_cmp(&b.price.usd_per_hour))
    });
    rejected.sort_by(|a, b| a.verdict.cmp(&b.verdict).then(a.price.usd_per_hour.total_cmp(&b.price.usd_per_hour)));
    let priced: std::collections::BTreeSet<&str> = shapes.keys().map(|k| k.0.as_str()).collect();
    let unpriced = reg.gpus().map(|g| g.key().to_string()).filter(|k| !priced.contains(k.as_str())).collect();
    Ok(Outcome { unit, ranked, rejected, unpriced })
}

/// 1234.5 → "1,234", 12.345 → "12.3", 0.123 → "0.123".
pub fn fmt_rate(x: f64) -> String {
    if x >= 1000.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Dollars with sensible precision: $0.000234, $0.0123, $1.23, $1,234.
pub fn fmt_usd(x: f64) -> String {
    if x >= 1000.0 {
        format!("${}", fmt_rate(x))
    } else if x >= 1.0 || x <= 0.0 || !x.is_finite() {
        format!("${x:.2}")
    } else {
        // Three significant digits.
        let decimals = (2 - x.log10().floor() as i32).max(2) as usize;
        format!("${x:.decimals$}")
    }
}

/// The targets in words: `latency ≤ 50 ms, ≥ 1,000 tokens/s, budget $500/month`.
pub fn targets_text(req: &Request, unit: Unit) -> String {
    let mut t = Vec::new();
    if let Some(l) = req.max_latency_ms {
        t.push(format!("latency ≤ {l} ms"));
    }
    if let Some(x) = req.target_throughput {
        t.push(format!("≥ {} {}/s", fmt_rate(x), unit.name()));
    }
    if req.budget_usd_per_hour.is_some() {
        t.push(format!("budget {}", req.budget_label));
    }
    if t.is_empty() {
        "no targets given".into()
    } else {
        t.join(", ")
    }
}

/// One line for each of the first `top` choices (why it wins, or what it costs more than #1
/// and what it offers for that) and one per rejected shape (why it loses).
pub fn explain(out: &Outcome, req: &Request, top: usize) -> Vec<String> {
    let unit = out.unit;
    let block = unit.block_name();
    let mut lines = Vec::new();
    let targets = targets_text(req, unit);
    if let Some(first) = out.ranked.first() {
        let p = first.plan.as_ref().unwrap();
        let meets = if targets == "no targets given" { "among those that fit (no targets given)".to_string() } else { format!("that fits and meets {targets}") };
        lines.push(format!(
            "#1 {} ({}): {} per {block}, the lowest cost per unit of work {meets}; {}, {:.1} ms per step, {} {}/s, {:.1} of {} GB per GPU.",
            first.label(),
            first.price_text(),
            fmt_usd(p.usd_per_block),
            p.describe(),
            p.latency_ms,
            fmt_rate(p.work_per_s),
            unit.name(),
            p.memory_per_gpu_gb,
            first.gpu_memory_gb
        ));
        for (i, c) in out.ranked.iter().enumerate().skip(1).take(top.saturating_sub(1)) {
            let q = c.plan.as_ref().unwrap();
            let more = (q.usd_per_block / p.usd_per_block - 1.0) * 100.0;
            let mut gain = Vec::new();
            if q.latency_ms < p.latency_ms * 0.95 {
                gain.push(format!("{:.1}× lower latency ({:.1} ms)", p.latency_ms / q.latency_ms, q.latency_ms));
            }
            if q.work_per_s > p.work_per_s * 1.05 {
                gain.push(format!("{:.1}× the throughput ({} {}/s)", q.work_per_s / p.work_per_s, fmt_rate(q.work_per_s), unit.name()));
            }
            lines.push(format!(
                "#{} {} ({}): {} per {block}, {more:.0}% more than #1{}; {}.",
                i + 1,
                c.label(),
                c.price_text(),
                fmt_usd(q.usd_per_block),
                if gain.is_empty() { String::new() } else { format!(", but {}", gain.join(" and ")) },
                q.describe()
            ));
        }
    } else {
        lines.push(format!("No priced configuration fits and meets {targets}."));
        // The nearest misses: what it would take.
        let over_budget: Vec<&Candidate> = out.rejected.iter().filter(|c| c.verdict == Verdict::OverBudget && c.plan.as_ref().is_some_and(|p| p.failures.len() == 1)).collect();
        if let Some(c) = over_budget.iter().min_by(|a, b| a.price.usd_per_hour.total_cmp(&b.price.usd_per_hour)) {
            lines.push(format!(
                "The cheapest that fits and meets the other targets is {} ({}): raise the budget to at least ${:.2}/h (${:.0}/month).",
                c.label(),
                c.price_text(),
                c.price.usd_per_hour,
                c.price.usd_per_hour * HOURS_PER_MONTH
            ));
        } else if let Some(c) = out.rejected.iter().filter(|c| c.plan.is_some()).min_by(|a, b| a.plan.as_ref().unwrap().latency_ms.total_cmp(&b.plan.as_ref().unwrap().latency_ms)) {
            let p = c.plan.as_ref().unwrap();
            lines.push(format!("The fastest that fits is {} ({}): {:.1} ms per step, {} {}/s ({}).", c.label(), c.price_text(), p.latency_ms, fmt_rate(p.work_per_s), unit.name(), p.describe()));
        }
    }
    if !out.rejected.is_empty() {
        lines.push("Not recommended:".into());
        for c in &out.rejected {
            lines.push(format!("  {} ({}): {}.", c.label(), c.price_text(), c.reason));
        }
    }
    if !out.unpriced.is_empty() {
        lines.push(format!(
            "No listed {} price, not ranked: {} (add rows with --prices FILE).",
            req.pricing.name(),
            out.unpriced.join(", ")
        ));
    }
    lines
}

/// Hours in an average month (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

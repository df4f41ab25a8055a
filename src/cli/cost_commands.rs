//! Cost commands: `benchmark`/`compare-models` with `--include-cost`, `--plot` and
//! `--html`; `recommend-gpu`; `list-prices`. The logic is in `crate::cost`,
//! `crate::recommend` and `crate::report`; this file parses and prints.

use super::model_commands::{run_row, RunArgs, RUN_HEADERS};
use crate::cost::{self, Price, PriceBook, Pricing, RunCost, TrainingRun, Unit};
use crate::error::{Error, Result};
use crate::graph::{self, Graph};
use crate::hw::{Gpu, Registry};
use crate::recommend::{self, Request};
use crate::report::html::{self, Block};
use crate::report::plot::{self, Chart, LineChart, Series, StackedBars};
use crate::report::{num, text, Format, Table};
use crate::run::{self, ModelRun};
use crate::sim::scheduler;
use clap::Args;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where prices come from.
#[derive(Args, Debug, Clone, Default)]
pub struct PriceFlags {
    /// Add or override cloud prices from a TOML file in the layout of prices/cloud.toml
    /// (rows replace the built-in rows of the same provider, instance and pricing). May be
    /// repeated.
    #[arg(long = "prices", value_name = "FILE")]
    pub prices: Vec<PathBuf>,
    /// Which prices to use.
    #[arg(long, value_enum, default_value = "on-demand")]
    pub pricing: Pricing,
}

impl PriceFlags {
    fn book(&self, reg: &Registry) -> Result<PriceBook> {
        let book = PriceBook::load(reg, &self.prices)?;
        for w in &book.warnings {
            eprintln!("warning: {w}");
        }
        Ok(book)
    }
}

fn count(s: &str) -> std::result::Result<f64, String> {
    cost::parse_count(s)
}

/// Cost columns on `benchmark` and `compare-models`.
#[derive(Args, Debug, Clone, Default)]
pub struct CostFlags {
    /// Add cost columns: the cheapest listed price per GPU (with provider and price date),
    /// $ per 1M tokens (language models) or per 1k images (vision models).
    #[arg(long)]
    pub include_cost: bool,
    #[command(flatten)]
    pub prices: PriceFlags,
    /// Cost of a training run of this many tokens (with --mode training; 300B, 2e12 ...).
    #[arg(long, value_name = "TOKENS", value_parser = count)]
    pub train_tokens: Option<f64>,
    /// Cost of a training run of this many epochs over --dataset-size samples.
    #[arg(long, value_parser = count)]
    pub epochs: Option<f64>,
    /// Samples (sequences or images) in one epoch.
    #[arg(long, value_name = "SAMPLES", value_parser = count)]
    pub dataset_size: Option<f64>,
}

impl CostFlags {
    fn training(&self) -> TrainingRun {
        TrainingRun { tokens: self.train_tokens, epochs: self.epochs, dataset_size: self.dataset_size }
    }
    /// Whether the cost path runs (cost columns were asked for).
    pub fn active(&self) -> bool {
        self.include_cost || self.training().given()
    }
}

/// Plots and the HTML report on `compare-models`.
#[derive(Args, Debug, Clone, Default)]
pub struct ReportFlags {
    /// Write SVG charts: throughput against batch size per GPU, cost per unit of work, and
    /// the step time by kernel kind.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Write a self-contained HTML report (tables and charts, no external resources).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
}

impl ReportFlags {
    pub fn active(&self) -> bool {
        self.plot.is_some() || self.html.is_some()
    }
}

/// Budget period of `recommend-gpu --budget`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Per {
    Hour,
    Month,
}

/// `recommend-gpu` arguments (besides the run flags).
#[derive(Args, Debug, Clone)]
pub struct RecommendFlags {
    /// Work per second the instance must sustain: tokens/s for language models, images/s
    /// for vision models.
    #[arg(long, value_parser = count)]
    pub target_throughput: Option<f64>,
    /// Longest acceptable step, ms (a whole prefill, or one decode step with --seq-len 1).
    #[arg(long)]
    pub max_latency_ms: Option<f64>,
    /// The most an instance may cost, USD per --per.
    #[arg(long)]
    pub budget: Option<f64>,
    #[arg(long, value_enum, default_value = "hour")]
    pub per: Per,
    /// How many recommendations to show.
    #[arg(long, default_value = "10")]
    pub top: usize,
    #[command(flatten)]
    pub prices: PriceFlags,
}

pub(super) fn write_file(path: &Path, content: &str) -> Result<()> {
    std::fs::write(path, content).map_err(|e| Error::Write { path: path.to_path_buf(), source: e })
}

fn load_graph(model: &str, args: &RunArgs, batch: u64) -> Result<(crate::graph::transformer::Workload, Graph)> {
    let wl = args.workload(model, batch)?;
    let g = graph::load_model_tp(model, wl, args.parallel.tp)?;
    for w in &g.warnings {
        eprintln!("warning: {w}");
    }
    Ok((wl, g))
}

// ---------------------------------------------------------------------------------------
// Cost columns
// ---------------------------------------------------------------------------------------

/// The cost of every run at its GPU's cheapest listed price (`None` without a price).
/// `gpus` is how many GPUs each run uses (`--dp` × `--tp` × `--pp`).
fn costs(runs: &[ModelRun], units: &[Unit], train: &[Option<f64>], book: &PriceBook, pricing: Pricing, gpus: u64) -> Vec<Option<RunCost>> {
    runs.iter()
        .zip(units)
        .zip(train)
        .map(|((r, u), t)| book.cheapest_per_gpu(&r.gpu, pricing).map(|p| cost::run_cost(r, *u, p, gpus, *t)))
        .collect()
}

/// Run columns plus cost columns.
fn cost_table(runs: &[ModelRun], units: &[Unit], costs: &[Option<RunCost>], with_training: bool) -> Table {
    let same: BTreeSet<Unit> = units.iter().copied().collect();
    let single = (same.len() == 1).then(|| units[0]);
    let mut headers: Vec<String> = RUN_HEADERS.iter().map(|s| s.to_string()).collect();
    headers.extend(["usd_per_gpu_hour", "price_listing", "price_date"].map(String::from));
    match single {
        Some(u) => headers.extend([format!("{}_per_s", u.name()), format!("usd_per_{}", u.block_key())]),
        None => headers.extend(["work_per_s", "work_unit", "usd_per_work", "work"].map(String::from)),
    }
    if with_training {
        headers.extend(["train_hours", "train_usd"].map(String::from));
    }
    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut t = Table::new(&h);
    for ((r, u), c) in runs.iter().zip(units).zip(costs) {
        let mut row = run_row(r);
        let opt = |x: Option<f64>| x.map(num).unwrap_or(Value::Null);
        match c {
            Some(c) => {
                let listing = format!("{} {} ({} GPU{})", c.provider, c.instance, c.gpus_per_instance, if c.gpus_per_instance > 1 { "s" } else { "" });
                row.extend([num(c.usd_per_gpu_hour), text(listing), text(&c.price_date)]);
            }
            None => row.extend([Value::Null, text("no listed price"), Value::Null]),
        }
        let rate = cost::work_per_s(r, *u);
        let per_block = c.as_ref().and_then(|c| c.usd_per_block);
        match single {
            Some(_) => row.extend([opt(rate), opt(per_block)]),
            None => row.extend([opt(rate), text(format!("{}/s", u.name())), opt(per_block), text(u.block_name())]),
        }
        if with_training {
            row.extend([opt(c.as_ref().and_then(|c| c.train_hours)), opt(c.as_ref().and_then(|c| c.train_usd))]);
        }
        t.push(row);
    }
    t
}

/// The notes printed under a cost table: where prices come from (with dates) and the
/// formulas.
fn cost_notes(runs: &[ModelRun], units: &[Unit], book: &PriceBook, pricing: Pricing, train_formulas: &BTreeSet<String>, gpus: u64) -> Vec<String> {
    let mut lines = Vec::new();
    lines.push(format!(
        "Prices: the cheapest current {} listing per GPU, as the price per GPU-hour (an N-GPU instance at its price / N, which assumes its other GPUs do the same work); price_date is the date its source gives. Prices change often.",
        pricing.name()
    ));
    let mut used: BTreeMap<String, &Price> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for r in runs {
        match book.cheapest_per_gpu(&r.gpu, pricing) {
            Some(p) => {
                used.insert(r.gpu.clone(), p);
            }
            None => {
                missing.insert(r.gpu.clone());
            }
        }
    }
    let mut sources = BTreeMap::new();
    for (gpu, p) in &used {
        let mut line = format!(
            "  {gpu}: {} {} in {}, {}/h for {} GPU{} = {}/GPU-hour, {}, {}",
            p.provider,
            p.instance,
            p.region,
            recommend::fmt_usd(p.usd_per_hour),
            p.gpus,
            if p.gpus > 1 { "s" } else { "" },
            recommend::fmt_usd(p.usd_per_gpu_hour()),
            p.pricing,
            p.dated()
        );
        if p.gpu_match != "exact" {
            line += &format!(" (the listed GPU is {} to the {gpu} profile)", p.gpu_match);
        }
        line += &format!("; source {}", p.source);
        lines.push(line);
        sources.insert(p.source.clone(), p.cite.clone());
    }
    for (tag, cite) in sources {
        if let Some(c) = cite {
            lines.push(format!("  [{tag}] {c}"));
        }
    }
    if !missing.is_empty() {
        lines.push(format!("No listed {} price: {} (add rows with --prices FILE).", pricing.name(), missing.into_iter().collect::<Vec<_>>().join(", ")));
    }
    if gpus > 1 {
        lines.push(format!("Each run uses {gpus} GPUs (--dp × --tp × --pp): its $/hour, and so its $ per unit of work and training cost, is {gpus} × the $/GPU-hour shown."));
    }
    let us: BTreeSet<Unit> = units.iter().copied().collect();
    for u in us {
        let rate = if u == Unit::Tokens { "tokens/s = samples/s × seq_len (new tokens per sequence in the step)".to_string() } else { format!("{}/s = samples/s", u.name()) };
        lines.push(format!("$ per {} = $/GPU-hour ÷ 3600 ÷ {}/s × {}; {rate}.", u.block_name(), u.name(), cost::si(u.block())));
    }
    for f in train_formulas {
        lines.push(format!("Training run: {f}; hours = that work ÷ the work per second of one GPU ÷ 3600; cost = hours × $/GPU-hour (N GPUs that scaled perfectly would take 1/N of the hours at the same cost). Only the steps are counted: no data loading, evaluation, checkpoints or idle time."));
    }
    lines
}

/// Per graph: its unit of work and the work of the training run; and the formulas in words.
type TrainingWork = (Vec<Unit>, Vec<Option<f64>>, BTreeSet<String>);

/// Units, training work and formulas for a list of graphs.
fn training_work(graphs: &[(crate::graph::transformer::Workload, Graph)], training: &TrainingRun, mode: crate::lower::Mode) -> Result<TrainingWork> {
    if training.given() && mode != crate::lower::Mode::Training {
        return Err(Error::Usage("--train-tokens, --epochs and --dataset-size need --mode training".into()));
    }
    let mut units = Vec::new();
    let mut work = Vec::new();
    let mut formulas = BTreeSet::new();
    for (wl, g) in graphs {
        let u = Unit::of(g);
        let w = training.work(u, wl.seq_len)?;
        if let Some((_, f)) = &w {
            formulas.insert(format!("{}: {f}", g.name));
        }
        units.push(u);
        work.push(w.map(|x| x.0));
    }
    Ok((units, work, formulas))
}

/// `benchmark --include-cost`.
#[allow(clippy::too_many_arguments)]
pub fn benchmark(reg: &Registry, model: &str, gpus: &[String], batch: u64, args: &RunArgs, timeline: Option<&PathBuf>, flags: &CostFlags, format: Format) -> Result<String> {
    let opts = args.options()?;
    let graphs = vec![load_graph(model, args, batch)?];
    let (wl, g) = &graphs[0];
    let (units, train, formulas) = training_work(&graphs, &flags.training(), opts.mode)?;
    let book = flags.prices.book(reg)?;
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    let runs: Vec<ModelRun> = gpus
        .iter()
        .map(|gpu| run::run_model(gpu, &reg.templates, g, wl.batch, wl.seq_len, opts, run::Keep { time_even_if_oom: false, kernels: timeline.is_some() }))
        .collect::<Result<_>>()?;
    if let Some(path) = timeline {
        let tls: Vec<_> = runs.iter().filter_map(|r| r.timeline.clone()).collect();
        write_file(path, &serde_json::to_string(&scheduler::chrome_trace(&tls)).unwrap_or_default())?;
        eprintln!("timeline written to {} (open it in https://ui.perfetto.dev)", path.display());
    }
    let units = vec![units[0]; runs.len()];
    let train = vec![train[0]; runs.len()];
    let costs = costs(&runs, &units, &train, &book, flags.prices.pricing, opts.parallel.gpus());
    if format == Format::Json {
        let list: Vec<Value> = runs
            .iter()
            .zip(&costs)
            .map(|(r, c)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.remove("timeline");
                    if let Some(tl) = &r.timeline {
                        obj.insert("breakdown".into(), serde_json::to_value(&tl.by_category).unwrap_or_default());
                        obj.insert("by_phase".into(), serde_json::to_value(&tl.by_phase).unwrap_or_default());
                        obj.insert("step_ms".into(), num(tl.step_ms));
                        obj.insert("host_ms".into(), num(tl.host_ms));
                    }
                    obj.insert("cost".into(), serde_json::to_value(c).unwrap_or_default());
                }
                v
            })
            .collect();
        let v = if list.len() == 1 { list[0].clone() } else { Value::Array(list) };
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let t = cost_table(&runs, &units, &costs, flags.training().given());
    let mut out = t.render(format);
    if matches!(format, Format::Table | Format::Markdown) {
        out += "\n";
        for l in cost_notes(&runs, &units, &book, flags.prices.pricing, &formulas, opts.parallel.gpus()) {
            out += &l;
            out += if format == Format::Markdown { "  \n" } else { "\n" };
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// compare-models with cost, plots, HTML
// ---------------------------------------------------------------------------------------

/// Kernel kinds in a fixed order (so a kind keeps its colour across charts).
const KINDS: &[&str] = &["gemm", "attention", "conv", "elementwise", "softmax", "norm", "embedding", "collective"];
const IDLE: &str = "idle (host or dependency wait)";

/// Per model: throughput against batch size, cost per unit of work against batch size
/// (priced GPUs), and the step time by kernel kind of every run that fits.
fn charts(runs: &[ModelRun], units: &[Unit], costs: &[Option<RunCost>], models: &[String]) -> Vec<(String, Chart)> {
    // One colour per GPU across all charts.
    let mut gpu_order: Vec<String> = Vec::new();
    for r in runs {
        if !gpu_order.contains(&r.gpu) {
            gpu_order.push(r.gpu.clone());
        }
    }
    let colour = |g: &str| gpu_order.iter().position(|x| x == g).unwrap_or(0);
    let mut out = Vec::new();
    for m in models {
        let idx: Vec<usize> = (0..runs.len()).filter(|&i| &runs[i].model == m).collect();
        let Some(&first) = idx.first() else { continue };
        let unit = units[first];
        let mut thr = Vec::new();
        let mut cst = Vec::new();
        for g in &gpu_order {
            let pts: Vec<usize> = idx.iter().copied().filter(|&i| &runs[i].gpu == g).collect();
            if pts.is_empty() {
                continue;
            }
            thr.push(Series { name: g.clone(), color: colour(g), points: pts.iter().filter_map(|&i| cost::work_per_s(&runs[i], unit).map(|w| (runs[i].batch as f64, w))).collect() });
            if let Some(c) = pts.first().and_then(|&i| costs[i].as_ref()) {
                cst.push(Series {
                    name: format!("{g} (${:.3}/GPU-h, {})", c.usd_per_gpu_hour, c.price_date),
                    color: colour(g),
                    points: pts.iter().filter_map(|&i| costs[i].as_ref().and_then(|c| c.usd_per_block).map(|u| (runs[i].batch as f64, u))).collect(),
                });
            }
        }
        let precision = &runs[first].precision;
        let seq = if unit == Unit::Tokens { format!(", {} tokens per sequence", runs[first].seq_len) } else { String::new() };
        out.push((m.clone(), Chart::Line(LineChart {
            title: format!("{m}: throughput by batch size ({precision}{seq})"),
            x_label: "batch size (log scale)".into(),
            y_label: format!("{}/s (log scale)", unit.name()),
            series: thr,
        })));
        if !cst.is_empty() {
            out.push((m.clone(), Chart::Line(LineChart {
                title: format!("{m}: cost per {} at the cheapest listed price", unit.block_name()),
                x_label: "batch size (log scale)".into(),
                y_label: format!("USD per {} (log scale)", unit.block_name()),
                series: cst,
            })));
        }
        let fitting: Vec<usize> = idx.iter().copied().filter(|&i| runs[i].timeline.is_some()).collect();
        if fitting.is_empty() {
            continue;
        }
        let mut cats: Vec<String> = KINDS.iter().map(|s| s.to_string()).collect();
        for &i in &fitting {
            for k in runs[i].timeline.as_ref().unwrap().by_category.keys() {
                if !cats.iter().any(|c| c == k) {
                    cats.push(k.to_string());
                }
            }
        }
        cats.push(IDLE.into());
        let bars = fitting
            .iter()
            .map(|&i| {
                let r = &runs[i];
                let tl = r.timeline.as_ref().unwrap();
                let mut segs: Vec<(String, f64)> = cats.iter().filter_map(|c| tl.by_category.get(c.as_str()).map(|t| (c.clone(), t.ms))).collect();
                segs.push((IDLE.into(), (tl.step_ms - tl.gpu_busy_ms).max(0.0)));
                (format!("{} · batch {}", r.gpu, r.batch), segs)
            })
            .collect();
        out.push((m.clone(), Chart::Bars(StackedBars {
            title: format!("{m}: where a step's time goes, by kernel kind"),
            x_label: "ms per step (kernel time by kind; idle = step − GPU busy)".into(),
            categories: cats,
            bars,
        })));
    }
    out
}

/// `compare-models` with `--include-cost`, `--plot` or `--html`.
#[allow(clippy::too_many_arguments)]
pub fn compare_models(reg: &Registry, models: &[String], gpus: &[String], batches: &[u64], args: &RunArgs, flags: &CostFlags, report: &ReportFlags, format: Format) -> Result<String> {
    let opts = args.options()?;
    let gpus: Vec<&Gpu> = gpus.iter().map(|n| reg.gpu(n)).collect::<Result<_>>()?;
    let mut graphs = Vec::new();
    for m in models {
        for &b in batches {
            graphs.push(load_graph(m, args, b)?);
        }
    }
    let (g_units, g_train, formulas) = training_work(&graphs, &flags.training(), opts.mode)?;
    let book = flags.prices.book(reg)?;
    let runs = run::sweep(reg, &graphs, &gpus, opts)?;
    // `sweep` returns graphs outermost, GPUs innermost.
    let units: Vec<Unit> = (0..runs.len()).map(|k| g_units[k / gpus.len()]).collect();
    let train: Vec<Option<f64>> = (0..runs.len()).map(|k| g_train[k / gpus.len()]).collect();
    let costs = costs(&runs, &units, &train, &book, flags.prices.pricing, opts.parallel.gpus());
    let with_training = flags.training().given();
    let cost_t = cost_table(&runs, &units, &costs, with_training);
    let plain_t = {
        let mut t = Table::new(RUN_HEADERS);
        for r in &runs {
            t.push(run_row(r));
        }
        t
    };
    let notes = cost_notes(&runs, &units, &book, flags.prices.pricing, &formulas, opts.parallel.gpus());
    let model_names: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for r in &runs {
            if !v.contains(&r.model) {
                v.push(r.model.clone());
            }
        }
        v
    };
    if report.active() {
        let all = charts(&runs, &units, &costs, &model_names);
        if let Some(path) = &report.plot {
            let charts: Vec<Chart> = all.iter().map(|(_, c)| c.clone()).collect();
            write_file(path, &plot::page_svg(&charts)?)?;
            eprintln!("plot written to {}", path.display());
        }
        if let Some(path) = &report.html {
            let mut blocks = vec![Block::Paragraph(format!(
                "Predicted by PhantomGPU's simulator (not measured): models {}; GPUs {}; batch sizes {}; precision {}, {:?}, {:?} execution{}.",
                models.join(", "),
                gpus.iter().map(|g| g.key()).collect::<Vec<_>>().join(", "),
                batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
                opts.precision.name(),
                opts.mode,
                opts.execution,
                args.seq_len.map(|s| format!(", {s} tokens per sequence")).unwrap_or_default()
            ))];
            blocks.push(Block::Paragraph(
                "For each model: a table of every run (runs that do not fit in memory say OOM and have no time), throughput against batch size on each GPU, cost per unit of work at each GPU's cheapest listed price (with the price's date), and the step time by kernel kind.".into(),
            ));
            for m in &model_names {
                let idx: Vec<usize> = (0..runs.len()).filter(|&i| &runs[i].model == m).collect();
                let pick = |v: &[ModelRun]| idx.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
                let (m_runs, m_units, m_costs): (Vec<ModelRun>, Vec<Unit>, Vec<Option<RunCost>>) =
                    (pick(&runs), idx.iter().map(|&i| units[i]).collect(), idx.iter().map(|&i| costs[i].clone()).collect());
                let first = &m_runs[0];
                blocks.push(Block::Heading(format!("{m}: {:.1} M parameters, {} tokens per sequence, {}", first.params as f64 / 1e6, first.seq_len, first.precision)));
                let t = cost_table(&m_runs, &m_units, &m_costs, with_training).without(&["model", "seq_len", "precision", "gpu_memory_gb", "throughput_per_s"]);
                blocks.push(Block::Table(t));
                for (_, c) in all.iter().filter(|(cm, _)| cm == m) {
                    blocks.push(Block::Svg(c.svg()?));
                }
            }
            blocks.push(Block::Heading("Prices and formulas".into()));
            blocks.push(Block::List(notes.iter().map(|l| l.trim().to_string()).collect()));
            blocks.push(Block::Paragraph(format!(
                "Generated by phantom-gpu {}. Times, memory and throughput are the simulator's predictions for one step, not measurements; see the project's validation report for how far they are from real runs.",
                env!("CARGO_PKG_VERSION")
            )));
            write_file(path, &html::page("PhantomGPU report: compare-models", &blocks))?;
            eprintln!("HTML report written to {}", path.display());
        }
    }
    let t = if flags.active() { &cost_t } else { &plain_t };
    let mut out = t.render(format);
    if flags.active() && matches!(format, Format::Table | Format::Markdown) {
        out += "\n";
        for l in &notes {
            out += l;
            out += if format == Format::Markdown { "  \n" } else { "\n" };
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// recommend-gpu
// ---------------------------------------------------------------------------------------

pub fn recommend_gpu(reg: &Registry, model: &str, batch: u64, args: &RunArgs, flags: &RecommendFlags, format: Format) -> Result<String> {
    let opts = args.options()?;
    let p = args.parallel;
    if p.dp != 1 || p.tp != 1 || p.pp != 1 || p.micro_batches != 1 {
        return Err(Error::Usage("recommend-gpu chooses the data- and tensor-parallel split of each instance itself: leave out --dp, --tp, --pp and --micro-batches".into()));
    }
    let (wl, g) = load_graph(model, args, batch)?;
    if let Some(b) = flags.budget {
        if !(b.is_finite() && b > 0.0) {
            return Err(Error::Usage(format!("--budget must be a positive amount of USD, not {b}")));
        }
    }
    if let Some(l) = flags.max_latency_ms {
        if !(l.is_finite() && l > 0.0) {
            return Err(Error::Usage(format!("--max-latency-ms must be positive, not {l}")));
        }
    }
    let (budget_usd_per_hour, budget_label) = match (flags.budget, flags.per) {
        (None, _) => (None, String::new()),
        (Some(b), Per::Hour) => (Some(b), format!("${b}/hour")),
        (Some(b), Per::Month) => (Some(b / recommend::HOURS_PER_MONTH), format!("${b}/month")),
    };
    let req = Request {
        batch: wl.batch,
        seq_len: wl.seq_len,
        opts,
        target_throughput: flags.target_throughput,
        max_latency_ms: flags.max_latency_ms,
        budget_usd_per_hour,
        budget_label,
        pricing: flags.prices.pricing,
    };
    let book = flags.prices.book(reg)?;
    let build = |t: u64| if t == 1 { Ok(g.clone()) } else { graph::load_model_tp(model, wl, t) };
    let out = recommend::recommend(reg, &build, &req, &book)?;
    let unit = out.unit;
    let block = unit.block_key();
    let mut t = Table::new(&[
        "rank",
        "gpu",
        "gpu_count",
        "split",
        "tensor_parallel",
        "replicas",
        "provider",
        "instance",
        "region",
        "pricing",
        "price_date",
        "gpu_match",
        "cost_per_hour",
        "total_memory_gb",
        "memory_per_gpu_gb",
        "latency_ms",
        "throughput_per_s",
        &format!("{}_per_s", unit.name()),
        &format!("usd_per_{block}"),
        "all_reduce_ms",
        "why",
    ]);
    // Every listed row gets its line in JSON/CSV; the text shows the first five.
    let why = recommend::explain(&out, &req, flags.top.max(1));
    for (i, c) in out.ranked.iter().take(flags.top.max(1)).enumerate() {
        let p = c.plan.as_ref().unwrap();
        t.push(vec![
            Value::from(i + 1),
            text(&c.gpu),
            Value::from(c.gpu_count),
            text(p.describe()),
            Value::from(p.tp),
            Value::from(p.replicas),
            text(&c.price.provider),
            text(&c.price.instance),
            text(&c.price.region),
            text(&c.price.pricing),
            text(&c.price.as_of),
            text(&c.price.gpu_match),
            num(c.price.usd_per_hour),
            num(c.total_memory_gb()),
            num(p.memory_per_gpu_gb),
            num(p.latency_ms),
            num(p.throughput_per_s),
            num(p.work_per_s),
            num(p.usd_per_block),
            num(p.all_reduce_ms),
            text(why.iter().find(|l| l.starts_with(&format!("#{} ", i + 1))).cloned().unwrap_or_default()),
        ]);
    }
    if matches!(format, Format::Json | Format::Csv) {
        if out.ranked.is_empty() {
            for l in &why {
                eprintln!("{l}");
            }
        }
        return Ok(t.render(format));
    }
    let mut s = format!(
        "{} ({}, batch {} × {} {}, {:?}): priced GPUs and instances that fit, ranked by cost per {}.\n\n",
        g.name,
        opts.precision.name(),
        wl.batch,
        if unit == Unit::Tokens { wl.seq_len } else { 1 },
        if unit == Unit::Tokens { "tokens" } else { unit.name() },
        opts.mode,
        unit.block_name()
    );
    let nl = if format == Format::Markdown { "  \n" } else { "\n" };
    if !out.ranked.is_empty() {
        s += &t.without(&["why", "tensor_parallel", "replicas", "region", "pricing", "gpu_match", "throughput_per_s"]).render(format);
        s += "\n";
    }
    let ranked_lines = why.iter().filter(|l| l.starts_with('#')).count();
    for (k, l) in why.iter().enumerate() {
        // The first five ranked lines, then every reason a shape loses.
        if l.starts_with('#') && k >= 5 && ranked_lines > 5 {
            continue;
        }
        s += l;
        s += nl;
    }
    s += &format!(
        "{nl}Rule: an N-GPU instance runs N/t copies of a t-way tensor-parallel shard (t a power of two dividing N; every t whose shard fits is simulated and the cheapest per unit of work that meets the targets is shown). A shard is simulated as `benchmark --tp t --gpus-per-node N` does: Megatron split of heads, FFN and vocabulary with NCCL all-reduces on the instance's node fabric; its memory per GPU and step time are its own. Inference copies are independent; training copies all-reduce their gradients (`--dp`). One instance, no multi-node jobs; models the builder cannot shard (CNNs, ONNX) run unsplit. Cost per {} = instance $/h ÷ 3600 ÷ ({}/s of the instance) × {}. Prices are the cheapest current {} listing of each GPU × count, dated as shown.{nl}",
        unit.block_name(),
        unit.name(),
        cost::si(unit.block()),
        req.pricing.name()
    );
    Ok(s)
}

// ---------------------------------------------------------------------------------------
// list-prices
// ---------------------------------------------------------------------------------------

pub fn list_prices(reg: &Registry, gpus: &[String], flags: &PriceFlags, format: Format) -> Result<String> {
    let book = flags.book(reg)?;
    let wanted: Vec<String> = gpus.iter().map(|g| reg.gpu(g).map(|x| x.key().to_string())).collect::<Result<_>>()?;
    let mut t = Table::new(&[
        "gpu",
        "provider",
        "instance",
        "gpus",
        "usd_per_hour",
        "usd_per_gpu_hour",
        "region",
        "pricing",
        "as_of",
        "current",
        "gpu_match",
        "confidence",
        "source",
        "origin",
    ]);
    let mut rows: Vec<&Price> = book.prices.iter().filter(|p| flags.pricing.admits(&p.pricing) && (wanted.is_empty() || wanted.contains(&p.gpu))).collect();
    rows.sort_by(|a, b| a.gpu.cmp(&b.gpu).then(a.usd_per_gpu_hour().total_cmp(&b.usd_per_gpu_hour())));
    for p in &rows {
        let current = match book.superseded_by(p) {
            None => "yes".to_string(),
            Some(newer) => format!("superseded ({})", newer.as_of),
        };
        t.push(vec![
            text(&p.gpu),
            text(&p.provider),
            text(&p.instance),
            Value::from(p.gpus),
            num(p.usd_per_hour),
            num(p.usd_per_gpu_hour()),
            text(&p.region),
            text(&p.pricing),
            text(&p.as_of),
            text(current),
            text(&p.gpu_match),
            text(&p.confidence),
            text(p.cite.as_ref().map(|c| format!("{}: {c}", p.source)).unwrap_or_else(|| p.source.clone())),
            text(&p.origin),
        ]);
    }
    if !matches!(format, Format::Table | Format::Markdown) {
        return Ok(t.render(format));
    }
    let mut s = t.without(&["source", "origin"]).render(format);
    let nl = if format == Format::Markdown { "  \n" } else { "\n" };
    s += nl;
    s += &format!("Sources (every row's source is in --format json/csv, with the file and line it came from):{nl}");
    let mut seen = BTreeSet::new();
    for p in &rows {
        if seen.insert(p.source.clone()) {
            s += &format!("  [{}] {}{nl}", p.source, p.cite.clone().unwrap_or_else(|| "(no citation)".into()));
        }
    }
    s += &format!("Commands use the latest dated row of each (provider, instance, pricing); rows marked superseded are kept for the record.{nl}");
    Ok(s)
}

//! LLM generation (`benchmark --prompt-len P --output-len O`) and the serving simulation
//! (`serve-sim`): flags and printing only; the logic is in `crate::serve`.

use super::RunFlags;
use crate::error::{Error, Result};
use crate::hw::{Gpu, Registry};
use crate::lower::{AttentionImpl, Execution, Options, Precision};
use crate::report::plot::{self, BarGroup, BarPanel, Chart, Panels};
use crate::report::{num, text, Format, Table};
use crate::serve::sim::{self, Latency, LenDist, SimConfig, SimResult};
use crate::serve::{self, Engine, Generation};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

/// The flags that turn `benchmark` into a whole generation.
#[derive(Args, Debug, Clone, Default)]
pub struct LlmFlags {
    /// Prompt tokens per sequence. With --output-len: simulate a whole generation (TTFT,
    /// TPOT, decode tokens/s, end-to-end latency, peak memory) instead of one step.
    #[arg(long)]
    pub prompt_len: Option<u64>,
    /// Tokens to generate per sequence (with --prompt-len).
    #[arg(long)]
    pub output_len: Option<u64>,
    /// KV-cache dtype: fp16, bf16 or fp8 (default: the activation dtype). With
    /// --prompt-len/--output-len.
    #[arg(long)]
    pub kv_dtype: Option<String>,
}

impl LlmFlags {
    /// Whether a generation was asked for.
    pub fn active(&self) -> bool {
        self.prompt_len.is_some() || self.output_len.is_some() || self.kv_dtype.is_some()
    }
}

/// `serve-sim`'s flags.
#[derive(Args, Debug, Clone)]
pub struct ServeSimArgs {
    #[arg(long)]
    pub model: String,
    /// GPU key or alias; several separated by commas.
    #[arg(long, value_delimiter = ',', required = true)]
    pub gpu: Vec<String>,
    /// Mean request arrival rate, requests per second (Poisson arrivals).
    #[arg(long)]
    pub rate: f64,
    /// Mean prompt tokens per request.
    #[arg(long)]
    pub prompt_len: u64,
    /// Mean output tokens per request.
    #[arg(long)]
    pub output_len: u64,
    /// How prompt lengths vary: fixed, uniform (½ to 1½ × the mean), exp (exponential).
    #[arg(long, value_enum, default_value = "fixed")]
    pub prompt_len_dist: LenDist,
    /// How output lengths vary (as --prompt-len-dist).
    #[arg(long, value_enum, default_value = "fixed")]
    pub output_len_dist: LenDist,
    /// Requests to simulate.
    #[arg(long, default_value = "1000")]
    pub requests: u64,
    /// Most requests running at once (vLLM's max_num_seqs).
    #[arg(long, default_value = "256")]
    pub max_batch: u64,
    /// Most prompt tokens per prefill step (default: the model's context, at least 2048).
    #[arg(long)]
    pub max_batched_tokens: Option<u64>,
    /// KV-cache memory in GiB (default: 90% of the GPU's memory minus weights, the largest
    /// prefill's activations, workspace and context).
    #[arg(long)]
    pub kv_budget_gb: Option<f64>,
    /// Seed of the arrival times and lengths: the same seed gives the same result.
    #[arg(long, default_value = "0")]
    pub seed: u64,
    /// fp32, tf32, fp16, bf16, fp8, int8, int4 or w8a16 (weight-only, fp16 compute).
    #[arg(long, default_value = "fp16")]
    pub precision: String,
    /// KV-cache dtype: fp16, bf16 or fp8 (default: the activation dtype).
    #[arg(long)]
    pub kv_dtype: Option<String>,
    /// How steps run: cuda-graphs (vLLM's decode), eager or compiled.
    #[arg(long, value_enum, default_value = "cuda-graphs")]
    pub execution: Execution,
    /// Tensor-parallel GPUs per model replica (vLLM's --tensor-parallel-size): heads, FFN
    /// and vocabulary split, an all-reduce after each row-parallel projection; the KV
    /// budget is per GPU.
    #[arg(long, default_value = "1")]
    pub tp: u64,
    /// GPUs per node (a --tp group larger than a node all-reduces over the network).
    #[arg(long, default_value = "8")]
    pub gpus_per_node: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub attention: AttentionImpl,
    /// Write an SVG chart: TTFT, TPOT and end-to-end latency percentiles (p50/p90/p99) and
    /// throughput (output tokens/s, requests/s) per GPU. GPUs that cannot serve the model
    /// are named in it.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

fn precision(p: &str, kv: Option<&String>) -> Result<Precision> {
    let p = Precision::parse(p)?;
    match kv {
        Some(kv) => p.with_kv(kv),
        None => Ok(p),
    }
}

fn gpus<'r>(reg: &'r Registry, names: &[String]) -> Result<Vec<&'r Gpu>> {
    names.iter().map(|n| reg.gpu(n)).collect()
}

fn opt(v: Option<f64>) -> Value {
    v.map(num).unwrap_or(Value::Null)
}

fn json<T: serde::Serialize>(items: &[T]) -> String {
    let list: Vec<Value> = items.iter().map(|r| serde_json::to_value(r).unwrap_or_default()).collect();
    let v = if list.len() == 1 { list[0].clone() } else { Value::Array(list) };
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// `benchmark --prompt-len P --output-len O`: one generation per GPU.
#[allow(clippy::too_many_arguments)]
pub fn benchmark(reg: &Registry, model: &str, gpu_names: &[String], batch: u64, run: &RunFlags, llm: &LlmFlags, timeline: Option<&PathBuf>, format: Format) -> Result<String> {
    let (Some(prompt), Some(output)) = (llm.prompt_len, llm.output_len) else {
        return Err(Error::Usage("--prompt-len and --output-len go together (and --kv-dtype needs them)".into()));
    };
    if run.seq_len.is_some() || run.past != 0 {
        return Err(Error::Usage("--seq-len and --past describe one step; a generation (--prompt-len/--output-len) sets them itself".into()));
    }
    if timeline.is_some() {
        return Err(Error::Usage("--timeline writes one step; use --seq-len/--past for the step you want to see".into()));
    }
    if batch == 0 {
        return Err(Error::Usage("--batch-size must be at least 1".into()));
    }
    let opts = Options {
        precision: precision(&run.precision, llm.kv_dtype.as_ref())?,
        mode: run.mode,
        // Serving engines replay decode as CUDA graphs; `--execution eager` asks for
        // HuggingFace-style generation.
        execution: run.execution.unwrap_or(Execution::CudaGraphs),
        attention: run.attention,
        optimizer_step: false,
        flash_available: true,
        parallel: run.parallel(),
    };
    let mut runs = Vec::new();
    for gpu in gpus(reg, gpu_names)? {
        let engine = Engine::new(gpu, &reg.templates, model, opts)?;
        runs.push(serve::generation(&engine, batch, prompt, output)?);
    }
    let fit = |out: String| super::model_commands::fits_somewhere(out, model, runs.iter().map(|r| (r.fits, r.gpu.as_str(), r.memory_gb, r.gpu_memory_gb)));
    if format == Format::Json {
        return fit(json(&runs));
    }
    let mut t = Table::new(&[
        "model", "gpu", "batch", "prompt_len", "output_len", "precision", "kv_dtype", "ttft_ms", "tpot_ms", "decode_tokens_per_s", "e2e_ms", "memory_gb", "gpu_memory_gb", "fits", "max_batch_fits",
    ]);
    for r in &runs {
        t.push(vec![
            text(&r.model),
            text(gpu_label(&r.gpu, r.tp)),
            Value::from(r.batch),
            Value::from(r.prompt_len),
            Value::from(r.output_len),
            text(&r.precision),
            text(&r.kv_dtype),
            opt(r.ttft_ms),
            opt(r.tpot_ms),
            opt(r.decode_tokens_per_s),
            opt(r.e2e_ms),
            num(r.memory_gb),
            num(r.gpu_memory_gb),
            text(if r.fits { "yes" } else { "OOM" }),
            Value::from(r.max_batch_fits),
        ]);
    }
    let mut out = t.render(format);
    if format == Format::Table {
        out += &generation_notes(&runs);
    }
    fit(out)
}

/// A GPU, or `GPU ×N` for N tensor-parallel GPUs.
fn gpu_label(gpu: &str, tp: u64) -> String {
    if tp > 1 {
        format!("{gpu} ×{tp}")
    } else {
        gpu.to_string()
    }
}

fn generation_notes(runs: &[Generation]) -> String {
    let mut out = String::from("\nTTFT = prefill of the prompts (gives the first token); TPOT = mean of the output_len − 1 decode steps;\ne2e = TTFT + (output_len − 1) × TPOT. Peak memory counts the KV cache at prompt_len + output_len tokens.\n");
    for r in runs {
        let m = &r.memory;
        let per_gpu = if r.tp > 1 { " per GPU" } else { "" };
        out += &format!(
            "{}: {:?}; memory{per_gpu} {:.2} GiB = weights {:.2} + KV cache {:.2} + activations {:.2} + workspace {:.2} + context {:.2}",
            gpu_label(&r.gpu, r.tp), r.execution, m.total_gb, m.weights_gb, m.kv_cache_gb, m.activations_gb, m.workspace_gb, m.context_gb
        );
        if let (Some(first), Some(last), Some(host), Some(frac)) = (r.tpot_first_ms, r.tpot_last_ms, r.decode_host_ms, r.decode_dram_fraction) {
            out += &format!("; decode step {first:.3} → {last:.3} ms (host {host:.3} ms), {:.0}% of spec DRAM bandwidth", frac * 100.0);
        }
        out += if r.fits { "\n" } else { " — does not fit\n" };
    }
    out
}

/// `serve-sim`: the serving simulation on each GPU.
pub fn serve_sim(reg: &Registry, a: &ServeSimArgs, format: Format) -> Result<String> {
    let cfg = SimConfig {
        rate: a.rate,
        requests: a.requests,
        prompt_len: a.prompt_len,
        output_len: a.output_len,
        prompt_dist: a.prompt_len_dist,
        output_dist: a.output_len_dist,
        max_batch: a.max_batch,
        max_batched_tokens: a.max_batched_tokens,
        kv_budget_gb: a.kv_budget_gb,
        seed: a.seed,
    };
    sim::check(&cfg)?;
    let opts = Options {
        precision: precision(&a.precision, a.kv_dtype.as_ref())?,
        execution: a.execution,
        attention: a.attention,
        optimizer_step: false,
        parallel: crate::lower::Parallel { tp: a.tp, gpus_per_node: a.gpus_per_node, ..Default::default() },
        ..Options::default()
    };
    // A GPU that cannot serve the model (memory, precision) leaves the others to compare;
    // when none can, the first one's error is the answer.
    let mut results = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    let asked = gpus(reg, &a.gpu)?;
    for &gpu in &asked {
        match Engine::new(gpu, &reg.templates, &a.model, opts).and_then(|engine| sim::simulate(&engine, &cfg)) {
            Ok(r) => results.push(r),
            Err(e) => failed.push((gpu.key().to_string(), e)),
        }
    }
    let failures: Vec<(String, String)> = failed.iter().map(|(g, e)| (g.clone(), failure(g, e))).collect();
    if results.is_empty() {
        let first = failures.first().map(|f| f.1.clone()).unwrap_or_default();
        for (_, f) in failures.iter().skip(1).filter(|f| f.1 != first) {
            eprintln!("warning: {f}");
        }
        return Err(failed.into_iter().next().map(|(_, e)| e).unwrap_or_else(|| Error::Usage("no GPU given".into())));
    }
    for (_, f) in &failures {
        eprintln!("warning: did not run: {f}");
    }
    if let Some(path) = &a.plot {
        let order: Vec<String> = asked.iter().map(|g| g.key().to_string()).collect();
        super::cost_commands::write_file(path, &plot::page_svg(&[serving_chart(a, &order, &results, &failures)])?)?;
        eprintln!("plot written to {}", path.display());
    }
    if format == Format::Json {
        return Ok(json(&results));
    }
    let mut t = Table::new(&[
        "model", "gpu", "rate", "requests_per_s", "output_tokens_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "e2e_p50_ms", "e2e_p99_ms", "mean_batch", "preemptions",
    ]);
    for r in &results {
        t.push(vec![
            text(&r.model),
            text(gpu_label(&r.gpu, r.tp)),
            num(r.config.rate),
            num(r.request_throughput_per_s),
            num(r.output_tokens_per_s),
            num(r.ttft_ms.p50),
            num(r.ttft_ms.p90),
            num(r.ttft_ms.p99),
            opt(r.tpot_ms.as_ref().map(|l| l.p50)),
            opt(r.tpot_ms.as_ref().map(|l| l.p90)),
            num(r.e2e_ms.p50),
            num(r.e2e_ms.p99),
            num(r.mean_decode_batch),
            Value::from(r.preemptions),
        ]);
    }
    let mut out = t.render(format);
    if format == Format::Table {
        out += &sim_notes(&results);
        for (_, f) in &failures {
            out += &format!("\nDid not run: {f}\n");
        }
    }
    Ok(out)
}

/// "gpu: message", unless the message already starts with the GPU's name.
fn failure(gpu: &str, e: &Error) -> String {
    let m = e.to_string();
    if m.starts_with(gpu) {
        m
    } else {
        format!("{gpu}: {m}")
    }
}

/// `serve-sim --plot`: latency percentiles and throughput per GPU that ran; `order` is
/// every GPU asked for (a GPU keeps its colour whether or not the others ran).
fn serving_chart(a: &ServeSimArgs, order: &[String], results: &[SimResult], failures: &[(String, String)]) -> Chart {
    let colour = |g: &str| order.iter().position(|x| x == g).unwrap_or(0);
    let pct = |name: &str, lat: &dyn Fn(&SimResult) -> Option<Latency>, scale: f64| -> Vec<BarGroup> {
        [("p50", 0), ("p90", 1), ("p99", 2)]
            .iter()
            .map(|&(p, k)| BarGroup {
                label: format!("{name} {p}"),
                bars: results.iter().filter_map(|r| lat(r).map(|l| (colour(&r.gpu), [l.p50, l.p90, l.p99][k] / scale))).collect(),
            })
            .collect()
    };
    let e2e_in_s = results.iter().any(|r| r.e2e_ms.p50 >= 1000.0);
    let (e2e_scale, e2e_unit) = if e2e_in_s { (1000.0, "s") } else { (1.0, "ms") };
    let panel = |title: &str, y: &str, groups: Vec<BarGroup>, reference: Option<(String, f64)>| BarPanel { title: title.into(), y_label: y.into(), groups, reference };
    let per_gpu = |v: &dyn Fn(&SimResult) -> f64| -> Vec<BarGroup> { results.iter().map(|r| BarGroup { label: r.gpu.clone(), bars: vec![(colour(&r.gpu), v(r))] }).collect() };
    let rows = vec![
        vec![
            panel("time to first token", "TTFT, ms", pct("TTFT", &|r| Some(r.ttft_ms.clone()), 1.0), None),
            panel("time per output token", "TPOT, ms", pct("TPOT", &|r| r.tpot_ms.clone(), 1.0), None),
            panel("end-to-end latency", &format!("end-to-end, {e2e_unit}"), pct("e2e", &|r| Some(r.e2e_ms.clone()), e2e_scale), None),
        ],
        vec![
            panel("output throughput", "output tokens/s", per_gpu(&|r| r.output_tokens_per_s), None),
            panel("request throughput", "requests/s", per_gpu(&|r| r.request_throughput_per_s), Some((format!("offered {} req/s", short_num(a.rate)), a.rate))),
        ],
    ];
    let first = &results[0];
    let dist = |d: LenDist| format!("{d:?}").to_lowercase();
    let title = format!(
        "{} serving at {} req/s: {} prompt ({}) + {} output ({}) tokens, {} requests, {}",
        first.model,
        short_num(a.rate),
        a.prompt_len,
        dist(a.prompt_len_dist),
        a.output_len,
        dist(a.output_len_dist),
        a.requests,
        if first.kv_dtype == first.precision { first.precision.clone() } else { format!("{}, KV cache {}", first.precision, first.kv_dtype) }
    );
    let mut legend: Vec<(String, Option<usize>)> = results.iter().map(|r| (r.gpu.clone(), Some(colour(&r.gpu)))).collect();
    let mut notes = vec![format!(
        "Predicted by PhantomGPU's serving simulation (not measured): Poisson arrivals (seed {}), continuous batching of up to {} requests over a paged KV cache, {:?} steps. Percentiles are over requests; TPOT = (completion − first token) / (output tokens − 1); the dashed line is the offered rate.",
        a.seed, a.max_batch, first.execution
    )];
    for r in results.iter().filter(|r| r.tpot_ms.is_none()) {
        notes.push(format!("{}: no TPOT (every request produced one token).", r.gpu));
    }
    for (gpu, f) in failures {
        legend.push((format!("{gpu} (did not run)"), None));
        notes.push(format!("Did not run: {f}"));
    }
    Chart::Panels(Panels { title, rows, legend, notes })
}

fn short_num(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn sim_notes(results: &[SimResult]) -> String {
    let mut out = String::new();
    for r in results {
        out += &format!(
            "\n{}: {} requests ({} prompt + {} output tokens on average) over {:.1} s, {} precision, KV cache {}, {:?}.\n  KV budget{} {:.2} GiB = {} blocks of {} tokens: {} requests of {}+{} tokens at once; the largest batch of such generations that fits: {}.\n  {} prefill and {} decode steps from {} distinct simulated steps.\n",
            gpu_label(&r.gpu, r.tp),
            r.requests,
            r.mean_prompt_len.round(),
            r.mean_output_len.round(),
            r.duration_s,
            r.precision,
            r.kv_dtype,
            r.execution,
            if r.tp > 1 { " per GPU" } else { "" },
            r.kv_budget_gb,
            r.kv_blocks,
            sim::BLOCK_TOKENS,
            r.max_concurrent_kv,
            r.config.prompt_len,
            r.config.output_len,
            r.max_batch_fits,
            r.prefill_steps,
            r.decode_steps,
            r.simulated_steps,
        );
    }
    out
}

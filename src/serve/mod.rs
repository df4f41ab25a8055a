//! LLM inference as users measure it: time to first token (TTFT), time per output token
//! (TPOT), decode tokens per second, end-to-end latency and peak memory of generating
//! `output_len` tokens after a `prompt_len`-token prompt for `batch` sequences; and (in
//! `sim`) a serving simulation with continuous batching.
//!
//! Every step time comes from the simulator: a step is the model's operator graph for
//! that (batch, new tokens, tokens already cached) lowered and scheduled on the GPU like
//! any `benchmark` run. Nothing here is a formula for time.
//!
//! Conventions (those of vLLM's `benchmark_serving` and of TGI):
//! - TTFT is the prefill of the `prompt_len` tokens of every sequence (one forward step
//!   over `batch × prompt_len` tokens); its logits give the first output token. Tokenising,
//!   sampling and network time are not modelled.
//! - The other `output_len − 1` tokens come from decode steps (one new token per sequence
//!   over a KV cache that holds `prompt_len`, then `prompt_len + 1`, … tokens). TPOT is
//!   their mean; `e2e = TTFT + (output_len − 1) · TPOT`.

pub mod sim;

use crate::error::{Error, Result};
use crate::graph::{self, transformer::Workload, zoo, Graph, GraphOp};
use crate::hw::{Gpu, Templates};
use crate::lower::memory::{self, MemoryBreakdown};
use crate::lower::{self, Mode, Options};
use crate::run;
use crate::sim::scheduler;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// KV lengths at which a run's decode steps are simulated; the rest are interpolated.
/// Decode time is a smooth (nearly linear) function of the KV length: the weights are
/// read once per step whatever the length, and the split-KV attention streams the cache,
/// so its bytes grow linearly. Eight points (both ends included) integrate that curve to
/// well under 1% of simulating every step.
pub const DECODE_SAMPLES: u64 = 8;

/// One simulated forward step.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Step {
    /// Wall time of the step, ms.
    pub ms: f64,
    /// Sum of kernel times, ms.
    pub gpu_ms: f64,
    /// Host time to issue the step's kernels, ms.
    pub host_ms: f64,
}

/// A decoder LLM on one GPU (or `opts.parallel.tp` GPUs of a node, each holding one
/// tensor-parallel shard and all-reducing after each row-parallel projection) at one
/// precision and execution mode: simulates the steps a generation or a server asks for,
/// each (batch, new tokens, cached tokens) once. Memory and bandwidth figures are per GPU.
pub struct Engine<'a> {
    pub gpu: &'a Gpu,
    templates: &'a Templates,
    /// The model as given on the command line (zoo name, config.json, HuggingFace id).
    pub model: String,
    /// The model's name as its graph reports it.
    pub name: String,
    pub opts: Options,
    /// Positions the model supports (`None`: no limit known).
    pub max_positions: Option<u64>,
    cache: RefCell<HashMap<(u64, u64, u64), Step>>,
    /// Distinct steps simulated so far.
    pub simulated: Cell<usize>,
}

impl<'a> Engine<'a> {
    /// Checks the model is a decoder with a KV cache and that the GPU runs the precision.
    pub fn new(gpu: &'a Gpu, templates: &'a Templates, model: &str, opts: Options) -> Result<Engine<'a>> {
        if opts.mode != Mode::Inference {
            return Err(Error::Usage("LLM generation and serving are inference: --mode training does not apply".into()));
        }
        let opts = run::options_for(gpu, opts);
        run::check_precision(gpu, &opts.precision)?;
        if opts.parallel.dp > 1 || opts.parallel.pp > 1 {
            return Err(Error::Usage(
                "a generation or a server runs one model replica: --tp splits it across GPUs; --dp and --pp do not apply (serve replicas by dividing the request rate)".into(),
            ));
        }
        let probe = graph::load_model_tp(model, Workload { batch: 1, seq_len: 1, past: 1 }, opts.parallel.tp)?;
        if !probe.tensors.iter().any(|t| t.name.ends_with("kv_cache")) {
            return Err(Error::Usage(format!("{}: not a decoder language model (no KV cache); LLM generation needs one such as llama2-7b", probe.name)));
        }
        Ok(Engine {
            gpu,
            templates,
            model: model.to_string(),
            name: probe.name.clone(),
            opts,
            max_positions: max_positions(model),
            cache: RefCell::new(HashMap::new()),
            simulated: Cell::new(0),
        })
    }

    /// The step's graph. A prefill computes logits for the last position of each prompt
    /// only (vLLM; HuggingFace `generate`'s `logits_to_keep`): the sampler needs no more.
    fn graph(&self, batch: u64, seq_len: u64, past: u64) -> Result<Graph> {
        let mut g = graph::load_model_tp(&self.model, Workload { batch, seq_len, past }, self.opts.parallel.tp)?;
        if seq_len > 1 {
            last_token_logits(&mut g, batch, seq_len);
        }
        Ok(g)
    }

    /// One forward step of `batch` sequences with `seq_len` new tokens each over `past`
    /// cached tokens, simulated once and remembered.
    pub fn step(&self, batch: u64, seq_len: u64, past: u64) -> Result<Step> {
        if let Some(s) = self.cache.borrow().get(&(batch, seq_len, past)) {
            return Ok(*s);
        }
        let g = self.graph(batch, seq_len, past)?;
        let dag = lower::lower(&g, &self.opts)?;
        let tl = scheduler::run(self.gpu, self.templates, &dag, false)?;
        let s = Step { ms: tl.step_ms, gpu_ms: tl.gpu_busy_ms, host_ms: tl.host_ms };
        self.cache.borrow_mut().insert((batch, seq_len, past), s);
        self.simulated.set(self.simulated.get() + 1);
        Ok(s)
    }

    /// The prefill of `batch` prompts of `len` tokens.
    pub fn prefill(&self, batch: u64, len: u64) -> Result<Step> {
        self.step(batch, len, 0)
    }

    /// One decode step of `batch` sequences over `past` cached tokens each.
    pub fn decode(&self, batch: u64, past: u64) -> Result<Step> {
        self.step(batch, 1, past)
    }

    /// Memory of one step's graph (weights, activations, KV cache of `seq_len + past`).
    pub fn step_memory(&self, batch: u64, seq_len: u64, past: u64) -> Result<MemoryBreakdown> {
        let g = self.graph(batch, seq_len, past)?;
        Ok(memory::estimate(&g, &self.opts, hopper_or_newer(self.gpu)))
    }

    /// Peak memory of generating `output` tokens after `prompt` for `batch` sequences:
    /// weights, the KV cache at `prompt + output` tokens (allocated up front, as vLLM's
    /// block pool and HuggingFace's static cache do), the larger of the prefill's and the
    /// decode's activation peaks, workspace and context.
    pub fn generation_memory(&self, batch: u64, prompt: u64, output: u64) -> Result<MemoryBreakdown> {
        let pre = self.step_memory(batch, prompt, 0)?;
        let dec = self.step_memory(batch, 1, prompt + output - 1)?;
        let mut m = dec.clone();
        m.activations_gb = pre.activations_gb.max(dec.activations_gb);
        let tensors = m.weights_gb + m.activations_gb + m.kv_cache_gb;
        m.total_gb = tensors * (1.0 + memory::ALLOCATOR_OVERHEAD) + m.workspace_gb + m.context_gb;
        Ok(m)
    }

    /// KV-cache bytes one token takes (all layers, keys and values).
    pub fn kv_bytes_per_token(&self) -> Result<f64> {
        // A decode step over 15 cached tokens holds 16.
        Ok(self.step_memory(1, 1, 15)?.kv_cache_gb * GIB / 16.0)
    }

    /// The largest batch whose generation memory fits on the GPU (0 if none does).
    pub fn max_batch(&self, prompt: u64, output: u64) -> Result<u64> {
        let cap = self.gpu.profile.memory.memory_gb;
        let fits = |b: u64| -> Result<bool> { Ok(self.generation_memory(b, prompt, output)?.total_gb <= cap) };
        if !fits(1)? {
            return Ok(0);
        }
        let (mut lo, mut hi) = (1u64, 2u64);
        while fits(hi)? {
            lo = hi;
            hi *= 2;
            if hi > 1 << 24 {
                return Ok(lo);
            }
        }
        // fits(lo), !fits(hi)
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Checks a request of `prompt + output` tokens is valid for the model.
    pub fn check_lengths(&self, prompt: u64, output: u64) -> Result<()> {
        if prompt == 0 {
            return Err(Error::Usage("--prompt-len must be at least 1".into()));
        }
        if output == 0 {
            return Err(Error::Usage("--output-len must be at least 1".into()));
        }
        if let Some(max) = self.max_positions.filter(|&m| m > 0) {
            if prompt + output > max {
                return Err(Error::Usage(format!("{}: prompt of {prompt} + {output} output tokens is longer than the model's {max} positions", self.name)));
            }
        }
        Ok(())
    }
}

/// Narrows the LM head of a `batch × seq_len`-token step to one row per sequence.
fn last_token_logits(g: &mut Graph, batch: u64, seq_len: u64) {
    let mut narrowed = Vec::new();
    for node in g.nodes.iter_mut().filter(|n| n.name == "lm_head") {
        if let GraphOp::MatMul { m, n, .. } = &mut node.op {
            if *m == batch * seq_len {
                *m = batch;
                narrowed.extend(node.outputs.iter().map(|&o| (o, *n)));
            }
        }
    }
    for (o, n) in narrowed {
        g.tensors[o].shape = vec![batch, 1, n];
    }
}

fn hopper_or_newer(gpu: &Gpu) -> bool {
    matches!(gpu.profile.architecture.as_str(), "hopper" | "blackwell")
}

/// The context length of a model spec, if known.
fn max_positions(spec: &str) -> Option<u64> {
    let path = std::path::Path::new(spec);
    let hf = if path.exists() {
        graph::hf_config::load(path).ok()
    } else if spec.contains('/') {
        graph::hf_config::resolve(spec).ok().and_then(|p| graph::hf_config::load(&p).ok())
    } else {
        None
    };
    if let Some(m) = hf {
        return Some(m.max_positions()).filter(|&m| m > 0);
    }
    zoo::find(spec).ok().and_then(|m| m.max_positions()).filter(|&m| m > 0)
}

/// One generation (`benchmark --prompt-len P --output-len O`) on one GPU.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub model: String,
    pub gpu: String,
    /// Tensor-parallel GPUs serving the model (memory figures are per GPU).
    pub tp: u64,
    pub batch: u64,
    pub prompt_len: u64,
    pub output_len: u64,
    pub precision: String,
    pub kv_dtype: String,
    pub execution: lower::Execution,
    /// Prefill of the prompts (gives the first token), ms. `None` when it does not fit.
    pub ttft_ms: Option<f64>,
    /// Mean decode step over the `output_len − 1` decode steps, ms (`None` for one token).
    pub tpot_ms: Option<f64>,
    /// The first and last decode steps (KV cache of `prompt_len` and `prompt_len +
    /// output_len − 2` tokens), ms.
    pub tpot_first_ms: Option<f64>,
    pub tpot_last_ms: Option<f64>,
    /// `batch / tpot`: tokens per second the decode phase produces.
    pub decode_tokens_per_s: Option<f64>,
    /// `ttft + (output_len − 1) · tpot`, ms.
    pub e2e_ms: Option<f64>,
    /// `batch · output_len / e2e`.
    pub output_tokens_per_s: Option<f64>,
    /// Host (framework) time of one decode step, ms: what CUDA graphs remove.
    pub decode_host_ms: Option<f64>,
    /// Weights plus the mean KV cache read per decode step over TPOT, as a fraction of
    /// the GPU's spec DRAM bandwidth: how close decode gets to its bound.
    pub decode_dram_fraction: Option<f64>,
    /// Peak memory (see `Engine::generation_memory`), GiB.
    pub memory_gb: f64,
    pub memory: MemoryBreakdown,
    pub gpu_memory_gb: f64,
    pub fits: bool,
    /// The largest batch whose generation of `prompt_len + output_len` tokens fits.
    pub max_batch_fits: u64,
    /// The KV lengths simulated and their decode step times, ms.
    pub decode_samples: Vec<(u64, f64)>,
}

/// Simulates one generation: the prefill, and the decode steps sampled at
/// `DECODE_SAMPLES` KV lengths with the others interpolated linearly and summed.
pub fn generation(engine: &Engine, batch: u64, prompt: u64, output: u64) -> Result<Generation> {
    if batch == 0 {
        return Err(Error::Usage("--batch-size must be at least 1".into()));
    }
    engine.check_lengths(prompt, output)?;
    let gpu = engine.gpu;
    let mem = engine.generation_memory(batch, prompt, output)?;
    let cap = gpu.profile.memory.memory_gb;
    let fits = mem.total_gb <= cap;
    let p = &engine.opts.precision;
    let mut g = Generation {
        model: engine.name.clone(),
        gpu: gpu.key().to_string(),
        tp: engine.opts.parallel.tp,
        batch,
        prompt_len: prompt,
        output_len: output,
        precision: p.name(),
        kv_dtype: p.kv_cache_dtype().name().to_string(),
        execution: engine.opts.execution,
        ttft_ms: None,
        tpot_ms: None,
        tpot_first_ms: None,
        tpot_last_ms: None,
        decode_tokens_per_s: None,
        e2e_ms: None,
        output_tokens_per_s: None,
        decode_host_ms: None,
        decode_dram_fraction: None,
        memory_gb: mem.total_gb,
        memory: mem.clone(),
        gpu_memory_gb: cap,
        fits,
        max_batch_fits: engine.max_batch(prompt, output)?,
        decode_samples: Vec::new(),
    };
    if !fits {
        return Ok(g);
    }
    let ttft = engine.prefill(batch, prompt)?.ms;
    g.ttft_ms = Some(ttft);
    let steps = output - 1;
    let mut e2e = ttft;
    if steps > 0 {
        // Decode step j (0-based) runs over prompt + j cached tokens.
        let (first, last) = (prompt, prompt + steps - 1);
        let n = DECODE_SAMPLES.min(steps);
        let mut pasts: Vec<u64> = (0..n).map(|i| if n == 1 { first } else { first + ((last - first) as f64 * i as f64 / (n - 1) as f64).round() as u64 }).collect();
        pasts.dedup();
        let mut samples = Vec::with_capacity(pasts.len());
        let mut host = 0.0;
        for &past in &pasts {
            let s = engine.decode(batch, past)?;
            samples.push((past, s.ms));
            host += s.host_ms / pasts.len() as f64;
        }
        let total: f64 = (first..=last).map(|past| interpolate(&samples, past as f64)).sum();
        let tpot = total / steps as f64;
        e2e += total;
        g.tpot_ms = Some(tpot);
        g.tpot_first_ms = samples.first().map(|s| s.1);
        g.tpot_last_ms = samples.last().map(|s| s.1);
        g.decode_tokens_per_s = Some(batch as f64 / (tpot / 1000.0));
        g.decode_host_ms = Some(host);
        // Bytes a decode step must read: every weight once, and the mean KV cache.
        let mean_cached = (first + last) as f64 / 2.0 + 1.0;
        let bytes = mem.weights_gb * GIB + engine.kv_bytes_per_token()? * batch as f64 * mean_cached;
        g.decode_dram_fraction = Some(bytes / (tpot / 1000.0) / (gpu.profile.memory.dram_bandwidth_gbs * 1e9));
        g.decode_samples = samples;
    }
    g.e2e_ms = Some(e2e);
    g.output_tokens_per_s = Some((batch * output) as f64 / (e2e / 1000.0));
    Ok(g)
}

/// Piecewise-linear interpolation through `(x, y)` points sorted by x (clamped at the ends).
pub fn interpolate(points: &[(u64, f64)], x: f64) -> f64 {
    match points {
        [] => f64::NAN,
        [only] => only.1,
        _ => {
            let i = points.partition_point(|p| (p.0 as f64) <= x);
            if i == 0 {
                return points[0].1;
            }
            if i == points.len() {
                return points[i - 1].1;
            }
            let (a, b) = (points[i - 1], points[i]);
            let t = (x - a.0 as f64) / (b.0 - a.0) as f64;
            a.1 + t * (b.1 - a.1)
        }
    }
}

//! A serving simulation: requests arrive as a Poisson process and an engine batches them
//! continuously, as vLLM's (v0) scheduler does without chunked prefill:
//!
//! - KV memory is a pool of 16-token blocks sized from the GPU's memory (vLLM's
//!   `gpu_memory_utilization` 0.9, minus the weights, the activation peak of the largest
//!   prefill, workspace and context) unless `kv_budget_gb` is given.
//! - Each step either prefills waiting requests (first come first served, while the batch
//!   has room, the prompts fit in `max_batched_tokens` and the pool keeps a 1% watermark
//!   of free blocks), or, when none can start, runs one decode step for every running
//!   request.
//! - A decode step that needs more blocks than are free preempts the most recently
//!   admitted request (its blocks are freed, it is prefilled again later over its prompt
//!   and the tokens it had produced: vLLM's recompute preemption).
//!
//! Step times come from `Engine` (the simulator), cached: prefills by (requests, prompt
//! length on a grid of 4 points per octave), decodes by (batch, mean KV length on a grid of
//! 8 points per octave), interpolated linearly between grid points; with CUDA graphs the
//! decode batch is padded to the sizes vLLM captures (1, 2, 4, then multiples of 8).
//! A batch whose sequences hold different numbers of cached tokens is simulated at their
//! mean: split-KV decode attention streams every sequence's cache, so its cost follows the
//! total. A prefill of prompts of different lengths is simulated at their mean length
//! (exact for the GEMMs, which see the total tokens; attention's quadratic part is
//! slightly underestimated when the lengths differ).
//!
//! Not modelled: the scheduler's and sampler's own CPU time, tokenisation, networking,
//! chunked prefill, prefix caching, speculative decoding.

use super::{interpolate, Engine};
use crate::error::{Error, Result};
use crate::lower::Execution;
use crate::validate::metrics::percentile;
use serde::Serialize;
use std::collections::VecDeque;

/// Tokens per KV-cache block (vLLM's default `block_size`).
pub const BLOCK_TOKENS: u64 = 16;
/// Fraction of GPU memory the engine may use (vLLM's default `gpu_memory_utilization`).
pub const GPU_MEMORY_UTILIZATION: f64 = 0.9;
/// Free blocks kept back when admitting a prefill (vLLM's `watermark`).
pub const WATERMARK: f64 = 0.01;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// How request lengths vary around their mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LenDist {
    /// Every request has the given length.
    Fixed,
    /// Uniform between half and one and a half times the given length.
    Uniform,
    /// Exponential with the given mean (at least 1 token).
    Exp,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimConfig {
    /// Mean arrival rate, requests per second.
    pub rate: f64,
    pub requests: u64,
    pub prompt_len: u64,
    pub output_len: u64,
    pub prompt_dist: LenDist,
    pub output_dist: LenDist,
    /// Most requests running at once (vLLM's `max_num_seqs`).
    pub max_batch: u64,
    /// Most prompt tokens in one prefill step (vLLM's `max_num_batched_tokens`); `None`:
    /// the model's context, at least 2048.
    pub max_batched_tokens: Option<u64>,
    /// KV-cache memory, GiB; `None`: from the GPU's memory.
    pub kv_budget_gb: Option<f64>,
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            rate: 1.0,
            requests: 1000,
            prompt_len: 512,
            output_len: 128,
            prompt_dist: LenDist::Fixed,
            output_dist: LenDist::Fixed,
            max_batch: 256,
            max_batched_tokens: None,
            kv_budget_gb: None,
            seed: 0,
        }
    }
}

/// Percentiles of one latency, ms.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Latency {
    fn of(mut v: Vec<f64>) -> Option<Latency> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Latency { mean: v.iter().sum::<f64>() / v.len() as f64, p50: percentile(&v, 0.5), p90: percentile(&v, 0.9), p99: percentile(&v, 0.99) })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SimResult {
    pub model: String,
    pub gpu: String,
    /// Tensor-parallel GPUs serving the model (the KV budget is per GPU).
    pub tp: u64,
    pub precision: String,
    pub kv_dtype: String,
    pub execution: Execution,
    pub config: SimConfig,
    pub requests: u64,
    /// First arrival to last completion, s.
    pub duration_s: f64,
    pub request_throughput_per_s: f64,
    pub output_tokens_per_s: f64,
    /// Prompt and output tokens per second.
    pub total_tokens_per_s: f64,
    pub ttft_ms: Latency,
    /// Per request: (completion − first token) / (output tokens − 1); requests of one
    /// output token have none.
    pub tpot_ms: Option<Latency>,
    pub e2e_ms: Latency,
    pub mean_prompt_len: f64,
    pub mean_output_len: f64,
    pub prefill_steps: u64,
    pub decode_steps: u64,
    /// Mean requests per decode step.
    pub mean_decode_batch: f64,
    pub preemptions: u64,
    pub kv_budget_gb: f64,
    pub kv_blocks: u64,
    /// Requests of `prompt_len + output_len` tokens the KV pool holds at once.
    pub max_concurrent_kv: u64,
    /// The largest batch of `prompt_len + output_len`-token generations whose whole
    /// memory fits on the GPU (as `benchmark` counts it).
    pub max_batch_fits: u64,
    /// Distinct steps the simulator ran.
    pub simulated_steps: usize,
}

#[derive(Debug, Clone)]
struct Request {
    arrival_ms: f64,
    prompt: u64,
    output: u64,
    generated: u64,
    blocks: u64,
    first_token_ms: Option<f64>,
    finish_ms: Option<f64>,
}

/// Points of a grid with `per_octave` points per power of two that bracket `x` (≥ 1).
fn grid(x: f64, per_octave: u64) -> (u64, u64) {
    let x = x.max(1.0);
    let base = 1u64 << (x.log2().floor() as u32);
    let step = (base / per_octave).max(1);
    let lo = (x as u64) / step * step;
    (lo.max(1), lo.max(1) + step)
}

/// Step times from the simulator at grid points, interpolated between them.
struct Steps<'e, 'a> {
    engine: &'e Engine<'a>,
    max_positions: u64,
}

impl Steps<'_, '_> {
    /// `at` on the grid points around `x` (never past the context), interpolated.
    fn along(&self, x: f64, per_octave: u64, at: impl Fn(u64) -> Result<f64>) -> Result<f64> {
        let (lo, hi) = grid(x, per_octave);
        let hi = hi.min(self.max_positions);
        if (x - lo as f64).abs() < 1e-9 || hi <= lo {
            return at(lo);
        }
        Ok(interpolate(&[(lo, at(lo)?), (hi, at(hi)?)], x))
    }

    fn prefill_ms(&self, requests: u64, mean_len: f64) -> Result<f64> {
        self.along(mean_len, 4, |len| Ok(self.engine.prefill(requests, len)?.ms))
    }

    fn decode_ms(&self, batch: u64, mean_past: f64) -> Result<f64> {
        let b = if self.engine.opts.execution == Execution::CudaGraphs { captured_batch(batch) } else { batch };
        // The grid is over the attended keys (cached tokens + 1), which start at 1.
        self.along(mean_past + 1.0, 8, |keys| Ok(self.engine.decode(b, keys - 1)?.ms))
    }
}

/// The batch vLLM runs a CUDA-graph decode at: the smallest captured size (1, 2, 4, then
/// multiples of 8 up to 512) not below `batch`.
pub fn captured_batch(batch: u64) -> u64 {
    match batch {
        0..=1 => 1,
        2 => 2,
        3..=4 => 4,
        b if b <= 512 => b.div_ceil(8) * 8,
        b => b,
    }
}

fn sample_len(rng: &mut fastrand::Rng, mean: u64, dist: LenDist, max: u64) -> u64 {
    let v = match dist {
        LenDist::Fixed => mean,
        LenDist::Uniform => {
            let (lo, hi) = ((mean / 2).max(1), (mean + mean / 2).max(1));
            rng.u64(lo..=hi)
        }
        LenDist::Exp => (-(mean as f64) * (1.0 - rng.f64()).ln()).round().max(1.0) as u64,
    };
    v.clamp(1, max.max(1))
}

/// Checks a configuration's numbers, with messages naming the flag.
pub fn check(cfg: &SimConfig) -> Result<()> {
    if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
        return Err(Error::Usage(format!("--rate must be a positive number of requests per second (got {})", cfg.rate)));
    }
    if cfg.requests == 0 {
        return Err(Error::Usage("--requests must be at least 1".into()));
    }
    if cfg.prompt_len == 0 {
        return Err(Error::Usage("--prompt-len must be at least 1".into()));
    }
    if cfg.output_len == 0 {
        return Err(Error::Usage("--output-len must be at least 1".into()));
    }
    if cfg.max_batch == 0 {
        return Err(Error::Usage("--max-batch must be at least 1".into()));
    }
    if cfg.max_batched_tokens == Some(0) {
        return Err(Error::Usage("--max-batched-tokens must be at least 1".into()));
    }
    if let Some(kv) = cfg.kv_budget_gb {
        if !(kv.is_finite() && kv > 0.0) {
            return Err(Error::Usage(format!("--kv-budget-gb must be a positive number of GiB (got {kv})")));
        }
    }
    Ok(())
}

/// Runs the serving simulation.
pub fn simulate(engine: &Engine, cfg: &SimConfig) -> Result<SimResult> {
    check(cfg)?;
    engine.check_lengths(cfg.prompt_len, cfg.output_len)?;
    let max_pos = engine.max_positions.unwrap_or(u64::MAX / 4);
    let gpu = engine.gpu;
    let max_tokens = cfg.max_batched_tokens.unwrap_or_else(|| engine.max_positions.unwrap_or(2048).max(2048));

    // The requests: Poisson arrivals, lengths from their distributions (deterministic in
    // the seed). A request never exceeds the context.
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let mut reqs = Vec::with_capacity(cfg.requests as usize);
    let mut t = 0.0;
    for _ in 0..cfg.requests {
        t += -(1.0 - rng.f64()).ln() / cfg.rate * 1000.0;
        let output = sample_len(&mut rng, cfg.output_len, cfg.output_dist, max_pos.saturating_sub(1));
        let prompt = sample_len(&mut rng, cfg.prompt_len, cfg.prompt_dist, (max_pos - output).min(max_tokens));
        reqs.push(Request { arrival_ms: t, prompt, output, generated: 0, blocks: 0, first_token_ms: None, finish_ms: None });
    }

    // The KV pool.
    let kv_token = engine.kv_bytes_per_token()?;
    let kv_budget_gb = match cfg.kv_budget_gb {
        Some(g) => g,
        None => {
            let m = engine.step_memory(1, max_tokens.min(max_pos), 0)?;
            let used = m.weights_gb + m.activations_gb + m.workspace_gb + m.context_gb;
            let budget = gpu.profile.memory.memory_gb * GPU_MEMORY_UTILIZATION - used;
            if budget <= 0.0 {
                return Err(Error::Unsupported {
                    gpu: gpu.key().to_string(),
                    what: format!("serving {}", engine.name),
                    why: format!("weights and activations take {used:.1} GiB of the {:.1} GiB the engine may use; nothing is left for the KV cache (try --tp to split the model across GPUs, or a lower --precision)", gpu.profile.memory.memory_gb * GPU_MEMORY_UTILIZATION),
                });
            }
            budget
        }
    };
    let total_blocks = (kv_budget_gb * GIB / (kv_token * BLOCK_TOKENS as f64)).floor() as u64;
    let blocks_for = |tokens: u64| tokens.div_ceil(BLOCK_TOKENS);
    let longest = reqs.iter().map(|r| r.prompt + r.output).max().unwrap_or(0);
    let watermark = (WATERMARK * total_blocks as f64).floor() as u64;
    if blocks_for(longest) + watermark > total_blocks {
        return Err(Error::Usage(format!(
            "a request of {longest} tokens needs {} KV blocks of {BLOCK_TOKENS} tokens (+{watermark} kept free) but the {kv_budget_gb:.2} GiB budget holds {total_blocks}",
            blocks_for(longest)
        )));
    }

    let steps = Steps { engine, max_positions: max_pos };
    let mut free = total_blocks;
    let mut waiting: VecDeque<usize> = VecDeque::new();
    let mut running: Vec<usize> = Vec::new();
    let (mut next, mut now) = (0usize, 0.0f64);
    let (mut prefill_steps, mut decode_steps, mut decode_batch_sum, mut preemptions) = (0u64, 0u64, 0u64, 0u64);
    let mut done = 0usize;
    while done < reqs.len() {
        while next < reqs.len() && reqs[next].arrival_ms <= now {
            waiting.push_back(next);
            next += 1;
        }
        if running.is_empty() && waiting.is_empty() {
            now = reqs[next].arrival_ms;
            continue;
        }
        // Prefill what can start.
        let mut admitted = Vec::new();
        let (mut tokens, mut reserved) = (0u64, 0u64);
        while let Some(&i) = waiting.front() {
            let r = &reqs[i];
            let len = r.prompt + r.generated;
            let need = blocks_for(len);
            if running.len() + admitted.len() >= cfg.max_batch as usize
                || (tokens + len > max_tokens && !admitted.is_empty())
                || free < reserved + need + watermark
            {
                break;
            }
            waiting.pop_front();
            admitted.push(i);
            tokens += len;
            reserved += need;
        }
        if !admitted.is_empty() {
            let mean_len = tokens as f64 / admitted.len() as f64;
            now += steps.prefill_ms(admitted.len() as u64, mean_len)?;
            prefill_steps += 1;
            for &i in &admitted {
                let r = &mut reqs[i];
                r.blocks = blocks_for(r.prompt + r.generated);
                free -= r.blocks;
                r.generated += 1;
                r.first_token_ms.get_or_insert(now);
                if r.generated >= r.output {
                    r.finish_ms = Some(now);
                    free += r.blocks;
                    r.blocks = 0;
                    done += 1;
                } else {
                    running.push(i);
                }
            }
            continue;
        }
        if running.is_empty() {
            // Nothing running and the head of the queue cannot start: it never will.
            let r = &reqs[*waiting.front().unwrap_or(&0)];
            return Err(Error::Usage(format!("a request of {} prompt tokens cannot be admitted with {total_blocks} KV blocks", r.prompt + r.generated)));
        }
        // Every running request stores one more token this step.
        let need = |r: &Request| blocks_for(r.prompt + r.generated).saturating_sub(r.blocks);
        let mut needed: u64 = running.iter().map(|&i| need(&reqs[i])).sum();
        while needed > free {
            let Some(victim) = running.pop() else { break };
            let r = &mut reqs[victim];
            needed -= need(r);
            free += r.blocks;
            r.blocks = 0;
            waiting.push_front(victim);
            preemptions += 1;
        }
        if running.is_empty() {
            continue;
        }
        let batch = running.len() as u64;
        let mean_past = running.iter().map(|&i| (reqs[i].prompt + reqs[i].generated - 1) as f64).sum::<f64>() / batch as f64;
        now += steps.decode_ms(batch, mean_past)?;
        decode_steps += 1;
        decode_batch_sum += batch;
        let mut still = Vec::with_capacity(running.len());
        for &i in &running {
            let r = &mut reqs[i];
            let extra = need(r);
            r.blocks += extra;
            free -= extra;
            r.generated += 1;
            if r.generated >= r.output {
                r.finish_ms = Some(now);
                free += r.blocks;
                r.blocks = 0;
                done += 1;
            } else {
                still.push(i);
            }
        }
        running = still;
    }

    let first = reqs.first().map_or(0.0, |r| r.arrival_ms);
    let last = reqs.iter().filter_map(|r| r.finish_ms).fold(0.0, f64::max);
    let duration_s = ((last - first) / 1000.0).max(1e-12);
    let n = reqs.len() as f64;
    let out_tokens: u64 = reqs.iter().map(|r| r.output).sum();
    let prompt_tokens: u64 = reqs.iter().map(|r| r.prompt).sum();
    let ttft: Vec<f64> = reqs.iter().map(|r| r.first_token_ms.unwrap_or(f64::NAN) - r.arrival_ms).collect();
    let e2e: Vec<f64> = reqs.iter().map(|r| r.finish_ms.unwrap_or(f64::NAN) - r.arrival_ms).collect();
    let tpot: Vec<f64> = reqs
        .iter()
        .filter(|r| r.output > 1)
        .map(|r| (r.finish_ms.unwrap_or(f64::NAN) - r.first_token_ms.unwrap_or(f64::NAN)) / (r.output - 1) as f64)
        .collect();
    let p = &engine.opts.precision;
    Ok(SimResult {
        model: engine.name.clone(),
        gpu: gpu.key().to_string(),
        tp: engine.opts.parallel.tp,
        precision: p.name(),
        kv_dtype: p.kv_cache_dtype().name().to_string(),
        execution: engine.opts.execution,
        config: cfg.clone(),
        requests: cfg.requests,
        duration_s,
        request_throughput_per_s: n / duration_s,
        output_tokens_per_s: out_tokens as f64 / duration_s,
        total_tokens_per_s: (out_tokens + prompt_tokens) as f64 / duration_s,
        ttft_ms: Latency::of(ttft).expect("at least one request"),
        tpot_ms: Latency::of(tpot),
        e2e_ms: Latency::of(e2e).expect("at least one request"),
        mean_prompt_len: prompt_tokens as f64 / n,
        mean_output_len: out_tokens as f64 / n,
        prefill_steps,
        decode_steps,
        mean_decode_batch: if decode_steps > 0 { decode_batch_sum as f64 / decode_steps as f64 } else { 0.0 },
        preemptions,
        kv_budget_gb,
        kv_blocks: total_blocks,
        max_concurrent_kv: total_blocks / blocks_for(cfg.prompt_len + cfg.output_len),
        max_batch_fits: engine.max_batch(cfg.prompt_len, cfg.output_len)?,
        simulated_steps: engine.simulated.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_brackets() {
        for x in [1.0, 1.5, 7.0, 100.0, 513.0, 4095.5, 70000.0] {
            let (lo, hi) = grid(x, 8);
            assert!(lo as f64 <= x && x < hi as f64, "{x}: {lo} {hi}");
            assert!((hi - lo) as f64 <= (x / 8.0).max(1.0) + 1e-9, "{x}: {lo} {hi}");
        }
    }

    #[test]
    fn captured_sizes() {
        assert_eq!([1, 2, 3, 5, 9, 256, 300].map(captured_batch), [1, 2, 4, 8, 16, 256, 304]);
    }
}

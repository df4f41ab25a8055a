//! LLM generation (TTFT/TPOT) and the serving simulation: the JSON contract, the physics
//! a user expects (decode slows as the KV cache grows, faster GPUs decode faster), the
//! memory answers, determinism, precision checks and bad inputs.

use assert_cmd::Command;
use phantom_gpu::hw::Registry;
use phantom_gpu::lower::{Execution, Options, Precision};
use phantom_gpu::serve::sim::{self, LenDist, SimConfig};
use phantom_gpu::serve::{self, Engine};
use predicates::prelude::*;
use serde_json::Value;

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = cmd().args(args).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn opts(precision: &str, execution: Execution) -> Options {
    Options { precision: Precision::parse(precision).unwrap(), execution, ..Options::default() }
}

#[test]
fn generation_json_contract() {
    let v = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", "4", "--prompt-len", "512", "--output-len", "64"]);
    for key in ["ttft_ms", "tpot_ms", "decode_tokens_per_s", "e2e_ms", "memory_gb", "output_tokens_per_s", "tpot_first_ms", "tpot_last_ms", "max_batch_fits"] {
        assert!(v[key].is_number(), "{key} missing in {v}");
    }
    assert_eq!(v["fits"], true);
    assert_eq!((v["batch"].as_u64(), v["prompt_len"].as_u64(), v["output_len"].as_u64()), (Some(4), Some(512), Some(64)));
    let f = |k: &str| v[k].as_f64().unwrap();
    // e2e = TTFT + (O − 1) · TPOT; decode tokens/s = batch / TPOT.
    assert!((f("e2e_ms") - (f("ttft_ms") + 63.0 * f("tpot_ms"))).abs() < 1e-6 * f("e2e_ms"));
    assert!((f("decode_tokens_per_s") - 4.0 / (f("tpot_ms") / 1000.0)).abs() < 1e-6 * f("decode_tokens_per_s"));
    // Peak memory holds the KV cache of 576 tokens for 4 sequences: 4 × 576 × 0.5 MiB.
    let kv = v["memory"]["kv_cache_gb"].as_f64().unwrap();
    assert!((kv - 4.0 * 576.0 * 0.5 / 1024.0).abs() < 1e-9, "{kv}");
    assert!(f("memory_gb") > kv + v["memory"]["weights_gb"].as_f64().unwrap());
    // The prefill of 4 × 512 tokens takes longer than one decode step.
    assert!(f("ttft_ms") > f("tpot_ms"));
    // A generation runs as serving engines run decode (CUDA graphs) unless asked otherwise;
    // a one-step benchmark stays eager PyTorch.
    assert_eq!(v["execution"], "cuda-graphs");
    let eager = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", "4", "--prompt-len", "512", "--output-len", "64", "--execution", "eager"]);
    assert_eq!(eager["execution"], "eager");
    assert!(eager["tpot_ms"].as_f64().unwrap() > f("tpot_ms"));
    let step = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", "4", "--seq-len", "512"]);
    assert_eq!(step["execution"], "eager", "{step}");
    // Without --prompt-len/--output-len benchmark is one step, as before.
    let step = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--seq-len", "1", "--past", "512"]);
    assert!(step["latency_ms"].is_number() && step["ttft_ms"].is_null());
}

#[test]
fn tpot_grows_with_the_kv_length() {
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("a100").unwrap();
    let e = Engine::new(gpu, &reg.templates, "llama2-7b", opts("fp16", Execution::CudaGraphs)).unwrap();
    let g = serve::generation(&e, 8, 512, 2048).unwrap();
    let (first, last) = (g.tpot_first_ms.unwrap(), g.tpot_last_ms.unwrap());
    assert!(last > first * 1.2, "{first} → {last}");
    assert!(g.tpot_ms.unwrap() > first && g.tpot_ms.unwrap() < last);
    // The sampled decode times never fall as the cache grows.
    assert!(g.decode_samples.windows(2).all(|w| w[1].1 >= w[0].1), "{:?}", g.decode_samples);
    // A longer prompt: slower decode.
    let long = serve::generation(&e, 8, 3000, 64).unwrap();
    let short = serve::generation(&e, 8, 128, 64).unwrap();
    assert!(long.tpot_ms.unwrap() > short.tpot_ms.unwrap());
    // Interpolation against simulating every step (a short run is cheap to do exactly).
    let g = serve::generation(&e, 8, 512, 40).unwrap();
    let exact: f64 = (512..551).map(|past| e.decode(8, past).unwrap().ms).sum::<f64>() / 39.0;
    assert!((g.tpot_ms.unwrap() - exact).abs() < 0.01 * exact, "{} vs {exact}", g.tpot_ms.unwrap());
}

#[test]
fn decode_is_faster_on_faster_memory() {
    let reg = Registry::builtin().unwrap();
    let rate = |name: &str, exec: Execution| {
        let e = Engine::new(reg.gpu(name).unwrap(), &reg.templates, "llama2-7b", opts("fp16", exec)).unwrap();
        serve::generation(&e, 1, 512, 128).unwrap().decode_tokens_per_s.unwrap()
    };
    let (h100, a100, l4) = (rate("h100", Execution::CudaGraphs), rate("a100", Execution::CudaGraphs), rate("l4", Execution::CudaGraphs));
    assert!(h100 > a100 && a100 > l4, "h100 {h100} a100 {a100} l4 {l4}");
    // Batch-1 eager decode pays the framework's host cost per kernel: CUDA graphs are faster.
    assert!(rate("a100", Execution::Eager) < a100);
}

#[test]
fn decode_reads_the_weights_at_a_sensible_fraction_of_dram_bandwidth() {
    let reg = Registry::builtin().unwrap();
    for gpu in ["a100", "h100", "4090", "l4", "3090"] {
        let e = Engine::new(reg.gpu(gpu).unwrap(), &reg.templates, "llama2-7b", opts("fp16", Execution::CudaGraphs)).unwrap();
        let f = serve::generation(&e, 1, 512, 128).unwrap().decode_dram_fraction.unwrap();
        assert!((0.6..0.95).contains(&f), "{gpu}: {f}");
    }
}

#[test]
fn largest_batch_fits_and_one_more_does_not() {
    let reg = Registry::builtin().unwrap();
    for (gpu, model) in [("a100", "llama2-7b"), ("l4", "llama3-8b")] {
        let g = reg.gpu(gpu).unwrap();
        let e = Engine::new(g, &reg.templates, model, opts("fp16", Execution::CudaGraphs)).unwrap();
        let b = e.max_batch(1024, 512).unwrap();
        assert!(b > 1);
        let cap = g.profile.memory.memory_gb;
        assert!(e.generation_memory(b, 1024, 512).unwrap().total_gb <= cap);
        assert!(e.generation_memory(b + 1, 1024, 512).unwrap().total_gb > cap);
    }
    // The same answer through the CLI: benchmark at that batch fits, one more is OOM.
    let v = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--prompt-len", "1024", "--output-len", "512"]);
    let b = v["max_batch_fits"].as_u64().unwrap().to_string();
    let at = json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", &b, "--prompt-len", "1024", "--output-len", "512"]);
    assert_eq!(at["fits"], true);
    let over = (b.parse::<u64>().unwrap() + 1).to_string();
    // It fits on none of the GPUs asked for: the JSON is still written, and the exit code is 1.
    let out = cmd().args(["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", &over, "--prompt-len", "1024", "--output-len", "512", "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: llama2-7b does not fit on a100-sxm4-80gb"));
    let over: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(over["fits"], false);
    assert!(over["ttft_ms"].is_null());
    // A model that does not fit at all: batch 0 fits.
    let e = Engine::new(reg.gpu("l4").unwrap(), &reg.templates, "llama2-70b", opts("fp16", Execution::CudaGraphs)).unwrap();
    assert_eq!(e.max_batch(512, 128).unwrap(), 0);
}

fn sim_config(rate: f64, seed: u64) -> SimConfig {
    SimConfig { rate, requests: 300, prompt_len: 512, output_len: 128, prompt_dist: LenDist::Exp, seed, ..SimConfig::default() }
}

#[test]
fn serve_sim_is_deterministic_in_its_seed() {
    let reg = Registry::builtin().unwrap();
    let run = |seed: u64| {
        let e = Engine::new(reg.gpu("a100").unwrap(), &reg.templates, "llama2-7b", opts("fp16", Execution::CudaGraphs)).unwrap();
        serde_json::to_string(&sim::simulate(&e, &sim_config(8.0, seed)).unwrap()).unwrap()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    // And through the CLI, bit for bit.
    let args = ["serve-sim", "--model", "llama2-7b", "--gpu", "h100", "--rate", "5", "--prompt-len", "256", "--output-len", "64", "--requests", "200", "--prompt-len-dist", "uniform", "--seed", "3", "--format", "json"];
    let a = cmd().args(args).output().unwrap();
    let b = cmd().args(args).output().unwrap();
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn higher_rate_means_higher_latency_and_throughput() {
    let reg = Registry::builtin().unwrap();
    let e = Engine::new(reg.gpu("a100").unwrap(), &reg.templates, "llama2-7b", opts("fp16", Execution::CudaGraphs)).unwrap();
    let low = sim::simulate(&e, &sim_config(1.0, 1)).unwrap();
    let high = sim::simulate(&e, &sim_config(30.0, 1)).unwrap();
    assert!(high.ttft_ms.p50 > low.ttft_ms.p50, "{} vs {}", high.ttft_ms.p50, low.ttft_ms.p50);
    assert!(high.tpot_ms.as_ref().unwrap().p50 > low.tpot_ms.as_ref().unwrap().p50);
    assert!(high.e2e_ms.p90 > low.e2e_ms.p90);
    assert!(high.output_tokens_per_s > low.output_tokens_per_s);
    assert!(high.mean_decode_batch > low.mean_decode_batch);
    // At a low rate requests barely queue: TTFT is about one prefill.
    let prefill = e.prefill(1, 512).unwrap().ms;
    assert!(low.ttft_ms.p50 < 3.0 * prefill, "{} vs {prefill}", low.ttft_ms.p50);
    // Accounting: every request finished with its tokens.
    assert_eq!(high.requests, 300);
    assert!((high.mean_output_len - 128.0).abs() < 1e-9);
}

#[test]
fn a_small_kv_budget_preempts_and_still_finishes() {
    let reg = Registry::builtin().unwrap();
    let e = Engine::new(reg.gpu("h100").unwrap(), &reg.templates, "llama2-7b", opts("fp16", Execution::CudaGraphs)).unwrap();
    // 1 GiB holds 2048 tokens: three 640-token requests.
    let cfg = SimConfig { kv_budget_gb: Some(1.0), prompt_dist: LenDist::Fixed, ..sim_config(20.0, 2) };
    let r = sim::simulate(&e, &cfg).unwrap();
    assert_eq!(r.kv_blocks, 128);
    assert_eq!(r.max_concurrent_kv, 3);
    assert!(r.mean_decode_batch <= 4.0);
    assert!(r.output_tokens_per_s > 0.0 && r.e2e_ms.p50.is_finite());
    // A request longer than the whole budget is a clear error.
    let err = sim::simulate(&e, &SimConfig { kv_budget_gb: Some(0.05), ..sim_config(1.0, 2) }).unwrap_err().to_string();
    assert!(err.contains("KV blocks"), "{err}");
}

#[test]
fn precision_support_follows_the_tensor_cores() {
    let reg = Registry::builtin().unwrap();
    let try_on = |gpu: &str, p: &str| Engine::new(reg.gpu(gpu).unwrap(), &reg.templates, "llama2-7b", opts(p, Execution::CudaGraphs)).map(|_| ()).map_err(|e| e.to_string());
    let err = try_on("a100", "fp8").unwrap_err();
    assert!(err.contains("a100-sxm4-80gb") && err.contains("fp8") && err.contains("Ampere"), "{err}");
    assert!(try_on("v100", "int8").unwrap_err().contains("int8"));
    assert!(try_on("t4", "bf16").unwrap_err().contains("bf16"));
    for ok in [("h100", "fp8"), ("l4", "fp8"), ("a100", "int8"), ("a100", "int4"), ("v100", "w8a16"), ("t4", "fp16")] {
        assert!(try_on(ok.0, ok.1).is_ok(), "{ok:?}");
    }
    cmd()
        .args(["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--precision", "fp8", "--prompt-len", "128", "--output-len", "16"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("a100-sxm4-80gb cannot run fp8").and(predicate::str::contains("Ada, Hopper")));
}

#[test]
fn quantised_weights_and_kv_cache() {
    let reg = Registry::builtin().unwrap();
    let gen = |gpu: &str, p: Precision| {
        let e = Engine::new(reg.gpu(gpu).unwrap(), &reg.templates, "llama2-7b", Options { precision: p, execution: Execution::CudaGraphs, ..Options::default() }).unwrap();
        let g = serve::generation(&e, if gpu == "l4" { 2 } else { 8 }, 4096 - 64, 64).unwrap();
        assert!(g.fits, "{gpu} {}", g.precision);
        g
    };
    let fp16 = gen("l4", Precision::parse("fp16").unwrap());
    let int4 = gen("l4", Precision::parse("int4").unwrap());
    let w8 = gen("l4", Precision::parse("w8a16").unwrap());
    // Weight-only formats: a quarter / half of the bytes (plus scales), faster decode on a
    // memory-bound GPU, int4 faster than int8.
    assert!(int4.memory.weights_gb < 0.3 * fp16.memory.weights_gb && w8.memory.weights_gb < 0.55 * fp16.memory.weights_gb);
    assert!(int4.tpot_ms.unwrap() < w8.tpot_ms.unwrap() && w8.tpot_ms.unwrap() < fp16.tpot_ms.unwrap());
    // An fp8 KV cache: half the KV memory, less decode time at a long context (the
    // attention reads half the bytes), also on a GPU without fp8 math.
    for gpu in ["a100", "h100"] {
        let kv16 = gen(gpu, Precision::parse("fp16").unwrap());
        let kv8 = gen(gpu, Precision::parse("fp16").unwrap().with_kv("fp8").unwrap());
        assert!((kv8.memory.kv_cache_gb * 2.0 - kv16.memory.kv_cache_gb).abs() < 1e-9);
        assert!(kv8.tpot_ms.unwrap() < kv16.tpot_ms.unwrap(), "{gpu}");
        assert_eq!(kv8.kv_dtype, "fp8");
    }
    // fp8 compute on H100 is faster than fp16 for the prefill.
    let fp8 = gen("h100", Precision::parse("fp8").unwrap());
    assert!(fp8.ttft_ms.unwrap() < gen("h100", Precision::parse("fp16").unwrap()).ttft_ms.unwrap());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let base = ["serve-sim", "--model", "llama2-7b", "--gpu", "a100", "--prompt-len", "128"];
    for (extra, msg) in [
        (vec!["--rate", "0", "--output-len", "16"], "--rate"),
        (vec!["--rate", "nan", "--output-len", "16"], "--rate"),
        (vec!["--rate", "2", "--output-len", "0"], "--output-len"),
        (vec!["--rate", "2", "--output-len", "16", "--requests", "0"], "--requests"),
        (vec!["--rate", "2", "--output-len", "16", "--max-batch", "0"], "--max-batch"),
        (vec!["--rate", "2", "--output-len", "16", "--kv-budget-gb=-1"], "--kv-budget-gb"),
        (vec!["--rate", "2", "--output-len", "16", "--kv-dtype", "int4"], "KV-cache dtype"),
        (vec!["--rate", "2", "--output-len", "4096"], "positions"),
    ] {
        cmd().args(base).args(&extra).assert().code(2).stderr(predicate::str::contains(msg)).stderr(predicate::str::contains("panicked").not());
    }
    cmd().args(["serve-sim", "--model", "bert-base", "--gpu", "a100", "--rate", "1", "--prompt-len", "128", "--output-len", "16"]).assert().code(2).stderr(predicate::str::contains("not a decoder"));
    let bench = ["benchmark", "--model", "llama2-7b", "--gpu", "a100"];
    for (extra, msg) in [
        (vec!["--prompt-len", "128"], "--prompt-len and --output-len go together"),
        (vec!["--prompt-len", "128", "--output-len", "0"], "--output-len must be at least 1"),
        (vec!["--prompt-len", "0", "--output-len", "8"], "--prompt-len must be at least 1"),
        (vec!["--prompt-len", "128", "--output-len", "8", "--past", "5"], "--seq-len and --past"),
        (vec!["--prompt-len", "128", "--output-len", "8", "--mode", "training"], "inference"),
        (vec!["--prompt-len", "128", "--output-len", "8", "--batch-size", "0"], "--batch-size"),
    ] {
        cmd().args(bench).args(&extra).assert().code(2).stderr(predicate::str::contains(msg)).stderr(predicate::str::contains("panicked").not());
    }
}

/// Regression: `benchmark --tp` used to be ignored for a generation (one GPU was
/// simulated, and the "does not fit" answer suggested the very --tp it ignored).
#[test]
fn tensor_parallel_generation_and_serving_split_the_model() {
    let gen = |tp: &str| json(&["benchmark", "--model", "llama2-70b", "--gpu", "a100", "--batch-size", "1", "--prompt-len", "128", "--output-len", "16", "--tp", tp]);
    let four = gen("4");
    assert_eq!(four["tp"], 4);
    assert_eq!(four["fits"], true, "{four}");
    // One GPU holds a quarter of the weights (plus the unsharded norms).
    let w4 = four["memory"]["weights_gb"].as_f64().unwrap();
    let one = cmd().args(["benchmark", "--model", "llama2-70b", "--gpu", "a100", "--batch-size", "1", "--prompt-len", "128", "--output-len", "16", "--format", "json"]).output().unwrap();
    assert_eq!(one.status.code(), Some(1));
    let w1 = serde_json::from_slice::<Value>(&one.stdout).unwrap()["memory"]["weights_gb"].as_f64().unwrap();
    assert!((w4 / w1 - 0.25).abs() < 0.01, "{w4} of {w1}");
    // Decode reads a shard per GPU: two GPUs decode faster than one despite the all-reduces.
    let tpot = |tp: &str| json(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", "1", "--prompt-len", "512", "--output-len", "32", "--tp", tp])["tpot_ms"].as_f64().unwrap();
    assert!(tpot("2") < tpot("1"));
    // The server runs the model that does not fit on one GPU across four.
    let s = json(&["serve-sim", "--model", "llama2-70b", "--gpu", "a100", "--tp", "4", "--rate", "1", "--prompt-len", "128", "--output-len", "16", "--requests", "20"]);
    assert_eq!(s["tp"], 4);
    assert!(s["output_tokens_per_s"].as_f64().unwrap() > 0.0);
    // --dp/--pp describe training or step layouts, not one server replica.
    cmd()
        .args(["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--dp", "2", "--batch-size", "2", "--prompt-len", "128", "--output-len", "8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--dp and --pp do not apply"));
    cmd()
        .args(["serve-sim", "--model", "llama2-7b", "--gpu", "a100", "--tp", "3", "--rate", "1", "--prompt-len", "128", "--output-len", "8"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tensor parallelism 3 must divide the 32 heads"));
}

//! Whole-model simulation: lowering, scheduling, memory and the model commands.

use assert_cmd::Command;
use phantom_gpu::graph::transformer::Workload;
use phantom_gpu::graph::zoo;
use phantom_gpu::hw::Registry;
use phantom_gpu::kernel::Dtype;
use phantom_gpu::lower::{self, AttentionImpl, Execution, Mode, Options, Phase, Precision};
use phantom_gpu::run::{self, Keep, ModelRun};
use predicates::prelude::*;

fn opts(dtype: Dtype, mode: Mode, execution: Execution) -> Options {
    Options { precision: Precision::of(dtype), mode, execution, ..Options::default() }
}

fn sim(model: &str, gpu: &str, batch: u64, seq: u64, o: Options) -> ModelRun {
    let reg = Registry::builtin().unwrap();
    let g = zoo::find(model).unwrap().build(Workload { batch, seq_len: seq, past: 0 }).unwrap();
    run::run_model(reg.gpu(gpu).unwrap(), &reg.templates, &g, batch, seq, o, Keep { time_even_if_oom: true, kernels: true }).unwrap()
}

#[test]
fn dag_edges_point_forward_and_training_adds_backward_and_optimizer() {
    let g = zoo::find("gpt2").unwrap().build(Workload { batch: 2, seq_len: 128, past: 0 }).unwrap();
    let inf = lower::lower(&g, &opts(Dtype::Fp16, Mode::Inference, Execution::Eager)).unwrap();
    let train = lower::lower(&g, &opts(Dtype::Fp16, Mode::Training, Execution::Eager)).unwrap();
    for dag in [&inf, &train] {
        for e in dag.dag.edge_indices() {
            let (a, b) = dag.dag.edge_endpoints(e).unwrap();
            assert!(a.index() < b.index(), "edge must point to a later kernel");
        }
    }
    assert!(inf.kernels().all(|(_, k)| k.phase == Phase::Forward));
    let bwd = train.kernels().filter(|(_, k)| k.phase == Phase::Backward).count();
    let fwd = train.kernels().filter(|(_, k)| k.phase == Phase::Forward).count();
    assert!(bwd > fwd, "backward has more kernels ({bwd}) than forward ({fwd})");
    assert_eq!(train.kernels().filter(|(_, k)| k.phase == Phase::Optimizer).count(), 1);
    // Dropout runs only in training.
    assert!(inf.kernels().all(|(_, k)| !k.name.contains("dropout")));
    assert!(train.kernels().any(|(_, k)| k.name.contains("dropout")));
}

#[test]
fn training_costs_about_three_forward_passes() {
    let o = opts(Dtype::Fp16, Mode::Inference, Execution::Eager);
    let inf = sim("llama2-7b", "a100", 4, 1024, o).latency_ms.unwrap();
    let train = sim("llama2-7b", "a100", 4, 1024, Options { mode: Mode::Training, optimizer_step: false, ..o }).latency_ms.unwrap();
    let ratio = train / inf;
    assert!((2.4..3.6).contains(&ratio), "training/inference = {ratio:.2}");
}

#[test]
fn compiled_fuses_pointwise_chains_and_is_not_slower() {
    let eager = sim("gpt2-large", "a100", 4, 1024, opts(Dtype::Fp32, Mode::Inference, Execution::Eager));
    let compiled = sim("gpt2-large", "a100", 4, 1024, opts(Dtype::Fp32, Mode::Inference, Execution::Compiled));
    assert!(compiled.kernels < eager.kernels * 2 / 3, "{} vs {} kernels", compiled.kernels, eager.kernels);
    assert!(compiled.latency_ms.unwrap() < eager.latency_ms.unwrap());
    let graphs = sim("gpt2", "a100", 1, 32, Options { execution: Execution::CudaGraphs, ..opts(Dtype::Fp16, Mode::Inference, Execution::Eager) });
    let plain = sim("gpt2", "a100", 1, 32, opts(Dtype::Fp16, Mode::Inference, Execution::Eager));
    assert!(graphs.latency_ms.unwrap() < 0.5 * plain.latency_ms.unwrap(), "CUDA graphs remove the launch-bound host time");
}

#[test]
fn flash_attention_is_faster_and_smaller_than_eager_attention_for_long_sequences() {
    let base = opts(Dtype::Fp16, Mode::Inference, Execution::Eager);
    let flash = sim("llama2-7b", "h100", 1, 4096, Options { attention: AttentionImpl::Flash, ..base });
    let eager = sim("llama2-7b", "h100", 1, 4096, Options { attention: AttentionImpl::Eager, ..base });
    assert!(flash.latency_ms.unwrap() < eager.latency_ms.unwrap());
    assert!(flash.memory.activations_gb < eager.memory.activations_gb);
}

#[test]
fn memory_breakdown_and_oom_verdict() {
    let o = opts(Dtype::Fp16, Mode::Inference, Execution::Eager);
    let r = sim("llama2-70b", "h100", 1, 4096, o);
    // 69 G parameters in fp16 do not fit in 80 GB.
    assert!((r.memory.weights_gb - 68.98e9 * 2.0 / (1u64 << 30) as f64).abs() < 0.5, "{}", r.memory.weights_gb);
    assert!(!r.fits);
    let r = sim("llama2-7b", "h100", 1, 4096, o);
    assert!(r.fits);
    // KV cache: 2 × layers × tokens × hidden × 2 bytes.
    let kv = 2.0 * 32.0 * 4096.0 * 4096.0 * 2.0 / (1u64 << 30) as f64;
    assert!((r.memory.kv_cache_gb - kv).abs() < 1e-6);
    let t = sim("llama2-7b", "h100", 1, 1024, Options { mode: Mode::Training, ..o });
    // Adam in mixed precision: fp16 weights and grads, fp32 master weights and two moments.
    assert!((t.memory.optimizer_gb / t.memory.weights_gb - 6.0).abs() < 1e-6);
    assert!(t.memory.activations_gb > r.memory.activations_gb);
    // int4 weights take a quarter of fp16 (plus scales).
    let q = sim("llama2-7b", "h100", 1, 1024, Options { precision: Precision::parse("int4").unwrap(), ..o });
    assert!(q.memory.weights_gb < 0.3 * r.memory.weights_gb);
}

#[test]
fn scheduler_places_kernels_after_host_launch_and_dependencies() {
    let r = sim("bert-base", "t4", 1, 32, opts(Dtype::Fp32, Mode::Inference, Execution::Eager));
    let tl = r.timeline.unwrap();
    let mut prev_end = 0.0;
    for k in &tl.kernels {
        assert!(k.start_us >= k.issued_us - 1e-9 && k.start_us >= prev_end - 1e-9, "{}", k.name);
        prev_end = k.end_us;
    }
    assert!((tl.step_ms * 1000.0 - prev_end.max(tl.host_ms * 1000.0)).abs() < 1e-6);
    // Small batch: the host issue rate decides.
    assert!(tl.host_ms > tl.gpu_busy_ms);
}

#[test]
fn deterministic() {
    let o = opts(Dtype::Bf16, Mode::Training, Execution::Compiled);
    let a = sim("mixtral-8x7b", "h100", 2, 512, o);
    let b = sim("mixtral-8x7b", "h100", 2, 512, o);
    assert_eq!(a.latency_ms.unwrap().to_bits(), b.latency_ms.unwrap().to_bits());
}

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

#[test]
fn benchmark_json_contract() {
    let out = cmd().args(["benchmark", "--model", "bert-base", "--gpu", "a100", "--batch-size", "8", "--seq-len", "128", "--format", "json"]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["latency_ms", "throughput_per_s", "memory_gb", "fits", "breakdown"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["breakdown"]["gemm"]["ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn list_models_json_contract() {
    let out = cmd().args(["list-models", "--format", "json"]).output().unwrap();
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.len() >= 30);
    for m in &v {
        assert!(m["name"].is_string() && m["family"].is_string() && m["params"].as_u64().unwrap() > 0);
    }
}

#[test]
fn timeline_is_chrome_trace_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    cmd().args(["benchmark", "--model", "gpt2", "--gpu", "a100,t4", "--seq-len", "64", "--timeline"]).arg(&path).assert().success();
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|e| e["ph"] == "X" && e["pid"] == 1), "both GPUs have tracks");
    assert!(events.iter().filter(|e| e["ph"] == "X").all(|e| e["ts"].as_f64().is_some() && e["dur"].as_f64().unwrap() > 0.0));
}

#[test]
fn bad_model_inputs_are_clear_errors() {
    cmd().args(["benchmark", "--model", "llama2-7", "--gpu", "a100"]).assert().code(2).stderr(predicate::str::contains("unknown model 'llama2-7' (did you mean:"));
    cmd().args(["benchmark", "--model", "gpt2", "--gpu", "a100", "--batch-size", "0"]).assert().code(2).stderr(predicate::str::contains("at least 1"));
    cmd().args(["benchmark", "--model", "gpt2", "--gpu", "a100", "--seq-len", "5000"]).assert().code(2).stderr(predicate::str::contains("longer than the model allows"));
    cmd().args(["benchmark", "--model", "gpt2", "--gpu", "a100", "--precision", "fp12"]).assert().code(2).stderr(predicate::str::contains("unknown precision"));
    cmd()
        .args(["benchmark", "--model", "llama2-70b", "--gpu", "t4", "--seq-len", "128"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("OOM").and(predicate::str::contains("does not fit")))
        .stderr(predicate::str::contains("error: llama2-70b does not fit on t4"));
}

#[test]
fn compare_models_table() {
    cmd()
        .args(["compare-models", "--models", "gpt2,bert-base", "--gpus", "a100,t4", "--batch-sizes", "1,8", "--format", "csv"])
        .assert()
        .success()
        .stdout(predicate::str::contains("model,gpu,batch").and(predicate::function(|s: &str| s.lines().count() == 9)));
}

#[test]
fn repeated_steps_cost_the_same_each() {
    use phantom_gpu::graph::vision::{diffusion_pipeline, Diffusion};
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("a100").unwrap();
    let o = opts(Dtype::Fp16, Mode::Inference, Execution::Eager);
    let t = |steps| {
        let g = diffusion_pipeline(Diffusion::Sd15, 1, 512, steps, true).unwrap();
        let r = run::run_model(gpu, &reg.templates, &g, 1, 1, o, Keep::default()).unwrap();
        (r.latency_ms.unwrap(), g.flops())
    };
    let ((t2, f2), (t3, f3), (t5, f5)) = (t(2), t(3), t(5));
    assert!(((t5 - t3) - 2.0 * (t3 - t2)).abs() < 1e-6 * t5, "{t2} {t3} {t5}");
    assert!(((f5 - f3) - 2.0 * (f3 - f2)).abs() < 1e-6 * f5);
    assert!(t3 > t2);
}

#[test]
fn onnx_and_config_files_are_models_and_missing_ones_are_clear_errors() {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf/llama-2-7b.json");
    cmd().args(["benchmark", "--model", cfg, "--gpu", "a100", "--seq-len", "128"]).assert().success().stdout(predicate::str::contains("yes"));
    cmd().args(["benchmark", "--model", "nope/model.onnx", "--gpu", "a100"]).assert().code(1).stderr(predicate::str::contains("nope/model.onnx").and(predicate::str::contains("no such file")));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not a protobuf").unwrap();
    cmd().args(["load-model", "--model"]).arg(&bad).assert().code(1).stderr(predicate::str::contains("bad.onnx").and(predicate::str::contains("panicked").not()));
    let badjson = dir.path().join("config.json");
    std::fs::write(&badjson, b"{\"model_type\": \"llama\",").unwrap();
    cmd().args(["load-model", "--model"]).arg(&badjson).assert().code(1).stderr(predicate::str::contains("config.json"));
}

#[test]
fn data_and_pipeline_parallel_steps() {
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("a100-40gb").unwrap();
    let model = zoo::find("gpt2-large").unwrap();
    let base = Options { mode: Mode::Training, optimizer_step: false, ..opts(Dtype::Fp32, Mode::Training, Execution::Eager) };
    let step = |share: u64, parallel: lower::Parallel| {
        let g = model.build(Workload { batch: share, seq_len: 1024, past: 0 }).unwrap();
        run::run_model(gpu, &reg.templates, &g, share, 1024, Options { parallel, ..base }, Keep { time_even_if_oom: true, kernels: true }).unwrap()
    };
    let single = step(4, lower::Parallel::default());
    let one = step(1, lower::Parallel::default());
    let dp = step(1, lower::Parallel { dp: 4, ..Default::default() });
    // Four replicas of batch 1: one replica's step plus the part of the all-reduce that
    // backward does not hide; the global batch is 4.
    assert_eq!(dp.batch, 4);
    assert!(dp.latency_ms.unwrap() > one.latency_ms.unwrap() && dp.latency_ms.unwrap() < single.latency_ms.unwrap());
    let tl = dp.timeline.unwrap();
    assert!(tl.kernels.iter().any(|k| k.category == "collective" && k.stream == 1));
    // One micro-batch through four stages: no overlap, so about the single-GPU time.
    let pp = step(4, lower::Parallel { pp: 4, micro_batches: 1, ..Default::default() });
    let ratio = pp.latency_ms.unwrap() / single.latency_ms.unwrap();
    assert!((1.0..1.1).contains(&ratio), "pp4 with one micro-batch / single GPU = {ratio}");
    assert!(pp.memory.weights_gb < single.memory.weights_gb / 3.9);
    // More micro-batches fill the pipeline.
    let pp8 = step(1, lower::Parallel { pp: 4, micro_batches: 4, ..Default::default() });
    assert!(pp8.latency_ms.unwrap() < pp.latency_ms.unwrap());
}

#[test]
fn tensor_parallel_shards_weights_and_adds_all_reduces() {
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("h100").unwrap();
    let wl = Workload { batch: 4, seq_len: 1024, past: 0 };
    let full = phantom_gpu::graph::load_model_tp("llama2-13b", wl, 1).unwrap();
    let shard = phantom_gpu::graph::load_model_tp("llama2-13b", wl, 4).unwrap();
    // Everything but the norms is split four ways.
    let ratio = full.params() as f64 / shard.params() as f64;
    assert!((3.95..4.0).contains(&ratio), "{ratio}");
    // Two all-reduces per layer (attention and MLP outputs) plus the embedding.
    let all_reduces = shard.nodes.iter().filter(|n| n.op.kind() == "all_reduce").count();
    assert_eq!(all_reduces, 2 * 40 + 1);
    let o = Options { parallel: lower::Parallel { tp: 4, ..Default::default() }, ..opts(Dtype::Bf16, Mode::Inference, Execution::Eager) };
    let t4 = run::run_model(gpu, &reg.templates, &shard, 4, 1024, o, Keep::default()).unwrap();
    let t1 = run::run_model(gpu, &reg.templates, &full, 4, 1024, Options { parallel: Default::default(), ..o }, Keep::default()).unwrap();
    let speedup = t1.latency_ms.unwrap() / t4.latency_ms.unwrap();
    assert!((1.5..4.0).contains(&speedup), "TP4 speed-up {speedup:.2}");
    assert!(phantom_gpu::graph::load_model_tp("llama2-13b", wl, 3).is_err(), "40 heads do not split 3 ways");
    assert!(phantom_gpu::graph::load_model_tp("resnet50", wl, 2).is_err());
}

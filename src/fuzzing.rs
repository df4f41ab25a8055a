//! Entry points for fuzzing: one function per parser of outside input, each taking the raw
//! bytes of one file and doing with them what the command line does with a file of that
//! kind (parse, then use the result). The cargo-fuzz targets in `fuzz/` and the
//! regression test `tests/fuzz_regressions.rs` both call these, so they cannot drift.
//!
//! Bad input must come back as an `Err`, or, where the command goes on past a bad row or
//! kernel, as a status beside it: the functions return those notes (row statuses,
//! warnings) with `Ok`. A panic is a bug, and so is an `Ok` that is not sane (a time that
//! is not a finite non-negative number): the functions assert that, so the fuzzer
//! reports it as a crash. Where using a parsed file costs time that grows
//! with its sizes, the functions stop after the parse above a bound (stated at each),
//! to keep fuzzing fast; the parsers themselves reject absurd sizes.

use crate::error::{Error, Result};
use crate::graph::transformer::Workload;
use crate::hw::{Gpu, Registry};
use crate::kernel::{self, Dtype, Op, Timing};
use crate::lower::Options;
use crate::trace::canonical::{TraceFile, TraceKind};
use crate::trace::kineto::{classify, KinetoTrace};
use std::path::Path;
use std::sync::OnceLock;

/// The built-in GPUs, read once.
fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::builtin().expect("the embedded profiles parse"))
}

fn text<'a>(data: &'a [u8], what: &str) -> Result<&'a str> {
    std::str::from_utf8(data).map_err(|e| Error::File { path: what.into(), msg: format!("not UTF-8 text: {e}") })
}

fn sane(what: &str, ms: f64) {
    assert!(ms.is_finite() && ms >= 0.0, "{what}: predicted {ms} ms");
}

/// A model step on a GPU, as `benchmark` runs it; the time must be sane.
fn run_step(gpu: &Gpu, g: &crate::graph::Graph, batch: u64, seq_len: u64) -> Result<()> {
    let keep = crate::run::Keep { time_even_if_oom: true, kernels: false };
    let r = crate::run::run_model(gpu, &registry().templates, g, batch, seq_len, Options::default(), keep)?;
    sane(&g.name, r.latency_ms.unwrap_or(0.0));
    assert!(r.memory_gb.is_finite(), "{}: memory {} GB", g.name, r.memory_gb);
    Ok(())
}

/// Most nodes a graph may have for `onnx` to simulate it (the import itself is unbounded).
pub const ONNX_SIMULATE_MAX_NODES: usize = 256;

/// An ONNX model file (`--model FILE.onnx`): import at batch 2, count parameters and FLOPs,
/// and simulate one inference step on an A100 when the graph is small.
pub fn onnx(data: &[u8]) -> Result<Vec<String>> {
    let g = crate::graph::onnx::load_bytes(data, "fuzz.onnx", 2)?;
    let _ = (g.params(), g.flops(), g.op_breakdown());
    if g.nodes.len() <= ONNX_SIMULATE_MAX_NODES {
        run_step(registry().gpu("a100").expect("built-in"), &g, 2, 1)?;
    }
    Ok(g.warnings)
}

/// A `--hardware-profiles` TOML (our layout, `[gpu.<key>]` tables, or the original
/// PhantomGPU `[profiles.<name>]` layout): add it to the built-in GPUs, then predict a
/// GEMM, an attention, a convolution, a memory-bound op and an all-reduce in fp16 on every
/// GPU it added, and an fp32 GEMM timed as an eager call.
pub fn gpu_profile(data: &[u8]) -> Result<Vec<String>> {
    let text = text(data, "fuzz.toml")?;
    let mut reg = registry().clone();
    let added = reg.add_str("fuzz.toml", text)?;
    let ops = [
        ("gemm", "m=512;n=1024;k=768;bias=1"),
        ("attention", "b=2;hq=8;hkv=8;sq=128;skv=128;d=64;causal=1"),
        ("conv2d", "n=2;c=64;h=28;w=28;k=64;r=3;s=3;stride=1;pad=1"),
        ("layernorm", "rows=4096;cols=1024"),
        ("all_reduce", "bytes=1048576;gpus=8"),
    ];
    for key in &added {
        let gpu = reg.gpu(key)?;
        for (i, (op, shape)) in ops.iter().enumerate() {
            let op = Op::parse(op, shape).expect("fixed shapes parse");
            let runs: &[(Dtype, Timing)] = if i == 0 { &[(Dtype::Fp16, Timing::Kernel), (Dtype::Fp32, Timing::Op)] } else { &[(Dtype::Fp16, Timing::Kernel)] };
            for &(dtype, timing) in runs {
                // A GPU without that dtype's math is an error, which is fine.
                if let Ok(p) = kernel::predict(gpu, &reg.templates, &op, dtype, timing) {
                    sane(&format!("{key} {}", op.name()), p.predicted_ms);
                }
            }
        }
    }
    Ok(reg.warnings)
}

/// Most rows `trace_csv` replays (parsing reads them all).
pub const TRACE_REPLAY_MAX_ROWS: usize = 64;

/// A canonical trace CSV (`replay FILE`): parse, then replay each kernel row on its own
/// GPU and on an H100 (`--gpu h100`). Model rows are parsed and their graph built from
/// the zoo (`validate::models::{parse_row, build_graph}`) but not simulated: a
/// whole-model step takes too long for a fuzzer. A row's `config` tag, which names a
/// file next to the trace, is dropped (the `hf_config` target covers those files).
pub fn trace_csv(data: &[u8]) -> Result<Vec<String>> {
    let file = TraceFile::from_reader(Path::new("fuzz.csv"), data)?;
    let reg = registry();
    let h100 = reg.gpu("h100").expect("built-in");
    let mut notes = vec![];
    for i in 0..file.rows.len().min(TRACE_REPLAY_MAX_ROWS) {
        let line = file.lines[i];
        match file.kind {
            TraceKind::Kernels => {
                for target in [None, Some(h100)] {
                    let r = crate::validate::replay::replay_row(reg, &file, i, target);
                    if let Some(ms) = r.predicted_ms {
                        sane(&format!("line {line}"), ms);
                    }
                    if !r.status.is_empty() {
                        notes.push(format!("line {line}: {}", r.status));
                    }
                }
            }
            TraceKind::Models => {
                let built = crate::validate::models::parse_row(&file, i).and_then(|mut row| {
                    row.config = None;
                    crate::validate::models::build_graph(&row, Path::new("."))
                });
                if let Err(e) = built {
                    notes.push(format!("line {line}: {e}"));
                }
            }
        }
    }
    Ok(notes)
}

/// A PyTorch profiler trace (`replay TRACE.json[.gz]`): parse (plain or gzip), classify
/// every kernel, and replay it on an H100, recorded on the GPU it names (else an A100).
pub fn kineto(data: &[u8]) -> Result<Vec<String>> {
    let trace = KinetoTrace::from_reader(data, Path::new("fuzz.json"))?;
    let mapped = classify::classify(&trace);
    assert_eq!(mapped.len(), trace.gpu.len(), "one classification per GPU event");
    let reg = registry();
    let recorded = trace.device_name().and_then(|n| reg.gpu(n).ok()).unwrap_or(reg.gpu("a100").expect("built-in"));
    let target = reg.gpu("h100").expect("built-in");
    let r = crate::validate::kineto::replay(&trace, &mapped, recorded, target, &reg.templates)?;
    for row in &r.rows {
        if let Some(ms) = row.predicted_ms {
            sane(&row.name, ms);
        }
    }
    let _ = crate::validate::kineto::chrome_trace(&trace, &r);
    Ok(r.rows.iter().map(|row| format!("{}: {}", row.name, row.status)).collect())
}

/// Most transformer blocks (layers of every tower, plus one per expert MLP) a config may
/// have for `hf_config` to build and simulate it (`parse` bounds the sizes itself).
pub const HF_BUILD_MAX_BLOCKS: u64 = 256;

/// A HuggingFace `config.json` (`--model config.json`): parse, count the parameters, build
/// one forward step of 2 sequences of up to 16 tokens and simulate it on an A100, when the
/// model has at most `HF_BUILD_MAX_BLOCKS` blocks.
pub fn hf_config(data: &[u8]) -> Result<Vec<String>> {
    let text = text(data, "fuzz/config.json")?;
    let m = crate::graph::hf_config::parse(text, "fuzz/config.json")?;
    let blocks: u64 = m
        .towers
        .iter()
        .map(|t| {
            let c = &t.config;
            let layers = c.layers + c.decoder_layers;
            layers + c.moe.map_or(0, |moe| layers.div_ceil(moe.every) * moe.experts)
        })
        .sum();
    if blocks > HF_BUILD_MAX_BLOCKS {
        return Ok(m.warnings);
    }
    let params = m.params()?;
    assert!(params > 0, "a model without parameters");
    let max = m.max_positions();
    let seq_len = if max == 0 { 16 } else { max.min(16) };
    let g = m.build(Workload { batch: 2, seq_len, past: 0 })?;
    run_step(registry().gpu("a100").expect("built-in"), &g, 2, seq_len)?;
    Ok(g.warnings)
}

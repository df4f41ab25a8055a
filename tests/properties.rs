//! Property tests (proptest) over the kernel and model simulators: no panic for any shape,
//! dtype and GPU; results finite and positive; monotone where physics says so; the same
//! bits for the same input.
//!
//! Case counts are set per block below (`cases`); `PROPTEST_CASES` overrides them all for a
//! longer local run. A failing case is shrunk and saved under `proptest-regressions/`,
//! which is committed so that CI replays it.

use phantom_gpu::graph::{self, transformer::Workload, zoo};
use phantom_gpu::hw::{Gpu, Registry};
use phantom_gpu::kernel::{self, Dtype, Op, Timing};
use phantom_gpu::lower::{self, memory, Mode, Options, Precision};
use phantom_gpu::run::{self, Keep};
use phantom_gpu::Error;
use proptest::prelude::*;
use std::sync::OnceLock;

fn reg() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::builtin().expect("built-in data loads"))
}

fn gpus() -> &'static [Gpu] {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    GPUS.get_or_init(|| reg().gpus().cloned().collect())
}

/// Cases per property: the block's default unless `PROPTEST_CASES` is set.
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases: n, ..ProptestConfig::default() }
}

/// Floating-point rounding: sums in another order may differ in the last bits.
const ROUNDING: f64 = 1e-12;

const DTYPES: [Dtype; 6] = [Dtype::Fp32, Dtype::Tf32, Dtype::Fp16, Dtype::Bf16, Dtype::Fp8, Dtype::Int8];

fn gpu() -> impl Strategy<Value = &'static Gpu> {
    (0..gpus().len()).prop_map(|i| &gpus()[i])
}

fn dtype() -> impl Strategy<Value = Dtype> {
    (0..DTYPES.len()).prop_map(|i| DTYPES[i])
}

/// A size spread evenly over powers of two up to 2^max_log2 (uniform sizes would be
/// almost all large).
fn dim(max_log2: u32) -> impl Strategy<Value = u64> {
    (0..=max_log2).prop_flat_map(move |e| (1u64 << e)..=(2u64 << e).min(1 << max_log2))
}

fn elementwise_fn() -> impl Strategy<Value = String> {
    (0..kernel::op::ELEMENTWISE_FNS.len()).prop_map(|i| kernel::op::ELEMENTWISE_FNS[i].to_string())
}

/// Any kernel the CLI accepts, with valid shapes.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (dim(6), dim(15), dim(15), dim(15), any::<bool>()).prop_map(|(b, m, n, k, bias)| Op::Gemm { b, m, n, k, bias }),
        (dim(14), dim(14), dim(14), prop_oneof![Just(4u64), Just(8)], any::<bool>()).prop_map(|(m, n, k, bits, bias)| Op::QuantGemm { m, n, k, bits, bias }),
        (dim(6), dim(10), dim(8), dim(8), dim(10), 1u64..=7, 1u64..=4, 0u64..=3).prop_filter_map("filter larger than input", |(n, c, h, w, k, r, stride, pad)| {
            (h + 2 * pad >= r && w + 2 * pad >= r).then_some(Op::Conv2d { n, c, h, w, k, r, s: r, stride, pad })
        }),
        (dim(6), dim(7), 0u32..=3, dim(14), dim(14), prop_oneof![Just(64u64), Just(80), Just(96), Just(128), Just(256)], any::<bool>()).prop_map(
            |(b, hkv, group_log2, sq, extra, d, causal)| Op::Attention { b, hq: hkv << group_log2, hkv, sq, skv: sq + extra - 1, d, causal }
        ),
        (elementwise_fn(), dim(30), 1u64..=3).prop_map(|(func, numel, inputs)| Op::Elementwise { func, numel, inputs }),
        (dim(20), dim(17)).prop_map(|(rows, cols)| Op::Softmax { rows, cols }),
        (dim(20), dim(15)).prop_map(|(rows, cols)| Op::Layernorm { rows, cols }),
        (dim(20), dim(15)).prop_map(|(rows, cols)| Op::Rmsnorm { rows, cols }),
        (dim(17), dim(15)).prop_map(|(tokens, cols)| Op::SiluMul { tokens, cols }),
        (dim(17), dim(7), 0u32..=3, prop_oneof![Just(64u64), Just(128)]).prop_map(|(tokens, hkv, g, d)| Op::Rope { tokens, hq: hkv << g, hkv, d }),
        (dim(17), dim(14), dim(18)).prop_map(|(tokens, dim, vocab)| Op::Embedding { tokens, dim, vocab }),
        (dim(34), dim(4), dim(3)).prop_map(|(bytes, gpn, nodes)| Op::AllReduce { bytes, gpus: gpn * nodes, nodes, gpus_per_node: gpn }),
        (dim(34), dim(4), dim(3)).prop_map(|(bytes, gpn, nodes)| Op::SendRecv { bytes, gpus: gpn * nodes, nodes, gpus_per_node: gpn }),
    ]
}

/// A prediction, or the one error a valid shape may give: the GPU lacks the dtype.
fn predict(gpu: &Gpu, op: &Op, dtype: Dtype, timing: Timing) -> Result<Option<f64>, TestCaseError> {
    match kernel::predict(gpu, &reg().templates, op, dtype, timing) {
        Ok(p) => {
            prop_assert!(p.predicted_ms.is_finite() && p.predicted_ms > 0.0, "{} {op:?} {dtype}: {} ms", gpu.key(), p.predicted_ms);
            prop_assert!(p.kernel_ms.is_finite() && p.kernel_ms > 0.0);
            prop_assert!(p.host_ms.is_finite() && p.host_ms >= 0.0);
            prop_assert!(p.clock_mhz.is_finite() && p.clock_mhz > 0.0);
            Ok(Some(p.predicted_ms))
        }
        Err(Error::Unsupported { .. }) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("{} {op:?} {dtype}: unexpected error {e}", gpu.key()))),
    }
}

/// The kernel a library picks and the CTAs it launches.
fn grid(gpu: &Gpu, op: &Op, dtype: Dtype) -> Option<(u64, Option<String>)> {
    kernel::predict(gpu, &reg().templates, op, dtype, Timing::Kernel).map(|p| (p.ctas, p.tile)).ok()
}

/// The same op with one size grown by `factor` (≥ 1): strictly more work.
fn grown(op: &Op, factor: u64) -> Op {
    let mut op = op.clone();
    match &mut op {
        Op::Gemm { m, .. } | Op::QuantGemm { m, .. } => *m *= factor,
        Op::Conv2d { n, .. } => *n *= factor,
        Op::Attention { skv, .. } => *skv *= factor,
        Op::Elementwise { numel, .. } => *numel *= factor,
        Op::Softmax { rows, .. } | Op::Layernorm { rows, .. } | Op::Rmsnorm { rows, .. } => *rows *= factor,
        Op::SiluMul { tokens, .. } | Op::Rope { tokens, .. } | Op::Embedding { tokens, .. } => *tokens *= factor,
        Op::AllReduce { bytes, .. } | Op::SendRecv { bytes, .. } => *bytes *= factor,
    }
    op
}

/// A copy of the GPU with more DRAM bandwidth and more SMs: a bigger part of the same chip,
/// so with the same power and L2 per SM. (With the board power and L2 held, more SMs can
/// be slower, and that is physics too: more SMs busy at once clock lower
/// (`clock_falls_under_power_limit_for_tensor_work` in tests/physics.rs), and more rows in
/// flight can outgrow the L2 that a second pass re-reads.)
fn bigger(gpu: &Gpu, bandwidth: f64, extra_sms: u32) -> Gpu {
    let mut g = gpu.clone();
    let p = std::sync::Arc::make_mut(&mut g.profile);
    let scale = (p.compute.sm_count + extra_sms) as f64 / p.compute.sm_count as f64;
    p.power.tdp_w *= scale;
    p.memory.l2_mib *= scale;
    p.memory.dram_bandwidth_gbs *= bandwidth;
    if let Some(m) = p.memory.dram_bandwidth_measured_gbs.as_mut() {
        *m *= bandwidth;
    }
    p.compute.sm_count += extra_sms;
    g
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn any_kernel_on_any_gpu_is_finite_and_positive(gpu in gpu(), op in op(), dtype in dtype(), op_timing in any::<bool>()) {
        let timing = if op_timing { Timing::Op } else { Timing::Kernel };
        predict(gpu, &op, dtype, timing)?;
    }

    #[test]
    fn the_same_input_gives_the_same_bits(gpu in gpu(), op in op(), dtype in dtype()) {
        let a = kernel::predict(gpu, &reg().templates, &op, dtype, Timing::Kernel).map(|p| p.predicted_ms.to_bits()).ok();
        let b = kernel::predict(gpu, &reg().templates, &op, dtype, Timing::Kernel).map(|p| p.predicted_ms.to_bits()).ok();
        prop_assert_eq!(a, b);
    }
}

proptest! {
    #![proptest_config(cases(1000))]

    #[test]
    fn more_work_is_never_faster(gpu in gpu(), op in op(), dtype in dtype(), factor in 2u64..=4) {
        let more = grown(&op, factor);
        let (Some(small), Some(large)) = (predict(gpu, &op, dtype, Timing::Kernel)?, predict(gpu, &more, dtype, Timing::Kernel)?) else {
            return Ok(());
        };
        // As below: a different FlashAttention KV split, or the decode kernel instead of the
        // prefill one, is a library choice, not physics.
        if matches!(op, Op::Attention { .. }) && grid(gpu, &op, dtype) != grid(gpu, &more, dtype) {
            return Ok(());
        }
        prop_assert!(large >= small * (1.0 - ROUNDING), "{} {dtype} {op:?}: ×{factor} the work takes {large} ms < {small} ms", gpu.key());
    }

    #[test]
    fn more_bandwidth_or_sms_is_never_slower(gpu in gpu(), op in op(), dtype in dtype(), bw in 1.0f64..3.0, extra in 0u32..64) {
        let Some(base) = predict(gpu, &op, dtype, Timing::Kernel)? else { return Ok(()) };
        let big = bigger(gpu, bw, extra);
        let Some(faster) = predict(&big, &op, dtype, Timing::Kernel)? else { return Ok(()) };
        // FlashAttention picks its KV split from the SM count and the keys by a
        // wave-efficiency rule that is not monotone (nor is the real kernel's time, which
        // adds a combine kernel when it splits): compare equal splits only.
        if matches!(op, Op::Attention { .. }) && grid(gpu, &op, dtype) != grid(&big, &op, dtype) {
            return Ok(());
        }
        prop_assert!(faster <= base * (1.0 + ROUNDING), "{} {dtype} {op:?}: ×{bw:.2} bandwidth and +{extra} SMs take {faster} ms > {base} ms", gpu.key());
    }
}

fn decoders() -> &'static [zoo::ZooModel] {
    static M: OnceLock<Vec<zoo::ZooModel>> = OnceLock::new();
    M.get_or_init(|| zoo::models().into_iter().filter(|m| m.is_decoder()).collect())
}

fn zoo_models() -> &'static [zoo::ZooModel] {
    static M: OnceLock<Vec<zoo::ZooModel>> = OnceLock::new();
    M.get_or_init(zoo::models)
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn a_longer_sequence_never_shrinks_the_kv_cache(i in 0..decoders().len(), batch in 1u64..=16, s in 1u64..=2048, more in 1u64..=2048, past in 0u64..=1024) {
        let m = &decoders()[i];
        let max = m.max_positions().unwrap_or(2048);
        let (s1, s2) = (s.min(max), (s + more).min(max));
        let past = past.min(max - s2);
        let opts = Options { precision: Precision::parse("fp16").unwrap(), ..Options::default() };
        let mem = |seq: u64| -> Result<memory::MemoryBreakdown, TestCaseError> {
            let g = m.build(Workload { batch, seq_len: seq, past }).map_err(|e| TestCaseError::fail(e.to_string()))?;
            Ok(memory::estimate(&g, &opts, false))
        };
        let (a, b) = (mem(s1)?, mem(s2)?);
        prop_assert!(b.kv_cache_gb >= a.kv_cache_gb, "{}: KV {} GiB at {s2} tokens < {} at {s1}", m.name, b.kv_cache_gb, a.kv_cache_gb);
        prop_assert!(b.total_gb >= a.total_gb, "{}: memory {} GiB at {s2} tokens < {} at {s1}", m.name, b.total_gb, a.total_gb);
        prop_assert!(a.kv_cache_gb > 0.0 && a.total_gb.is_finite());
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Any zoo model on any GPU, inference or training, at any precision: a finite, positive
    /// step or a clear error, never a panic; the same bits twice.
    #[test]
    fn any_model_on_any_gpu(i in 0..zoo_models().len(), gpu in gpu(), batch in 1u64..=4, seq_log2 in 4u32..=10, training in any::<bool>(), p in 0usize..5) {
        let m = &zoo_models()[i];
        let seq = (1u64 << seq_log2).min(m.default_seq_len().max(1));
        let precision = ["fp32", "fp16", "bf16", "fp8", "int4"][p];
        let opts = Options {
            precision: Precision::parse(precision).unwrap(),
            mode: if training { Mode::Training } else { Mode::Inference },
            ..Options::default()
        };
        let g = match graph::load_model(m.name, Workload { batch, seq_len: seq, past: 0 }) {
            Ok(g) => g,
            Err(e) => return Err(TestCaseError::fail(format!("{} does not build at batch {batch}, seq {seq}: {e}", m.name))),
        };
        let keep = Keep { time_even_if_oom: true, kernels: false };
        let once = run::run_model(gpu, &reg().templates, &g, batch, seq, opts, keep);
        match once {
            Ok(r) => {
                let ms = r.latency_ms.unwrap();
                prop_assert!(ms.is_finite() && ms > 0.0, "{} on {}: {ms} ms", m.name, gpu.key());
                prop_assert!(r.memory_gb.is_finite() && r.memory_gb > 0.0);
                let again = run::run_model(gpu, &reg().templates, &g, batch, seq, opts, keep).unwrap();
                prop_assert_eq!(ms.to_bits(), again.latency_ms.unwrap().to_bits());
            }
            // The clear refusals: a dtype the GPU lacks, training a pipeline or a weight-only model.
            Err(Error::Unsupported { .. }) | Err(Error::Usage(_)) => {}
            Err(e) => return Err(TestCaseError::fail(format!("{} on {} ({precision}, training {training}): {e}", m.name, gpu.key()))),
        }
    }
}

#[test]
fn lowering_rejects_training_at_weight_only_precision() {
    let g = graph::load_model("gpt2", Workload { batch: 1, seq_len: 16, past: 0 }).unwrap();
    let opts = Options { precision: Precision::parse("int4").unwrap(), mode: Mode::Training, ..Options::default() };
    assert!(matches!(lower::lower(&g, &opts), Err(Error::Usage(_))));
}

//! Speed of whole-model simulation: one large LLM prefill end to end, and a
//! compare-models sweep over the whole zoo × every GPU × batch sizes 1, 8, 32.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use phantom_gpu::graph::transformer::Workload;
use phantom_gpu::graph::zoo;
use phantom_gpu::hw::Registry;
use phantom_gpu::lower::{Options, Precision};
use phantom_gpu::kernel::Dtype;
use phantom_gpu::run::{self, Keep};
use std::time::Duration;

fn llama70b_prefill(c: &mut Criterion) {
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("h100").unwrap();
    let model = zoo::find("llama2-70b").unwrap();
    let wl = Workload { batch: 1, seq_len: 4096, past: 0 };
    let opts = Options { precision: Precision::of(Dtype::Fp16), ..Options::default() };
    c.bench_function("llama2_70b_prefill_4096_h100_end_to_end", |b| {
        b.iter(|| {
            let g = model.build(black_box(wl)).unwrap();
                    black_box(run::run_model(gpu, &reg.templates, &g, wl.batch, wl.seq_len, opts, Keep { time_even_if_oom: true, kernels: false }).unwrap())
        })
    });
}

fn zoo_sweep(c: &mut Criterion) {
    let reg = Registry::builtin().unwrap();
    let gpus: Vec<_> = reg.gpus().collect();
    let opts = Options::default();
    let mut g = c.benchmark_group("compare_models");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("whole_zoo_x_every_gpu_x_batch_1_8_32", |b| {
        b.iter(|| {
            let mut graphs = Vec::new();
            for m in zoo::models() {
                for batch in [1, 8, 32] {
                    let wl = Workload { batch, seq_len: m.default_seq_len(), past: 0 };
                    graphs.push((wl, m.build(wl).unwrap()));
                }
            }
            black_box(run::sweep(&reg, &graphs, &gpus, opts).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, llama70b_prefill, zoo_sweep);
criterion_main!(benches);

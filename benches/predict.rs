//! Speed: one kernel prediction, and replaying every kernel row of ../shared/traces.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use phantom_gpu::hw::Registry;
use phantom_gpu::kernel::{self, Dtype, Op, Timing};
use phantom_gpu::trace::canonical::TraceFile;
use phantom_gpu::validate::replay_kernels;
use std::path::Path;
use std::time::Duration;

fn single(c: &mut Criterion) {
    let reg = Registry::builtin().unwrap();
    let gpu = reg.gpu("a100").unwrap();
    let op = Op::Gemm { b: 1, m: 4096, n: 4096, k: 4096, bias: false };
    c.bench_function("predict_gemm_fp16_a100", |b| {
        b.iter(|| kernel::predict(gpu, &reg.templates, black_box(&op), Dtype::Fp16, Timing::Kernel).unwrap())
    });
    let op32 = Op::Gemm { b: 12, m: 512, n: 512, k: 64, bias: false };
    let t4 = reg.gpu("t4").unwrap();
    c.bench_function("predict_gemm_fp32_t4", |b| {
        b.iter(|| kernel::predict(t4, &reg.templates, black_box(&op32), Dtype::Fp32, Timing::Op).unwrap())
    });
    let ew = Op::Elementwise { func: "gelu".into(), numel: 1 << 24, inputs: 1 };
    c.bench_function("predict_elementwise_a100", |b| {
        b.iter(|| kernel::predict(gpu, &reg.templates, black_box(&ew), Dtype::Fp32, Timing::Op).unwrap())
    });
}

fn replay_all(c: &mut Criterion) {
    let dir = Path::new("../shared/traces");
    let files = ["neusight.kernels.csv", "vidur.kernels.csv", "vidur.collectives.csv", "neusight.model_ops.csv"];
    if !files.iter().all(|f| dir.join(f).exists()) {
        eprintln!("skipping replay benchmark: ../shared/traces not found");
        return;
    }
    let reg = Registry::builtin().unwrap();
    let traces: Vec<TraceFile> = files.iter().map(|f| TraceFile::read(&dir.join(f)).unwrap()).collect();
    let rows: usize = traces.iter().map(|t| t.rows.len()).sum();
    eprintln!("replaying {rows} rows per iteration");
    let mut g = c.benchmark_group("replay");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("all_shared_kernel_rows", |b| {
        b.iter(|| {
            for t in &traces {
                black_box(replay_kernels(&reg, t, None, &|_| {}));
            }
        })
    });
    g.bench_function("read_and_replay_all_shared_kernel_rows", |b| {
        b.iter(|| {
            for f in files {
                let t = TraceFile::read(&dir.join(f)).unwrap();
                black_box(replay_kernels(&reg, &t, None, &|_| {}));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, single, replay_all);
criterion_main!(benches);

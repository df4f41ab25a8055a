//! Speed of the validation commands end to end, as a user runs them (registry load, trace
//! reading, every row simulated, the report written to /dev/null): kernel validation over
//! every canonical trace, whole-model validation, and a Kineto trace replayed on another GPU.
use criterion::{criterion_group, criterion_main, Criterion};
use phantom_gpu::cli::{self, Cli};
use std::path::Path;
use std::time::Duration;

const TRACES: &str = "../shared/traces";

fn command(args: &[&str]) {
    let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("phantom-gpu").chain(args.iter().copied())).unwrap();
    cli::run(cli).unwrap();
}

fn validate(c: &mut Criterion) {
    if !Path::new(TRACES).join("neusight.kernels.csv").exists() {
        eprintln!("skipping validate benchmarks: {TRACES} not found");
        return;
    }
    let mut g = c.benchmark_group("validate");
    g.sample_size(10).measurement_time(Duration::from_secs(40));
    g.bench_function("kernels_all_shared_traces", |b| b.iter(|| command(&["validate", "--traces", TRACES, "--output", "/dev/null"])));
    g.bench_function("models_all_shared_traces", |b| b.iter(|| command(&["validate", "--models", "--traces", TRACES, "--output", "/dev/null"])));
    g.finish();
    let alexnet = Path::new(TRACES).join("kineto/alexnet-a100.json.gz");
    if alexnet.exists() {
        c.bench_function("replay_kineto_alexnet_a100_on_h100", |b| {
            b.iter(|| command(&["replay", alexnet.to_str().unwrap(), "--gpu", "h100", "--output", "/dev/null"]))
        });
    }
}

criterion_group!(benches, validate);
criterion_main!(benches);

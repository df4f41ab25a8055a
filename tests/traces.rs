//! Tests against the real traces in ../shared/traces (CI has them beside the checkout).
//! Each test says so and passes vacuously only when the folder is absent.

use phantom_gpu::hw::Registry;
use phantom_gpu::trace::canonical::{find_traces, TraceFile, TraceKind};
use phantom_gpu::validate::{self, fit};
use std::path::{Path, PathBuf};

fn traces() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces");
    if dir.join("FORMAT.md").exists() {
        Some(dir)
    } else {
        eprintln!("skipping: ../shared/traces not found (the real traces live beside the checkout)");
        None
    }
}

fn kernel_files(dir: &Path) -> Vec<TraceFile> {
    find_traces(dir)
        .unwrap()
        .iter()
        .map(|p| TraceFile::read(p).unwrap())
        .filter(|f| f.kind == TraceKind::Kernels)
        .collect()
}

/// Median APE (%) of report rows (not fit rows) matching a filter.
fn median_ape(reg: &Registry, files: &[TraceFile], source: &str, op: &str) -> (usize, f64) {
    let mut errs = vec![];
    for f in files.iter().filter(|f| f.path.file_name().unwrap().to_string_lossy().starts_with(source)) {
        let rows = validate::replay_kernels(reg, f, None, &|_| {});
        for ((rec, r), &line) in f.rows.iter().zip(&rows).zip(&f.lines) {
            let k = f.kernel_row(rec);
            if k.op != op || fit::is_fit_line(line) {
                continue;
            }
            if let (Some(p), Some(m)) = (r.predicted_ms, k.measured_ms) {
                errs.push(((p - m) / m * 100.0).abs());
            }
        }
    }
    errs.sort_by(f64::total_cmp);
    (errs.len(), validate::metrics::percentile(&errs, 0.5))
}

#[test]
fn every_row_of_every_trace_gets_a_prediction_or_a_reason() {
    let Some(dir) = traces() else { return };
    let reg = Registry::builtin().unwrap();
    for f in kernel_files(&dir) {
        let rows = validate::replay_kernels(&reg, &f, None, &|_| {});
        assert_eq!(rows.len(), f.rows.len());
        let simulated = rows.iter().filter(|r| r.predicted_ms.is_some()).count();
        for r in &rows {
            assert!(r.predicted_ms.map_or(!r.status.is_empty(), |p| p.is_finite() && p > 0.0 && r.status.is_empty()));
        }
        // Every GPU in the traces has a profile, so nearly every row simulates.
        assert!(simulated as f64 >= 0.99 * rows.len() as f64, "{}: {simulated}/{}", f.path.display(), rows.len());
    }
}

/// Accuracy floors at the level reached (regression guards, report rows only); the
/// issue's targets are tighter where these are looser, see the validation table.
#[test]
fn accuracy_does_not_regress() {
    let Some(dir) = traces() else { return };
    let reg = Registry::builtin().unwrap();
    let files = kernel_files(&dir);
    for (source, op, limit) in [
        ("vidur.kernels", "gemm", 10.0),
        ("vidur.kernels", "attention", 15.0),
        ("vidur.kernels", "rmsnorm", 20.0),
        ("vidur.kernels", "elementwise", 14.0),
        ("vidur.kernels", "rope", 12.0),
        ("vidur.kernels", "silu_mul", 9.0),
        ("neusight.kernels", "gemm", 12.0),
        ("neusight.kernels", "elementwise", 16.0),
        ("neusight.kernels", "conv2d", 16.0),
    ] {
        let (n, med) = median_ape(&reg, &files, source, op);
        eprintln!("{source} {op}: {n} rows, median APE {med:.1}%");
        assert!(n > 100, "{source} {op}: only {n} rows");
        assert!(med <= limit, "{source} {op}: median APE {med:.1}% > {limit}%");
    }
}

/// cuDNN's benchmark mode ran the fastest algorithm; the model picks by its own times, so
/// agreeing with cuDNN is evidence that each algorithm is timed right relative to the
/// others (about half the calls before Winograd CTAs covered whole blocks of tiles and
/// implicit GEMM took cuDNN's 128-pixel CTAs; 70% after).
#[test]
fn the_model_picks_the_convolution_algorithm_cudnn_picked() {
    let Some(dir) = traces() else { return };
    let reg = Registry::builtin().unwrap();
    let (mut rows, mut agree) = (0usize, 0usize);
    for f in kernel_files(&dir).iter().filter(|f| f.path.file_name().unwrap().to_string_lossy().starts_with("neusight")) {
        for (rec, r) in f.rows.iter().zip(validate::replay_kernels(&reg, f, None, &|_| {})) {
            let k = f.kernel_row(rec);
            if k.op != "conv2d" {
                continue;
            }
            if let Some((cudnn, model)) = validate::replay::conv_algorithms(&reg, k.tags, r.tile.as_deref()) {
                rows += 1;
                agree += usize::from(cudnn == model);
            }
        }
    }
    let pct = agree as f64 / rows as f64 * 100.0;
    eprintln!("conv2d algorithm agreement: {agree}/{rows} = {pct:.1}%");
    assert!(rows > 20_000, "only {rows} convolution rows with a known algorithm");
    assert!(pct >= 66.0, "conv2d algorithm agreement {pct:.1}% < 66%");
}

#[test]
fn committed_fitted_parameters_are_what_the_fit_command_produces() {
    // `phantom-gpu fit --write` stored the values in isa/, kernels/launch.toml and
    // kernels/topologies.toml ([staged], [p2p], [ethernet_stream]); the
    // same fit on the same fit rows must give them back (so every fitted number's
    // provenance is real and repeatable).
    let Some(dir) = traces() else { return };
    let committed = Registry::builtin().unwrap();
    let mut reg = Registry::builtin().unwrap();
    let files = kernel_files(&dir);
    let samples = fit::samples(&reg, &files, fit::is_fit_line);
    let report = fit::fit(&mut reg, &samples, 4);
    for ((scope, name), (v, rows, _)) in &report.values {
        if *rows == 0 {
            continue;
        }
        let stored = if scope == "host" {
            fit::host_get(&committed, name)
        } else if scope == "kernel" {
            fit::kernel_get(&committed, name)
        } else if scope == "staged" {
            committed.templates.topologies.staged.channel_gbs
        } else if scope == "p2p" {
            committed.templates.topologies.p2p.channel_gbs
        } else if scope == "ethernet_stream" {
            committed.templates.topologies.ethernet_stream.channel_gbs
        } else {
            fit::get(committed.isa(scope).unwrap(), name)
        };
        // Kernel chains are written rounded to whole cycles (a value near 1 is "none").
        assert!((v / stored - 1.0).abs() < 0.03 || (v - stored).abs() < 1.0, "{scope}.{name}: fit gives {v}, committed {stored}");
    }
}

/// Whole-model rows (nothing is fitted on them): every single-GPU row is simulated, and
/// the NVIDIA eager/compiled accuracy stays at the level reached.
#[test]
fn whole_model_rows_are_simulated_and_accuracy_does_not_regress() {
    let Some(dir) = traces() else { return };
    let reg = Registry::builtin().unwrap();
    let file = TraceFile::read(&dir.join("neusight.models.csv")).unwrap();
    let scores = phantom_gpu::validate::models::score(&reg, &file);
    let mut apes = Vec::new();
    for s in &scores {
        assert!(s.predicted_ms.is_some(), "{} {} {}: {}", s.row.gpu, s.row.model, s.option, s.status);
        let nvidia = reg.gpu(&s.row.gpu).map(|g| g.profile.vendor == "NVIDIA").unwrap_or(false);
        let single_gpu = matches!(s.option.as_str(), "eager" | "compiled");
        if let (Some(p), Some(m), true, true) = (s.predicted_ms, s.row.measured_ms, nvidia, single_gpu) {
            apes.push(((p - m) / m).abs() * 100.0);
        }
    }
    apes.sort_by(f64::total_cmp);
    let median = apes[apes.len() / 2];
    let p90 = apes[(apes.len() as f64 * 0.9) as usize];
    assert!(apes.len() >= 50, "{} NVIDIA rows", apes.len());
    assert!(median <= 10.5 && p90 <= 30.0, "NVIDIA whole-model median {median:.1}%, p90 {p90:.1}%");
}

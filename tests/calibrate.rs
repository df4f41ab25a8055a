//! `calibrate`: cross-validated scores, an overlay that `--calibration` applies, and clear
//! errors for bad overlays.

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::Write;

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

/// A synthetic "measurement": our own prediction for a V100 made 30% slower, so a
/// calibration has something to find.
fn slow_v100_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("mine.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "gpu,op,dtype,shape,timing,measured_ms,source,tags").unwrap();
    let reg = phantom_gpu::hw::Registry::builtin().unwrap();
    let gpu = reg.gpu("v100-pcie-32gb").unwrap();
    for i in 0..60u64 {
        let (m, n, k) = (1024 + 256 * (i % 8), 2048 + 512 * (i % 5), 1024 + 1024 * (i % 4));
        let op = phantom_gpu::kernel::Op::Gemm { b: 1, m, n, k, bias: false };
        let p = phantom_gpu::kernel::predict(gpu, &reg.templates, &op, phantom_gpu::kernel::Dtype::Fp32, phantom_gpu::kernel::Timing::Kernel).unwrap();
        writeln!(f, "v100-pcie-32gb,gemm,fp32,b=1;m={m};n={n};k={k},kernel,{},mine,", p.predicted_ms * 1.3).unwrap();
    }
    path
}

#[test]
fn calibration_is_cross_validated_and_applies() {
    let dir = tempfile::tempdir().unwrap();
    let trace = slow_v100_trace(dir.path());
    let out = dir.path().join("cal.toml");
    let o = cmd().args(["calibrate", "--traces"]).arg(&trace).arg("--out").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("5-fold cross-validated") && text.contains("before: median 23.") , "{text}");
    let after: f64 = text.split("after:  median ").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!(after < 5.0, "after calibration {after}%");
    let overlay = std::fs::read_to_string(&out).unwrap();
    // Plain (b = 1) GEMM calls run at `unbatched_issue` of the batched kernels' rate.
    assert!(overlay.contains("[isa.volta]") && overlay.contains("unbatched_issue"), "{overlay}");
    let base = cmd().args(["predict", "gemm", "--gpu", "v100-pcie-32gb", "--dtype", "fp32", "--shape", "m=4096,n=4096,k=4096", "--format", "json"]).output().unwrap();
    let cal = cmd().args(["predict", "gemm", "--gpu", "v100-pcie-32gb", "--dtype", "fp32", "--shape", "m=4096,n=4096,k=4096", "--format", "json", "--calibration"]).arg(&out).output().unwrap();
    let ms = |o: &std::process::Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["predicted_ms"].as_f64().unwrap();
    let ratio = ms(&cal) / ms(&base);
    assert!((1.2..1.4).contains(&ratio), "calibrated/base = {ratio}");
}

#[test]
fn bad_overlays_and_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[isa.volta]\nffma_issue = \"fast\"\n").unwrap();
    cmd().args(["list-gpus", "--calibration"]).arg(&bad).assert().code(1).stderr(predicate::str::contains("bad.toml").and(predicate::str::contains("ffma_issue: expected a positive number")));
    std::fs::write(&bad, "[isa.volta]\nwarp_magic = 2.0\n").unwrap();
    cmd().args(["list-gpus", "--calibration"]).arg(&bad).assert().code(1).stderr(predicate::str::contains("warp_magic: not a calibrated parameter"));
    std::fs::write(&bad, "[isa.voltaa]\nffma_issue = 0.5\n").unwrap();
    cmd().args(["list-gpus", "--calibration"]).arg(&bad).assert().code(1).stderr(predicate::str::contains("unknown architecture"));
    let tiny = dir.path().join("tiny.csv");
    std::fs::write(&tiny, "gpu,op,dtype,shape,timing,measured_ms,source,tags\nt4,gemm,fp32,b=1;m=64;n=64;k=64,kernel,0.01,x,\n").unwrap();
    cmd().args(["calibrate", "--traces"]).arg(&tiny).args(["--out"]).arg(dir.path().join("o.toml")).assert().code(2).stderr(predicate::str::contains("at least 20 measured rows"));
}

/// A user's own PyTorch profiler trace calibrates too: the kernels whose shapes it recorded
/// become rows on its GPU, scored by cross-validation as CSV rows are.
#[test]
fn a_kineto_trace_calibrates() {
    let trace = std::path::Path::new("../shared/traces/kineto/transformer-train-v100.json.gz");
    if !trace.exists() {
        eprintln!("skipped: {} not found", trace.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cal.toml");
    let o = cmd().args(["calibrate", "--traces"]).arg(trace).arg("--out").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    let median = |label: &str| -> f64 { text.split(label).nth(1).unwrap().split('%').next().unwrap().trim().parse().unwrap() };
    let (before, after) = (median("before: median"), median("after:  median"));
    assert!(text.contains("rows of GPUs v100-sxm2-16gb"), "{text}");
    assert!(after < before, "calibration on the trace's own kernels helps under cross-validation: {before}% → {after}%");
    assert!(std::fs::read_to_string(&out).unwrap().contains("[isa.volta]"));
    // A trace with no shapes to fit on is a clear error.
    let bare = dir.path().join("bare.json");
    std::fs::write(&bare, r#"{"deviceProperties": [{"id": 0, "name": "Tesla V100-SXM2-16GB"}], "traceEvents": [{"ph": "X", "cat": "kernel", "name": "void foo_kernel()", "pid": 0, "tid": 7, "ts": 1.0, "dur": 5.0, "args": {"device": 0, "stream": 7}}]}"#).unwrap();
    cmd()
        .args(["calibrate", "--traces"])
        .arg(&bare)
        .arg("--out")
        .arg(dir.path().join("c2.toml"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no kernel in this trace has a recorded shape to calibrate on"));
}

//! `profile --from-ort-profile`: an ONNX Runtime profile recorded elsewhere converts to
//! canonical rows in every build (no ONNX Runtime needed). The fixture is ONNX Runtime
//! 1.32.0's own JSON for `light_bvlc_alexnet.onnx` on the CPU (`profile --runs 2
//! --save-ort-profile`): one warm-up and two profiled runs, grouped convolutions, a Gemm
//! whose weight the CPU kernel pre-packed (absent from the profile), LRN and a Reshape.

mod ort_support;

use assert_cmd::Command;
use ort_support::{check_against_our_inference, light};
use predicates::prelude::*;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ort/light_bvlc_alexnet.cpu.ort_profile.json")
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("phantom-gpu").unwrap();
    c.env_remove("ORT_DYLIB_PATH");
    c
}

#[test]
fn a_recorded_profile_converts_with_the_shapes_of_our_inference() {
    let out = cmd().args(["profile", "--format", "csv", "--from-ort-profile"]).arg(fixture()).arg(light("bvlc_alexnet")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (rows, checked, twins) = check_against_our_inference(&light("bvlc_alexnet"), &text);
    assert_eq!((rows, checked, twins), (22, 8, 0), "5 convolutions and 3 Gemms of 22 nodes");
    assert!(text.lines().skip(1).all(|l| l.starts_with("cpu,")), "a CPU profile names gpu=cpu");
    assert!(text.contains("conv2d,fp32,n=2;c=48;h=26;w=26;k=128;r=5;s=5;stride=1;pad=2,kernel,"), "the grouped conv2 as two groups");
    assert!(text.contains("gemm,fp32,b=1;m=1;n=4096;k=9216;bias=1,kernel,"), "fc6 with its bias, weight pre-packed");
    assert!(text.contains("onnx:Reshape,fp32,numel=9216,kernel,") && text.contains("why=a view: no kernel in the simulator"));
    assert!(text.contains(";runs=2;"), "the warm-up run is left out");
}

#[test]
fn a_recorded_profile_replays_on_a_gpu_as_a_prediction() {
    cmd()
        .args(["profile", "--gpu", "a100", "--from-ort-profile"])
        .arg(fixture())
        .arg(light("bvlc_alexnet"))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("22 profiled, 21 mapped")
                .and(predicate::str::contains("a CPU profile has no GPU time, so this is a prediction, not a validation"))
                .and(predicate::str::contains("predicted on a100-sxm4-80gb:"))
                .and(predicate::str::contains("unmapped: Reshape x1")),
        );
    // The canonical trace it writes replays like any other.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ort_convert");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("alexnet.cpu.kernels.csv");
    cmd().args(["profile", "--from-ort-profile"]).arg(fixture()).arg(light("bvlc_alexnet")).arg("--out").arg(&csv).assert().success();
    let out = cmd().args(["replay", "--gpu", "a100", "--format", "csv"]).arg(&csv).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 23);
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let status = rdr.headers().unwrap().iter().position(|h| h == "status").unwrap();
    let simulated = rdr.records().filter(|r| r.as_ref().unwrap()[status].is_empty()).count();
    assert_eq!(simulated, 21, "every mapped row is simulated (empty status)");
}

#[test]
fn a_bad_profile_or_model_is_a_clear_error() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ort_convert");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"not\": \"a profile\"}").unwrap();
    cmd()
        .args(["profile", "--from-ort-profile"])
        .arg(&bad)
        .arg(light("bvlc_alexnet"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("bad.json: not an ONNX Runtime profile"))
        .stderr(predicate::str::contains("panicked").not());
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07\x3a\xff\xff\xff\xff\x0f").unwrap();
    cmd()
        .args(["profile", "--from-ort-profile"])
        .arg(fixture())
        .arg(&garbage)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("garbage.onnx: not"))
        .stderr(predicate::str::contains("panicked").not());
}

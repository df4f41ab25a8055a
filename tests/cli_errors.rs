//! Every bad-input path of the CLI: a clear message, the right exit code, no panic.
//! Exit codes: 0 ok, 1 runtime error (files, parsing), 2 usage error (names, values).

use assert_cmd::Command;
use predicates::prelude::*;
use std::io::Write;

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

fn no_panic() -> impl Predicate<str> {
    predicate::str::contains("panicked").not()
}

#[test]
fn unknown_gpu_suggests_closest_keys() {
    cmd()
        .args(["predict", "gemm", "--gpu", "a1000", "--shape", "m=64,n=64,k=64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown GPU 'a1000' (did you mean:").and(predicate::str::contains("a100")))
        .stderr(no_panic());
}

#[test]
fn unknown_op_suggests() {
    cmd()
        .args(["predict", "gemn", "--gpu", "a100", "--shape", "m=64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown op 'gemn' (did you mean: gemm"));
}

#[test]
fn unknown_dtype() {
    cmd()
        .args(["predict", "gemm", "--gpu", "a100", "--dtype", "fp13", "--shape", "m=64,n=64,k=64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown dtype 'fp13'"));
}

#[test]
fn missing_shape_key_names_it() {
    cmd()
        .args(["predict", "gemm", "--gpu", "a100", "--shape", "m=64,n=64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("shape for 'gemm': missing key 'k' (expected keys: b,m,n,k,bias)"));
}

#[test]
fn zero_and_negative_sizes_are_rejected() {
    for bad in ["m=0,n=64,k=64", "m=-5,n=64,k=64"] {
        cmd()
            .args(["predict", "gemm", "--gpu", "a100", "--shape", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("must be a positive integer"))
            .stderr(no_panic());
    }
}

#[test]
fn unsupported_dtype_on_architecture() {
    cmd()
        .args(["predict", "gemm", "--gpu", "a100", "--dtype", "fp8", "--shape", "m=64,n=64,k=64"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot run fp8 matrix math").and(predicate::str::contains("no fp8 mode")));
}

#[test]
fn missing_file_is_named() {
    cmd()
        .args(["replay", "/nonexistent/trace.kernels.csv"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("cannot read '/nonexistent/trace.kernels.csv'"));
}

#[test]
fn malformed_csv_gives_line() {
    let mut f = tempfile::Builder::new().suffix(".kernels.csv").tempfile().unwrap();
    writeln!(f, "gpu,op,dtype,shape,timing,measured_ms,source,tags").unwrap();
    writeln!(f, "a100-sxm4-80gb,gemm,fp16,m=64;n=64;k=64,kernel,0.01,test,").unwrap();
    writeln!(f, "a100-sxm4-80gb,gemm,fp16").unwrap();
    let p = f.path().display().to_string();
    cmd()
        .args(["replay", &p])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{p}:3: expected 8 fields, found 3")));
}

#[test]
fn csv_without_canonical_header() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    writeln!(f, "a,b,c\n1,2,3").unwrap();
    let p = f.path().display().to_string();
    cmd().args(["replay", &p]).assert().code(1).stderr(predicate::str::contains(format!("{p}:1: not a canonical trace")));
}

#[test]
fn malformed_profile_toml_gives_line() {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(f, "key = \"x\"\nname = \"X\"\nsm_count = = 3").unwrap();
    let p = f.path().display().to_string();
    cmd()
        .args(["list-gpus", "--hardware-profiles", &p])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!("{p}:3:")));
}

#[test]
fn profile_with_missing_field_names_it() {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    writeln!(f, "[gpu.mygpu]\nname = \"Mine\"\nvendor = \"NVIDIA\"\narchitecture = \"ampere\"\nchip = \"GA100\"").unwrap();
    let p = f.path().display().to_string();
    cmd()
        .args(["list-gpus", "--hardware-profiles", &p])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("[gpu.mygpu]: missing field `compute`"));
}

#[test]
fn impossible_attention_shape() {
    cmd()
        .args(["predict", "attention", "--gpu", "h100", "--shape", "b=1,hq=32,hkv=5,sq=1,skv=128,d=128"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hq=32 must be a multiple of hkv=5"));
}

#[test]
fn bad_flag_is_a_usage_error() {
    cmd().args(["predict", "gemm", "--gpu", "a100", "--format", "yaml", "--shape", "m=1,n=1,k=1"]).assert().code(2);
}

#[test]
fn validate_without_traces_folder() {
    cmd()
        .args(["validate", "--traces", "/nonexistent/traces"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("trace folder not found"));
}

/// `profile` exists in every build; without the `ort` feature it says how to get one that
/// can run ONNX Runtime (and about --from-ort-profile, which works in any build).
#[cfg(not(feature = "ort"))]
#[test]
fn profile_without_the_ort_feature_says_how_to_get_it() {
    cmd()
        .args(["profile", "model.onnx", "--gpu", "a100"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("this build has no ONNX Runtime: rebuild with --features ort and set ORT_DYLIB_PATH=")
                .and(predicate::str::contains("pip download --no-deps onnxruntime==1.32.0"))
                .and(predicate::str::contains("--from-ort-profile")),
        )
        .stderr(no_panic());
    cmd().args(["help", "profile"]).assert().success().stdout(predicate::str::contains("phantom-gpu profile resnet50.onnx --replay --gpu a100"));
}

//! `profile` with ONNX Runtime (Cargo feature `ort`): needs `ORT_DYLIB_PATH` naming
//! `libonnxruntime.so.1.32.0` (the PyPI `onnxruntime` wheel; `.ci/run` fetches it).
//!
//! The nine light ONNX models run on the CPU and their converted traces carry, node by
//! node, the convolution and matmul shapes of our own ONNX shape inference; a missing or
//! wrong library and malformed models are clear errors, never panics.
#![cfg(feature = "ort")]

mod ort_support;

use assert_cmd::Command;
use ort_support::{check_against_our_inference, light, LIGHT};
use phantom_gpu::graph::onnx::proto::tensor_shape_proto::{dimension, Dimension};
use phantom_gpu::graph::onnx::proto::{type_proto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto};
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn dylib() -> String {
    std::env::var("ORT_DYLIB_PATH").expect("set ORT_DYLIB_PATH to libonnxruntime.so.1.32.0 (python3 -m pip download --no-deps onnxruntime==1.32.0, unzip; .ci/run does this)")
}

fn cmd() -> Command {
    let mut c = Command::cargo_bin("phantom-gpu").unwrap();
    c.env("ORT_DYLIB_PATH", dylib());
    c
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ort_profile").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn no_panic() -> impl Predicate<str> {
    predicate::str::contains("panicked").not()
}

#[test]
fn nine_light_models_convert_with_the_shapes_of_our_inference() {
    let dir = scratch("light");
    for name in LIGHT {
        let model = light(name);
        let csv = dir.join(format!("{name}.cpu.kernels.csv"));
        let out = cmd().args(["profile", "--runs", "1", "--format", "json", "--out"]).arg(&csv).arg(&model).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let (rows, matched, twins) = check_against_our_inference(&model, &text);
        assert_eq!(v["nodes"].as_u64(), Some(rows as u64), "{name}");
        let mapped = v["mapped_nodes"].as_u64().unwrap();
        let share = v["mapped_measured_ms"].as_f64().unwrap() / v["measured_node_ms"].as_f64().unwrap();
        println!("{name:14} {rows:4} nodes, {mapped:4} mapped ({:5.1}% of the time), {matched:3} conv/gemm equal to ours, {twins} merged twins", share * 100.0);
        // Most of the time has a model. The unmapped views take microseconds, but on a busy
        // machine one can stall for a scheduler tick, so the share is a loose check; the
        // exact one is that only views are unmapped (below).
        assert!(share > 0.5, "{name}: only {:.1}% of the measured time maps to kernel models", share * 100.0);
        for line in text.lines().skip(1) {
            assert!(line.starts_with("cpu,"), "{name}: a CPU run names gpu=cpu: {line}");
            // Every node of these CNNs has a kernel model except the views.
            if line.contains(",onnx:") {
                assert!(["Reshape", "Flatten", "Squeeze", "Unsqueeze"].iter().any(|v| line.contains(&format!(",onnx:{v},"))), "{name}: unmapped {line}");
            }
        }
    }
}

#[test]
fn replay_on_a_gpu_predicts_every_mapped_row() {
    let out = cmd().args(["profile", "--runs", "1", "--gpu", "a100", "--format", "csv"]).arg(light("squeezenet")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let h = rdr.headers().unwrap().clone();
    assert_eq!(h.iter().collect::<Vec<_>>(), ["gpu", "op", "dtype", "shape", "timing", "measured_ms", "source", "tags", "predicted_ms", "status"]);
    let mut predicted = 0;
    for rec in rdr.records() {
        let rec = rec.unwrap();
        if rec[1].starts_with("onnx:") {
            assert!(rec[8].is_empty() && rec[9].contains("unknown op"), "{rec:?}");
        } else {
            let p: f64 = rec[8].parse().unwrap_or_else(|_| panic!("no prediction: {rec:?}"));
            assert!(p > 0.0 && rec[9].is_empty(), "{rec:?}");
            predicted += 1;
        }
    }
    assert!(predicted >= 50, "{predicted}");
    // The table says what a CPU profile replayed on a GPU is.
    cmd()
        .args(["profile", "--runs", "1", "--replay", "--gpu", "a100"])
        .arg(light("squeezenet"))
        .assert()
        .success()
        .stdout(predicate::str::contains("prediction, not a validation").and(predicate::str::contains("predicted on a100-sxm4-80gb")));
    // Without a GPU there is nothing to predict a CPU run on.
    cmd()
        .args(["profile", "--runs", "1", "--replay"])
        .arg(light("squeezenet"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("pass --gpu"));
}

#[test]
fn a_saved_profile_converts_to_the_same_rows() {
    let dir = scratch("saved");
    let (json, a, b) = (dir.join("alexnet.json"), dir.join("a.csv"), dir.join("b.csv"));
    cmd().args(["profile", "--runs", "2"]).arg(light("bvlc_alexnet")).arg("--save-ort-profile").arg(&json).arg("--out").arg(&a).assert().success();
    // Converting needs no library.
    Command::cargo_bin("phantom-gpu")
        .unwrap()
        .env_remove("ORT_DYLIB_PATH")
        .args(["profile"])
        .arg(light("bvlc_alexnet"))
        .arg("--from-ort-profile")
        .arg(&json)
        .arg("--out")
        .arg(&b)
        .assert()
        .success();
    let cols = |p: &Path| -> Vec<(String, String, String, String)> {
        csv::Reader::from_path(p).unwrap().records().map(|r| r.unwrap()).map(|r| (r[0].to_string(), r[1].to_string(), r[3].to_string(), r[5].to_string())).collect()
    };
    assert_eq!(cols(&a), cols(&b));
    assert!(std::fs::read_to_string(&a).unwrap().contains(",onnxruntime-1.32.0,"), "the source names the runtime version");
}

// ---- models built here ----

fn input(name: &str, dims: &[&str]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d.parse::<i64>() {
                Ok(v) => dimension::Value::DimValue(v),
                Err(_) => dimension::Value::DimParam(d.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor { elem_type: 1, shape: Some(TensorShapeProto { dim, ..Default::default() }).into(), ..Default::default() };
    ValueInfoProto { name: name.into(), type_: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }).into(), ..Default::default() }
}

/// One node `op(x) → y` over an input of `dims` (names are symbolic dimensions).
fn one_node_model(op: &str, dims: &[&str]) -> Vec<u8> {
    let graph = phantom_gpu::graph::onnx::proto::GraphProto {
        name: "g".into(),
        node: vec![NodeProto { op_type: op.into(), name: "act".into(), input: vec!["x".into()], output: vec!["y".into()], ..Default::default() }],
        input: vec![input("x", dims)],
        output: vec![ValueInfoProto { name: "y".into(), type_: input("y", dims).type_, ..Default::default() }],
        ..Default::default()
    };
    let m = ModelProto { ir_version: 8, opset_import: vec![OperatorSetIdProto { version: 17, ..Default::default() }], graph: Some(graph).into(), ..Default::default() };
    m.write_to_bytes().unwrap()
}

#[test]
fn symbolic_dimensions_take_the_batch_and_named_sizes() {
    let dir = scratch("symbolic");
    let model = dir.join("relu.onnx");
    std::fs::write(&model, one_node_model("Relu", &["N", "seq", "8"])).unwrap();
    let out = cmd().args(["profile", "--runs", "1", "--batch", "3", "--dim", "seq=5", "--format", "csv"]).arg(&model).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(",elementwise,fp32,fn=relu;numel=120;inputs=1,kernel,"), "{text}");
    cmd()
        .args(["profile", "--runs", "1"])
        .arg(&model)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("input 'x': dimension 1 is symbolic ('seq')").and(predicate::str::contains("--dim seq=N")))
        .stderr(no_panic());
}

#[test]
fn a_missing_or_wrong_library_is_a_clear_error() {
    let model = light("squeezenet");
    let run = |env: Option<&str>| {
        let mut c = Command::cargo_bin("phantom-gpu").unwrap();
        match env {
            Some(v) => c.env("ORT_DYLIB_PATH", v),
            None => c.env_remove("ORT_DYLIB_PATH"),
        };
        c.args(["profile", "--runs", "1"]).arg(&model).assert()
    };
    run(None).code(1).stderr(predicate::str::contains("ORT_DYLIB_PATH is not set").and(predicate::str::contains("pip download --no-deps onnxruntime==1.32.0"))).stderr(no_panic());
    run(Some("/nonexistent/libonnxruntime.so.1.32.0")).code(1).stderr(predicate::str::contains("ORT_DYLIB_PATH=/nonexistent/libonnxruntime.so.1.32.0 is not a file")).stderr(no_panic());
    // A file that is not a shared library at all.
    let not_lib = model.display().to_string();
    run(Some(&not_lib)).code(1).stderr(predicate::str::contains("cannot load ONNX Runtime from ORT_DYLIB_PATH=")).stderr(no_panic());
}

#[test]
fn malformed_models_are_clear_errors() {
    let dir = scratch("malformed");
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not an onnx model").unwrap();
    cmd()
        .args(["profile", "--runs", "1"])
        .arg(&garbage)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("garbage.onnx").and(predicate::str::contains("not a valid ONNX model")))
        .stderr(no_panic());
    // Valid protobuf, but an op ONNX Runtime does not know.
    let unknown = dir.join("unknown_op.onnx");
    std::fs::write(&unknown, one_node_model("FancyOp", &["1", "8"])).unwrap();
    cmd()
        .args(["profile", "--runs", "1"])
        .arg(&unknown)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown_op.onnx: ONNX Runtime cannot load the model").and(predicate::str::contains("FancyOp")))
        .stderr(no_panic());
    cmd().args(["profile", "/nonexistent/model.onnx"]).assert().code(1).stderr(predicate::str::contains("/nonexistent/model.onnx"));
}

#[test]
fn cuda_without_a_cuda_build_is_a_clear_error() {
    cmd()
        .args(["profile", "--runs", "1", "--ep", "cuda", "--recorded-on", "a100"])
        .arg(light("squeezenet"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CUDA execution provider").and(predicate::str::contains("onnxruntime-gpu")))
        .stderr(no_panic());
}

//! Output contracts other tools rely on.

use assert_cmd::Command;
use std::io::Write;

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn list_gpus_json_has_required_fields() {
    let v = json(&["list-gpus", "--format", "json"]);
    let list = v.as_array().unwrap();
    assert!(list.len() >= 25);
    for g in list {
        for f in ["key", "name", "architecture", "memory_gb"] {
            assert!(!g[f].is_null(), "{f} missing in {g}");
        }
    }
    for key in ["p4", "t4", "a100-sxm4-80gb", "h100-sxm5-80gb", "b200", "rtx4090", "rtx-pro-6000-blackwell", "mi210"] {
        assert!(list.iter().any(|g| g["key"] == key), "{key} not listed");
    }
}

#[test]
fn predict_json_is_one_object_with_the_contract_fields() {
    let v = json(&["predict", "gemm", "--gpu", "a100", "--dtype", "fp16", "--shape", "m=4096,n=4096,k=4096", "--format", "json"]);
    for f in ["predicted_ms", "bound", "tflops", "gbs", "tile", "waves", "clock_mhz"] {
        assert!(!v[f].is_null(), "{f} missing in {v}");
    }
    assert!(v["predicted_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn aliases_resolve_to_documented_skus() {
    for (alias, key) in [("a100", "a100-sxm4-80gb"), ("h100", "h100-sxm5-80gb"), ("4090", "rtx4090"), ("v100", "v100-sxm2-32gb"), ("NVIDIA A100-SXM4-80GB", "a100-sxm4-80gb")] {
        let v = json(&["predict", "elementwise", "--gpu", alias, "--shape", "fn=add,numel=1024", "--format", "json"]);
        assert_eq!(v["gpu"], key, "{alias}");
    }
}

#[test]
fn replay_csv_echoes_input_columns_then_prediction_and_status() {
    let mut f = tempfile::Builder::new().suffix(".kernels.csv").tempfile().unwrap();
    let header = "gpu,op,dtype,shape,timing,measured_ms,source,tags,extra";
    let rows = [
        "a100-sxm4-80gb,gemm,fp16,b=1;m=512;n=512;k=512;bias=0,kernel,0.02,test,\"a=1;b=2\",x",
        "nosuchgpu,gemm,fp16,b=1;m=512;n=512;k=512;bias=0,kernel,0.02,test,,y",
        "t4,softmax,fp32,rows=128;cols=4096,op,0.03,test,,z",
        "t4,gemm,fp32,b=1;m=0;n=5;k=5;bias=0,op,0.03,test,,w",
    ];
    writeln!(f, "{header}").unwrap();
    for r in rows {
        writeln!(f, "{r}").unwrap();
    }
    let out = cmd().args(["replay", &f.path().display().to_string(), "--format", "csv"]).output().unwrap();
    assert!(out.status.success());
    let mut rdr = csv::Reader::from_reader(&out.stdout[..]);
    let h: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(h.join(","), format!("{header},predicted_ms,status,tile,bound"));
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), rows.len());
    let text = format!("{header}\n{}\n", rows.join("\n"));
    let input: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes()).records().map(|r| r.unwrap()).collect();
    for (o, i) in recs.iter().zip(input) {
        for c in 0..i.len() {
            assert_eq!(&o[c], &i[c]);
        }
    }
    assert!(recs[0][9].parse::<f64>().unwrap() > 0.0 && recs[0][10].is_empty());
    assert!(recs[1][9].is_empty() && recs[1][10].contains("unknown gpu"));
    assert!(recs[2][10].is_empty());
    assert!(recs[3][10].contains("positive integer"));
}

#[test]
fn legacy_custom_gpu_layout_is_accepted_with_ignored_fields_named() {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(
        f,
        r#"[profiles.my_custom_gpu]
name = "Custom GPU 2025"
based_on = "h100"
[profiles.my_custom_gpu.thermal]
tdp_watts = 500.0
base_clock_mhz = 2200.0
boost_clock_mhz = 2600.0
throttle_temp_celsius = 88.0
thermal_factor_sustained = 1.15
[profiles.my_custom_gpu.memory]
l1_cache_kb = 192.0
l2_cache_mb = 96.0
memory_channels = 16
cache_hit_ratio = 0.92
coalescing_efficiency = 0.90
[profiles.my_custom_gpu.architecture]
cuda_cores = 12288
tensor_cores = 384
rt_cores = 96
streaming_multiprocessors = 96
memory_bus_width = 512
[profiles.my_custom_gpu.model_performance.cnn]
batch_scaling_curve = [1.0, 0.90, 0.82]
architecture_multiplier = 1.75
[profiles.my_custom_gpu.precision]
fp16_multiplier = 2.8
"#
    )
    .unwrap();
    let p = f.path().display().to_string();
    let out = cmd()
        .args(["predict", "gemm", "--gpu", "my_custom_gpu,h100", "--shape", "m=8192,n=8192,k=8192", "--hardware-profiles", &p, "--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for ignored in ["model_performance", "precision", "thermal_factor_sustained", "cache_hit_ratio", "coalescing_efficiency", "rt_cores"] {
        assert!(err.contains(ignored) && err.contains("ignored"), "{ignored} not reported: {err}");
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let custom = v.as_array().unwrap().iter().find(|r| r["gpu"] == "my-custom-gpu").unwrap().clone();
    let h100 = v.as_array().unwrap().iter().find(|r| r["gpu"] == "h100-sxm5-80gb").unwrap().clone();
    // Fewer SMs than the H100 it is based on: a big GEMM takes longer.
    assert!(custom["kernel_ms"].as_f64().unwrap() > h100["kernel_ms"].as_f64().unwrap() * 0.9);
}

#[test]
fn legacy_layout_without_memory_facts_is_an_error() {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    write!(f, "[profiles.x]\narch = \"ampere\"\n[profiles.x.architecture]\ncuda_cores = 6912\nstreaming_multiprocessors = 108\n[profiles.x.thermal]\nboost_clock_mhz = 1410.0\ntdp_watts = 400.0\n").unwrap();
    let p = f.path().display().to_string();
    cmd()
        .args(["list-gpus", "--hardware-profiles", &p])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("[profiles.x]: needs memory_gb"));
}

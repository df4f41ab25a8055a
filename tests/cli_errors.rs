//! Every bad-input path of the CLI: the exact message, the documented exit code, no panic.
//!
//! Exit codes (README, "Exit codes"): 0 ok, 1 runtime error (files, parsing, a model that
//! does not fit, a GPU that cannot run the request), 2 usage error (unknown names, bad
//! flags or values, impossible parameters).
//!
//! Each case pins the whole of standard error, so a changed message is a deliberate edit
//! here too. Files are written into a scratch folder so their paths are known.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

/// Runs `args` and checks the exit code and that standard error is exactly `error: {msg}`.
#[track_caller]
fn fails(args: &[&str], code: i32, msg: &str) {
    let out = cmd().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: exit code (stderr: {stderr})");
    assert_eq!(stderr, format!("error: {msg}\n"), "{args:?}: message");
}

/// Clap's own usage errors: exit 2, its message and a pointer to `--help`, never a panic.
#[track_caller]
fn usage(args: &[&str], contains: &str) {
    let out = cmd().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: exit code (stderr: {stderr})");
    assert!(stderr.starts_with("error: ") && stderr.contains(contains) && stderr.contains("try '--help'"), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }
    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- exit 2: names ----

#[test]
fn unknown_names_suggest_the_closest() {
    fails(&["predict", "gemm", "--gpu", "a1000", "--shape", "m=64,n=64,k=64"], 2, "unknown GPU 'a1000' (did you mean: a100-sxm4-80gb, a10, a100-sxm4-40gb?)");
    fails(&["predict", "gemm", "--gpu", "a100,zz", "--shape", "m=1,n=1,k=1"], 2, "unknown GPU 'zz'");
    fails(&["predict", "gemn", "--gpu", "a100", "--shape", "m=64"], 2, "unknown op 'gemn' (did you mean: gemm?)");
    fails(&["predict", "gemm", "--gpu", "a100", "--dtype", "fp13", "--shape", "m=64,n=64,k=64"], 2, "unknown dtype 'fp13' (expected one of fp32, tf32, fp16, bf16, fp8, int8)");
    fails(&["benchmark", "--model", "llama3-7b", "--gpu", "a100"], 2, "unknown model 'llama3-7b' (did you mean: llama3-70b, llama2-7b, llama3-8b?)");
    fails(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--precision", "fp7"], 2, "unknown precision 'fp7' (expected fp32, tf32, fp16, bf16, fp8, int8, int4 or w8a16)");
    fails(
        &["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--prompt-len", "10", "--output-len", "10", "--kv-dtype", "int8"],
        2,
        "KV-cache dtype 'int8' is not supported (expected fp16, bf16 or fp8)",
    );
    fails(&["validate", "--traces", ".", "--op", "foo"], 2, "unknown op 'foo'");
    fails(&["predict", "elementwise", "--gpu", "a100", "--shape", "fn=gleu,numel=10"], 2, "shape for 'elementwise': unknown fn 'gleu' (did you mean: gelu, relu?)");
}

// ---- exit 2: shapes and impossible parameters ----

#[test]
fn kernel_shapes_are_checked() {
    let predict = |op: &str, shape: &str, msg: &str| fails(&["predict", op, "--gpu", "a100", "--shape", shape], 2, msg);
    predict("gemm", "m=64,n=64", "shape for 'gemm': missing key 'k' (expected keys: b,m,n,k,bias)");
    predict("gemm", "m=64,n=64,k=abc", "shape for 'gemm': k=abc is not an integer");
    predict("gemm", "m=0,n=64,k=64", "shape for 'gemm': m=0 must be a positive integer");
    predict("gemm", "m=-5,n=64,k=64", "shape for 'gemm': m=-5 must be a positive integer");
    predict("gemm", "m=64,n=64,k=64,zz=3", "shape for 'gemm': unknown key 'zz' (expected keys: b,m,n,k,bias)");
    predict("gemm", "m=64,n", "shape for 'gemm': 'n' is not key=value");
    predict("gemm", "m=64,n=64,k=64,bias=2", "shape for 'gemm': bias=2 must be 0 or 1");
    predict("conv2d", "n=1,c=3,h=2,w=2,k=8,r=7,s=7", "shape for 'conv2d': filter 7x7 is larger than the padded input 2x2");
    predict("attention", "b=1,hq=32,hkv=5,sq=1,skv=128,d=128", "shape for 'attention': hq=32 must be a multiple of hkv=5");
    predict("attention", "b=1,hq=32,sq=256,skv=128,d=128", "shape for 'attention': sq=256 new tokens cannot exceed skv=128 keys");
    predict("quant_gemm", "m=1,n=64,k=64,bits=3", "shape for 'quant_gemm': bits=3: weight-only GEMMs store 4- or 8-bit weights");
    predict("all_reduce", "bytes=1000,gpus=4,nodes=8", "shape for 'all_reduce': nodes=8 is more than gpus=4: every node takes part with at least one GPU");
    predict("all_reduce", "bytes=1000,gpus=16,nodes=2,gpus_per_node=4", "shape for 'all_reduce': nodes=2 × gpus_per_node=4 is fewer than gpus=16");
    fails(&["predict", "softmax", "--gpu", "a100", "--candidates", "--shape", "rows=1,cols=2"], 2, "--candidates applies to gemm");
}

#[test]
fn impossible_run_parameters() {
    let bench = |extra: &[&str], msg: &str| {
        let mut args = vec!["benchmark", "--model", "llama2-7b", "--gpu", "a100"];
        args.extend_from_slice(extra);
        fails(&args, 2, msg)
    };
    bench(&["--batch-size", "0"], "--batch-size must be at least 1");
    bench(&["--seq-len", "0"], "--seq-len must be at least 1");
    bench(&["--dp", "0"], "--dp, --pp, --micro-batches and --gpus-per-node must be at least 1");
    bench(&["--batch-size", "3", "--dp", "2"], "--batch-size 3 does not split into 2 replicas × 1 micro-batches");
    bench(&["--tp", "3"], "llama2-7b: tensor parallelism 3 must divide the 32 heads, the 32 key/value heads (or be a multiple of them) and the FFN width 11008");
    bench(&["--seq-len", "100000"], "llama2-7b: sequence of 100000 tokens is longer than the model allows (4096 positions)");
    bench(&["--mode", "training", "--precision", "int4"], "llama2-7b: --precision int4 is weight-only quantization for inference; training updates the weights, so it needs fp32, tf32, fp16, bf16 or fp8");
    bench(&["--prompt-len", "100"], "--prompt-len and --output-len go together (and --kv-dtype needs them)");
    bench(&["--prompt-len", "4000", "--output-len", "200"], "llama2-7b: prompt of 4000 + 200 output tokens is longer than the model's 4096 positions");
    bench(&["--prompt-len", "10", "--output-len", "10", "--seq-len", "5"], "--seq-len and --past describe one step; a generation (--prompt-len/--output-len) sets them itself");
    bench(&["--prompt-len", "10", "--output-len", "10", "--mode", "training"], "LLM generation and serving are inference: --mode training does not apply");
    fails(&["benchmark", "--model", "resnet50", "--gpu", "a100", "--tp", "2"], 2, "resnet50: tensor parallelism (--tp 2) applies to transformer models, not convolutional or diffusion models");
    fails(
        &["benchmark", "--model", "bert-base", "--gpu", "a100", "--prompt-len", "100", "--output-len", "10"],
        2,
        "bert-base: not a decoder language model (no KV cache); LLM generation needs one such as llama2-7b",
    );
    fails(
        &["benchmark", "--model", "sd15", "--gpu", "a100", "--mode", "training"],
        2,
        "stable-diffusion-1.5: training a pipeline of repeated steps is not supported; train its parts (a UNet, a text encoder) instead",
    );
    fails(&["compare-models", "--models", "llama2-7b", "--gpus", "a100", "--batch-sizes", "0"], 2, "--batch-size must be at least 1");
}

#[test]
fn serving_and_cost_parameters() {
    let serve = |extra: &[&str], msg: &str| {
        let mut args = vec!["serve-sim", "--model", "llama2-7b", "--gpu", "a100", "--prompt-len", "128", "--output-len", "32"];
        args.extend_from_slice(extra);
        fails(&args, 2, msg)
    };
    serve(&["--rate", "0"], "--rate must be a positive number of requests per second (got 0)");
    serve(&["--rate", "1", "--requests", "0"], "--requests must be at least 1");
    serve(&["--rate", "1", "--max-batch", "0"], "--max-batch must be at least 1");
    serve(&["--rate", "1", "--kv-budget-gb", "0"], "--kv-budget-gb must be a positive number of GiB (got 0)");
    fails(&["recommend-gpu", "--model", "llama2-7b", "--budget=-1"], 2, "--budget must be a positive amount of USD, not -1");
    fails(&["recommend-gpu", "--model", "llama2-7b", "--max-latency-ms", "0"], 2, "--max-latency-ms must be positive, not 0");
    fails(
        &["recommend-gpu", "--model", "llama2-7b", "--tp", "2"],
        2,
        "recommend-gpu chooses the data- and tensor-parallel split of each instance itself: leave out --dp, --tp, --pp and --micro-batches",
    );
    fails(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--train-tokens", "1000000"], 2, "--train-tokens, --epochs and --dataset-size need --mode training");
}

// ---- exit 1: files ----

#[test]
fn missing_files_are_named() {
    fails(&["replay", "/nonexistent/trace.kernels.csv"], 1, "cannot read '/nonexistent/trace.kernels.csv': No such file or directory (os error 2)");
    fails(&["replay", "/nonexistent/trace.json"], 1, "cannot read '/nonexistent/trace.json': No such file or directory (os error 2)");
    fails(&["benchmark", "--model", "/nonexistent/config.json", "--gpu", "a100"], 1, "cannot read '/nonexistent/config.json': no such file");
    fails(&["benchmark", "--model", "/nonexistent/model.onnx", "--gpu", "a100"], 1, "cannot read '/nonexistent/model.onnx': no such file");
    fails(&["list-gpus", "--hardware-profiles", "/nonexistent.toml"], 1, "cannot read '/nonexistent.toml': No such file or directory (os error 2)");
    fails(&["list-gpus", "--calibration", "/nonexistent.toml"], 1, "cannot read '/nonexistent.toml': No such file or directory (os error 2)");
    fails(&["list-prices", "--prices", "/nonexistent.toml"], 1, "cannot read '/nonexistent.toml': No such file or directory (os error 2)");
    fails(&["list-gpus", "--output", "/nonexistent/dir/out.txt"], 1, "cannot write '/nonexistent/dir/out.txt': No such file or directory (os error 2)");
    fails(
        &["serve-sim", "--model", "llama2-7b", "--gpu", "a100", "--rate", "2", "--prompt-len", "64", "--output-len", "8", "--requests", "5", "--plot", "/nonexistent/dir/serve.svg"],
        1,
        "cannot write '/nonexistent/dir/serve.svg': No such file or directory (os error 2)",
    );
    fails(
        &["validate", "--traces", "/nonexistent/traces"],
        1,
        "/nonexistent/traces: trace folder not found (pass --traces DIR or set PHANTOM_TRACES; the data is in shared/traces beside the checkout)",
    );
}

#[test]
fn malformed_trace_csv_gives_the_line() {
    let d = Scratch::new();
    let header = "gpu,op,dtype,shape,timing,measured_ms,source,tags\n";
    let short = d.file("short.kernels.csv", format!("{header}a100-sxm4-80gb,gemm,fp16,m=64;n=64;k=64,kernel,0.01,test,\na100-sxm4-80gb,gemm,fp16\n"));
    fails(&["replay", &short], 1, &format!("{short}:3: expected 8 fields, found 3"));
    let headless = d.file("plain.csv", "a,b,c\n1,2,3\n");
    fails(&["replay", &headless], 1, &format!("{headless}:1: not a canonical trace: header must have the kernel columns (gpu,op,dtype,shape,timing,measured_ms,source,tags) or the model columns (gpu,model,mode,dtype,batch,seq_len,option,num_gpus,measured_ms)"));
    let models = d.file("m.models.csv", "gpu,model,mode,batch,seq_len,dtype,option,num_gpus,measured_ms,source,tags\n");
    fails(&["calibrate", "--traces", &models, "--out", s(&d.path("c.toml"))], 1, &format!("{models}: calibration reads kernel traces (gpu,op,dtype,shape,timing,measured_ms,...) or PyTorch profiler traces (.json, .json.gz), not model traces"));
}

#[test]
fn malformed_profile_toml_gives_the_line_or_field() {
    let d = Scratch::new();
    let bad = d.file("bad.toml", "key = \"x\"\nname = \"X\"\nsm_count = = 3\n");
    let out = cmd().args(["list-gpus", "--hardware-profiles", &bad]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.starts_with(&format!("error: {bad}:3:")), "{stderr}");
    let missing = d.file("missing.toml", "[gpu.mygpu]\nname = \"Mine\"\nvendor = \"NVIDIA\"\narchitecture = \"ampere\"\nchip = \"GA100\"\n");
    let out = cmd().args(["list-gpus", "--hardware-profiles", &missing]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.starts_with(&format!("error: {missing}: [gpu.mygpu]: missing field `compute`")), "{stderr}");
}

#[test]
fn original_phantomgpu_profiles() {
    let d = Scratch::new();
    let typed = d.file("typed.toml", "[profiles.mygpu]\nname = \"My GPU\"\nbased_on = \"a100\"\n[profiles.mygpu.memory]\nmemory_bandwidth_gbs = \"fast\"\n");
    fails(&["list-gpus", "--hardware-profiles", &typed], 1, &format!("{typed}: [profiles.mygpu]: memory.memory_bandwidth_gbs must be a number, got string \"fast\""));
    let negative = d.file("negative.toml", "[profiles.mygpu]\nname = \"My GPU\"\nbased_on = \"a100\"\n[profiles.mygpu.memory]\nmemory_bandwidth_gbs = -5\n");
    fails(&["list-gpus", "--hardware-profiles", &negative], 1, &format!("{negative}: GPU 'mygpu': memory.dram_bandwidth_gbs must be a positive number from 0.001 to 100000000, got -5"));
    let archless = d.file("archless.toml", "[profiles.mygpu]\nname = \"My GPU\"\n");
    fails(
        &["list-gpus", "--hardware-profiles", &archless],
        1,
        &format!("{archless}: [profiles.mygpu]: needs `arch` (pascal, volta, turing, ampere, ada, hopper, blackwell) or `based_on = \"<gpu>\"`"),
    );
    let base = d.file("base.toml", "[profiles.mygpu]\nname = \"My GPU\"\nbased_on = \"a1000\"\n");
    fails(&["list-gpus", "--hardware-profiles", &base], 1, &format!("{base}: [profiles.mygpu]: based_on: unknown GPU 'a1000' (did you mean: a100-sxm4-80gb, a10, a100-sxm4-40gb?)"));
}

#[test]
fn malformed_model_files() {
    let d = Scratch::new();
    let onnx = d.file("bad.onnx", "garbage");
    fails(&["benchmark", "--model", &onnx, "--gpu", "a100"], 1, &format!("{onnx}: not a valid ONNX model (protobuf: Incorrect tag)"));
    let json = d.file("config.json", "{\"model_type\": \"llama\", \"hidden_size\": 4096\n");
    fails(&["benchmark", "--model", &json, "--gpu", "a100"], 1, &format!("{json}:2: column 0: invalid JSON: EOF while parsing an object"));
}

#[test]
fn hf_config_fields() {
    let d = Scratch::new();
    let missing = d.file("llama.json", "{\"model_type\": \"llama\", \"hidden_size\": 4096}");
    fails(&["benchmark", "--model", &missing, "--gpu", "a100"], 1, &format!("{missing}: model_type 'llama': missing required field 'num_attention_heads'"));
    let unknown = d.file("foo.json", "{\"model_type\": \"foo\"}");
    fails(
        &["benchmark", "--model", &unknown, "--gpu", "a100"],
        1,
        &format!("{unknown}: unsupported model_type 'foo' (supported: bert, clip, gpt2, gpt_neox, llama, mistral, mixtral, opt, phi, qwen2, switch_transformers, t5, vit)"),
    );
}

#[test]
fn malformed_kineto_traces() {
    let d = Scratch::new();
    let trunc = d.file("trunc.json", "{\"traceEvents\": [\n");
    fails(&["replay", &trunc], 1, &format!("{trunc}: unexpected end of the JSON at line 2 (the file is truncated)"));
    let empty = d.file("empty.json", "{\"traceEvents\": []}");
    fails(&["replay", &empty], 1, &format!("{empty}: no trace events (expected a PyTorch profiler trace: {{\"traceEvents\": [...]}})"));
    let csv = d.file("t.kernels.csv", "gpu,op,dtype,shape,timing,measured_ms,source,tags\n");
    fails(&["replay", &csv, &empty], 2, "replay takes either Kineto traces (.json, .json.gz) or canonical CSV traces, not both");
    fails(&["replay", &csv, "--recorded-on", "t4"], 2, "--recorded-on and --timeline apply to Kineto traces (.json, .json.gz)");
}

// ---- exit 1: the request cannot run ----

#[test]
fn a_model_that_does_not_fit() {
    // The table is still printed (it shows why), then the error.
    let out = cmd().args(["benchmark", "--model", "llama2-70b", "--gpu", "t4,a100", "--seq-len", "128"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "error: llama2-70b does not fit on t4 (needs 135.4 GiB, has 16.0), a100-sxm4-80gb (needs 135.4 GiB, has 80.0): try a lower --precision (fp8, int8, int4), --tp to split it across GPUs, a smaller --batch-size or --seq-len, or a GPU with more memory\n"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OOM"));
    // Where one GPU fits, it is a comparison, not an error.
    cmd().args(["benchmark", "--model", "llama2-70b", "--gpu", "t4,h200", "--seq-len", "128"]).assert().code(0);
    fails(
        &["benchmark", "--model", "llama2-70b", "--gpu", "4090", "--prompt-len", "100", "--output-len", "10", "--format", "json"],
        1,
        "llama2-70b does not fit on rtx4090 (needs 135.4 GiB, has 24.0): try a lower --precision (fp8, int8, int4), --tp to split it across GPUs, a smaller --batch-size or --seq-len, or a GPU with more memory",
    );
    fails(
        &["serve-sim", "--model", "llama2-7b", "--gpu", "t4", "--rate", "1", "--prompt-len", "10", "--output-len", "10"],
        1,
        "t4 cannot run serving llama2-7b: weights and activations take 15.1 GiB of the 14.4 GiB the engine may use; nothing is left for the KV cache (try --tp to split the model across GPUs, or a lower --precision)",
    );
}

#[test]
fn a_gpu_without_the_dtype() {
    fails(
        &["predict", "gemm", "--gpu", "a100", "--dtype", "fp8", "--shape", "m=64,n=64,k=64"],
        1,
        "a100-sxm4-80gb cannot run fp8 matrix math: Ampere (GA100) tensor cores have no fp8 mode",
    );
    fails(
        &["benchmark", "--model", "llama2-7b", "--gpu", "p4", "--precision", "fp8"],
        1,
        "p4 cannot run fp8 precision: Pascal (GP104) tensor cores have no fp8 mode (fp8 tensor math needs Ada, Hopper, Blackwell or CDNA3)",
    );
}

// ---- clap: exit 2 for usage, 0 for help ----

#[test]
fn flags_and_arguments() {
    usage(&["predict", "gemm", "--gpu", "a100", "--format", "yaml", "--shape", "m=1,n=1,k=1"], "invalid value 'yaml' for '--format <FORMAT>'");
    usage(&["predict", "gemm", "--gpu", "a100", "--shape", "m=1,n=1,k=1", "--bogus"], "unexpected argument '--bogus' found");
    usage(&["serve-sim", "--model", "llama2-7b", "--gpu", "a100", "--rate", "1"], "the following required arguments were not provided");
    usage(&["benchmark", "--model", "llama2-7b", "--gpu", "a100", "--batch-size", "two"], "invalid value 'two' for '--batch-size <BATCH_SIZE>'");
    usage(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    let help = cmd().args(["predict", "--help"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage: phantom-gpu predict"));
    let version = cmd().arg("--version").output().unwrap();
    assert_eq!(version.status.code(), Some(0));
}

/// `profile` exists in every build; without the `ort` feature it says how to get one that
/// can run ONNX Runtime (and about --from-ort-profile, which works in any build).
#[cfg(not(feature = "ort"))]
#[test]
fn profile_without_the_ort_feature_says_how_to_get_it() {
    fails(
        &["profile", "model.onnx", "--gpu", "a100"],
        1,
        "this build has no ONNX Runtime: rebuild with --features ort and set ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.32.0 (the library is in the PyPI onnxruntime wheel: python3 -m pip download --no-deps onnxruntime==1.32.0, unzip the wheel and point ORT_DYLIB_PATH at onnxruntime/capi/libonnxruntime.so.1.32.0), or convert a profile recorded elsewhere with --from-ort-profile FILE",
    );
    let help = cmd().args(["help", "profile"]).output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("phantom-gpu profile resnet50.onnx --replay --gpu a100"));
}

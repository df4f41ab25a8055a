//! The fuzz corpus as a test (see fuzz/README.md): every seed in `fuzz/seeds/<target>/` and
//! every input a fuzzer once crashed on in `fuzz/regressions/<target>/` goes through the
//! same entry point as the cargo-fuzz target (`phantom_gpu::fuzzing::<target>`), on
//! plain stable `cargo test`.
//!
//! Seeds are valid files and must be accepted. Regression inputs must not panic and must
//! give the outcome listed in `EXPECTED`: an error, or a note beside an `Ok` result (the
//! status of a row or kernel the command could not simulate), containing a given text;
//! the entry points check every `Ok` result for sane numbers. A new regression file
//! without an entry fails the test.

use phantom_gpu::fuzzing;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]) -> phantom_gpu::Result<Vec<String>>;

/// What a regression input must give.
#[derive(Debug)]
enum Expect {
    /// An error whose message contains this text.
    Error(&'static str),
    /// Success, with notes (row statuses, warnings) containing each of these texts.
    Notes(&'static [&'static str]),
}
use Expect::{Error, Notes};

const TARGETS: &[(&str, Target)] = &[
    ("onnx", fuzzing::onnx),
    ("gpu_profile", fuzzing::gpu_profile),
    ("trace_csv", fuzzing::trace_csv),
    ("kineto", fuzzing::kineto),
    ("hf_config", fuzzing::hf_config),
];

/// `target/file` → what the entry point must return.
const EXPECTED: &[(&str, Expect)] = &[
    ("hf_config/llama-huge-widths.json", Error("hidden size 1099511627776 is beyond any real model (at most 131072)")),
    ("hf_config/switch-huge-d_model.json", Error("hidden size 2569007199254740993 is beyond any real model")),
    // Hand-written probes: each used to build a graph with an empty or overflowing tensor.
    ("hf_config/neox-rotary-pct-1e300.json", Error("model_type 'gpt_neox': field 'rotary_pct' must be a fraction from 0 to 1, found 1e300")),
    ("hf_config/phi-negative-rotary-factor.json", Error("field 'partial_rotary_factor' must be a fraction from 0 to 1, found -5")),
    ("hf_config/vit-268m-patches.json", Error("(vit): patches per image 268435456 is beyond any real model (at most 1048576)")),
    ("hf_config/clip-projection-dim-0.json", Error("model_type 'clip': field 'projection_dim' must be positive")),
    ("hf_config/t5-zero-buckets.json", Error("model_type 't5': field 'relative_attention_num_buckets' must be positive")),
    ("hf_config/opt-zero-positions.json", Error("(opt): learned position embeddings need a positive number of positions")),
    ("hf_config/bert-zero-labels.json", Error("model_type 'bert': a classifier needs at least one label")),
    ("hf_config/switch-zero-expert-capacity.json", Error("model_type 'switch_transformers': field 'expert_capacity' must be positive")),
    ("onnx/div-with-one-input.onnx", Error("node 18 's0' (Div): Div takes 2 inputs, got 1")),
    ("onnx/conv-huge-constant-of-shape-filter.onnx", Error("kernel 'c' of model 'fuzz.onnx': input (n×c×h×w) has 1344721962225347000 elements, beyond any GPU")),
    ("gpu_profile/legacy-huge-sm-count.toml", Error("[profiles.x]: architecture.streaming_multiprocessors must be from 1 to 65536, got 1e300")),
    ("gpu_profile/legacy-tiny-boost-clock.toml", Error("GPU 'x': compute.boost_clock_mhz must be a positive number from 1 to 100000, got 1e-300")),
    ("trace_csv/huge-gemm-and-node-count.csv", Notes(&[
        "line 2: shape for 'gemm': A (b×m×k) has 32281802128991715321 elements, beyond any GPU",
        "line 3: shape for 'all_reduce': nodes=4611686018427387903 is more than gpus=8",
    ])),
    ("trace_csv/model-rows-zero-micro-batches-huge-sizes.csv", Notes(&[
        "line 2: option 'pp4_0': 0 micro-batches (expected 1 to 16777216)",
        "line 3: num_gpus=18446744073709551615 is beyond any GPU system",
        "line 4: bert-large: batch size 4611686018427387904 is beyond any GPU",
        "line 5: gpt3-xl: sequence of 1073741824 tokens is longer than the model allows",
        "line 6: resnet50: batch size 1099511627776 is beyond any GPU",
    ])),
    // The absurd Input Dims read as unrecorded, so the GEMM falls back to its tile grid;
    // the absurd grid reads as absent.
    ("kineto/huge-dims-and-grid.json", Notes(&["volta_sgemm_128x64_tn: m, n from tile × grid"])),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The input files of one folder (not the scripts that write seeds), sorted.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "py" && e != "md"))
        .collect();
    v.sort();
    v
}

/// Runs one input, turning a panic into an `Err` with its message.
fn run(f: Target, path: &Path) -> Result<phantom_gpu::Result<Vec<String>>, String> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    catch_unwind(AssertUnwindSafe(|| f(&data))).map_err(|p| {
        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
    })
}

fn show(r: &phantom_gpu::Result<Vec<String>>) -> String {
    match r {
        Ok(notes) => format!("Ok, notes:\n    {}", notes.join("\n    ")),
        Err(e) => format!("Err: {e}"),
    }
}

#[test]
fn every_seed_is_accepted() {
    let mut failures = vec![];
    let mut n = 0;
    for (target, f) in TARGETS {
        let files = inputs(&fuzz_dir().join("seeds").join(target));
        assert!(!files.is_empty(), "no seeds for fuzz target '{target}'");
        for path in files {
            n += 1;
            match run(*f, &path) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failures.push(format!("{}: rejected: {e}", path.display())),
                Err(panic) => failures.push(format!("{}: PANIC: {panic}", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_regression_gives_its_expected_outcome() {
    let mut failures = vec![];
    let mut seen = vec![];
    for (target, f) in TARGETS {
        for path in inputs(&fuzz_dir().join("regressions").join(target)) {
            let key = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
            let outcome = run(*f, &path);
            let Some((_, expected)) = EXPECTED.iter().find(|(k, _)| *k == key) else {
                let got = outcome.as_ref().map(show).unwrap_or_else(|p| format!("PANIC: {p}"));
                failures.push(format!("{key}: not listed in EXPECTED; got {got}"));
                continue;
            };
            seen.push(key.clone());
            match (outcome, expected) {
                (Err(panic), _) => failures.push(format!("{key}: PANIC: {panic}")),
                (Ok(Err(e)), Error(text)) if e.to_string().contains(text) => {}
                (Ok(Ok(notes)), Notes(texts)) if texts.iter().all(|t| notes.iter().any(|n| n.contains(t))) => {}
                (Ok(got), want) => failures.push(format!("{key}: expected {want:?}, got {}", show(&got))),
            }
        }
    }
    for (k, _) in EXPECTED {
        if !seen.iter().any(|s| s == k) {
            failures.push(format!("{k}: listed in EXPECTED but the file is missing"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

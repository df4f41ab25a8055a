//! The fuzz corpus as a test (see fuzz/README.md): every seed in `fuzz/seeds/<target>/` and
//! every input a fuzzer once crashed on in `fuzz/regressions/<target>/` goes through the
//! same entry point as the cargo-fuzz target (`phantom_gpu::fuzzing::<target>`), on
//! plain stable `cargo test`.
//!
//! Seeds are valid files and must be accepted. Regression inputs must not panic and must
//! give the outcome listed in `EXPECTED` (an error containing a given text, or `Ok`,
//! which the entry points check for sane numbers); a new regression file without an
//! entry fails the test.

use phantom_gpu::fuzzing;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

type Target = fn(&[u8]) -> phantom_gpu::Result<()>;

const TARGETS: &[(&str, Target)] = &[
    ("onnx", fuzzing::onnx),
    ("gpu_profile", fuzzing::gpu_profile),
    ("trace_csv", fuzzing::trace_csv),
    ("kineto", fuzzing::kineto),
    ("hf_config", fuzzing::hf_config),
];

/// `target/file` → what the entry point must return: `Some(text)` an error whose
/// message contains `text`, `None` success.
const EXPECTED: &[(&str, Option<&str>)] = &[];

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
fn run(f: Target, path: &Path) -> Result<phantom_gpu::Result<()>, String> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    catch_unwind(AssertUnwindSafe(|| f(&data))).map_err(|p| {
        p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
    })
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
                Ok(Ok(())) => {}
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
                failures.push(format!("{key}: not listed in EXPECTED (outcome: {outcome:?})"));
                continue;
            };
            seen.push(key.clone());
            match (outcome, expected) {
                (Err(panic), _) => failures.push(format!("{key}: PANIC: {panic}")),
                (Ok(Ok(())), None) => {}
                (Ok(Err(e)), Some(text)) if e.to_string().contains(text) => {}
                (Ok(got), want) => failures.push(format!("{key}: expected {want:?}, got {got:?}")),
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

//! The model zoo: every model builds a valid graph whose parameter count matches the
//! figure its authors publish.

use phantom_gpu::graph::transformer::Workload;
use phantom_gpu::graph::zoo;

#[test]
fn parameter_counts_match_published_figures() {
    let mut failures = Vec::new();
    for m in zoo::models() {
        let g = m.build(Workload { batch: 1, seq_len: 16.min(m.max_positions().unwrap_or(16).max(1)), past: 0 }).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        g.check().unwrap();
        let params = g.params() as f64;
        println!("{:<16} {:>16.0} published {:>16} ({})", m.name, params, m.published_params, m.params_source);
        if m.published_params == 0 {
            continue; // no published figure (stated in params_source)
        }
        let err = (params / m.published_params as f64 - 1.0).abs();
        if err > 0.02 {
            failures.push(format!("{}: {params:.0} vs published {} ({:.1}%)", m.name, m.published_params, err * 100.0));
        }
    }
    assert!(failures.is_empty(), "parameter counts off by more than 2%:\n{}", failures.join("\n"));
}

#[test]
fn short_names_and_trace_names_resolve() {
    for name in ["llama2-7b", "llama3-8b", "codellama-7b", "bert-large", "vit-b-16", "gpt2-large", "gpt3-xl", "gpt3-2.7b", "opt-1.3b", "switch-xl-4e", "BERT-LARGE"] {
        zoo::find(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn unknown_model_suggests_close_names() {
    let err = zoo::find("llama2-7") .err().expect("unknown model must be an error").to_string();
    assert!(err.contains("unknown model") && err.contains("llama2-7b"), "{err}");
}

#[test]
fn sequence_longer_than_context_is_an_error() {
    let m = zoo::find("gpt2").unwrap();
    let err = m.build(Workload { batch: 1, seq_len: 4096, past: 0 }).expect_err("must fail").to_string();
    assert!(err.contains("longer than the model allows"), "{err}");
    let err = m.build(Workload { batch: 0, seq_len: 16, past: 0 }).expect_err("must fail").to_string();
    assert!(err.contains("at least 1"), "{err}");
}

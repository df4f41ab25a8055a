//! One error type for the library; the binary maps it to an exit code.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown GPU '{name}'{}", suggest(.suggestions))]
    UnknownGpu { name: String, suggestions: Vec<String> },
    #[error("unknown model '{name}'{}", suggest(.suggestions))]
    UnknownModel { name: String, suggestions: Vec<String> },
    #[error("unknown op '{name}'{}", suggest(.suggestions))]
    UnknownOp { name: String, suggestions: Vec<String> },
    #[error("unknown dtype '{0}' (expected one of fp32, tf32, fp16, bf16, fp8, int8)")]
    UnknownDtype(String),
    #[error("shape for '{op}': {msg}")]
    Shape { op: String, msg: String },
    #[error("{gpu} cannot run {what}: {why}")]
    Unsupported { gpu: String, what: String, why: String },
    #[error("{path}:{line}: {msg}")]
    Parse { path: String, line: usize, msg: String },
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("cannot read '{}': {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write '{}': {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Usage(String),
    /// The model fits on none of the GPUs asked for: `report` (the table that shows it) is
    /// still written before the error.
    #[error("{msg}")]
    DoesNotFit { report: String, msg: String },
    /// Something the machine or the build lacks (a runtime library, a feature).
    #[error("{0}")]
    Unavailable(String),
}

/// The message for a model that fits on none of `gpus` (key, needed GiB, GPU GiB).
pub fn does_not_fit(model: &str, gpus: &[(String, f64, f64)]) -> String {
    let each: Vec<String> = gpus.iter().map(|(g, need, have)| format!("{g} (needs {need:.1} GiB, has {have:.1})")).collect();
    format!(
        "{model} does not fit on {}: try a lower --precision (fp8, int8, int4), --tp to split it across GPUs, a smaller --batch-size or --seq-len, or a GPU with more memory",
        each.join(", ")
    )
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" (did you mean: {}?)", s.join(", "))
    }
}

impl Error {
    /// Exit code contract: 2 for a usage error (bad name, flag or value), 1 for anything
    /// that went wrong while running (files, parsing).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::UnknownGpu { .. }
            | Error::UnknownOp { .. }
            | Error::UnknownModel { .. }
            | Error::UnknownDtype(_)
            | Error::Shape { .. }
            | Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Closest candidates by edit distance, for "did you mean".
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let name = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| {
            let mut s = strsim::jaro_winkler(&name, &c.to_lowercase());
            if c.to_lowercase().contains(&name) || name.contains(&c.to_lowercase()) {
                s += 0.2;
            }
            (s, c)
        })
        .filter(|(s, _)| *s > 0.7)
        .collect();
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.to_string()).collect()
}

/// Line number (1-based) of a byte offset, for TOML errors.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A number from a user's file as people read it: plain for everyday magnitudes,
/// scientific beyond them (`1e300`, not three hundred digits).
pub fn show_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e9).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

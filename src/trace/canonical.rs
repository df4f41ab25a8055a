//! The canonical CSV trace format: one measured kernel/op per row (`*.kernels.csv`,
//! `*.model_ops.csv`, `*.collectives.csv`) or one model step per row (`*.models.csv`).
//!
//! Rows are kept as the raw records so `replay --format csv` can echo every input column
//! unchanged; typed access goes through `KernelRow`.

use crate::error::{Error, Result};
use csv::StringRecord;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceKind {
    /// `gpu, op, dtype, shape, timing, measured_ms, …`
    Kernels,
    /// `gpu, model, mode, dtype, batch, seq_len, option, num_gpus, measured_ms, …`
    Models,
}

pub const KERNEL_COLUMNS: &[&str] = &["gpu", "op", "dtype", "shape", "timing", "measured_ms", "source", "tags"];
pub const MODEL_COLUMNS: &[&str] = &["gpu", "model", "mode", "dtype", "batch", "seq_len", "option", "num_gpus", "measured_ms"];

#[derive(Debug, Clone)]
pub struct TraceFile {
    pub path: PathBuf,
    pub kind: TraceKind,
    pub headers: StringRecord,
    pub rows: Vec<StringRecord>,
    /// 1-based line number of each row in the file.
    pub lines: Vec<usize>,
    col: Vec<Option<usize>>,
}

/// One kernel row, borrowed from the record.
#[derive(Debug, Clone, Copy)]
pub struct KernelRow<'a> {
    pub gpu: &'a str,
    pub op: &'a str,
    pub dtype: &'a str,
    pub shape: &'a str,
    pub timing: &'a str,
    pub measured_ms: Option<f64>,
    pub source: &'a str,
    pub tags: &'a str,
}

impl TraceFile {
    pub fn read(path: &Path) -> Result<TraceFile> {
        let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        Self::from_reader(path, std::io::BufReader::with_capacity(1 << 20, file))
    }

    pub fn from_reader(path: &Path, reader: impl std::io::Read) -> Result<TraceFile> {
        let shown = path.display().to_string();
        let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
        let headers = rdr
            .headers()
            .map_err(|e| Error::Parse { path: shown.clone(), line: 1, msg: e.to_string() })?
            .clone();
        let has = |c: &str| headers.iter().any(|h| h == c);
        let kind = if has("op") && has("shape") {
            TraceKind::Kernels
        } else if has("model") && has("mode") {
            TraceKind::Models
        } else {
            return Err(Error::Parse {
                path: shown,
                line: 1,
                msg: format!(
                    "not a canonical trace: header must have the kernel columns ({}) or the model columns ({})",
                    KERNEL_COLUMNS.join(","),
                    MODEL_COLUMNS.join(",")
                ),
            });
        };
        let required = match kind {
            TraceKind::Kernels => &KERNEL_COLUMNS[..6],
            TraceKind::Models => MODEL_COLUMNS,
        };
        for c in required {
            if !has(c) {
                return Err(Error::Parse { path: shown, line: 1, msg: format!("missing column '{c}'") });
            }
        }
        let names: &[&str] = match kind {
            TraceKind::Kernels => KERNEL_COLUMNS,
            TraceKind::Models => MODEL_COLUMNS,
        };
        let col = names.iter().map(|n| headers.iter().position(|h| h == *n)).collect();
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        let mut rec = StringRecord::new();
        loop {
            match rdr.read_record(&mut rec) {
                Ok(true) => {
                    lines.push(rec.position().map(|p| p.line() as usize).unwrap_or(0));
                    rows.push(rec.clone());
                }
                Ok(false) => break,
                Err(e) => {
                    let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                    let msg = match e.kind() {
                        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                            format!("expected {expected_len} fields, found {len}")
                        }
                        _ => e.to_string(),
                    };
                    return Err(Error::Parse { path: shown, line, msg });
                }
            }
        }
        Ok(TraceFile { path: path.to_path_buf(), kind, headers, rows, lines, col })
    }

    fn field<'a>(&self, rec: &'a StringRecord, i: usize) -> &'a str {
        self.col[i].and_then(|c| rec.get(c)).unwrap_or("")
    }

    pub fn kernel_row<'a>(&self, rec: &'a StringRecord) -> KernelRow<'a> {
        debug_assert_eq!(self.kind, TraceKind::Kernels);
        KernelRow {
            gpu: self.field(rec, 0),
            op: self.field(rec, 1),
            dtype: self.field(rec, 2),
            shape: self.field(rec, 3),
            timing: self.field(rec, 4),
            measured_ms: self.field(rec, 5).trim().parse().ok(),
            source: self.field(rec, 6),
            tags: self.field(rec, 7),
        }
    }

    /// Any column by its header name (optional columns such as `source`, `tags`).
    pub fn column<'a>(&self, rec: &'a StringRecord, name: &str) -> Option<&'a str> {
        self.headers.iter().position(|h| h.trim() == name).and_then(|i| rec.get(i))
    }

    /// A model-trace column by name.
    pub fn model_field<'a>(&self, rec: &'a StringRecord, name: &str) -> &'a str {
        let i = MODEL_COLUMNS.iter().position(|n| *n == name).expect("model column");
        self.field(rec, i)
    }
}

/// Looks up `key` in a `k=v;k=v` tag string.
pub fn tag<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    tags.split(';').find_map(|kv| kv.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v))
}

/// Every canonical trace file in a folder (not recursive), sorted, predictions excluded.
pub fn find_traces(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            n.ends_with(".csv") && !n.contains("prediction")
        })
        .collect();
    v.sort();
    Ok(v)
}

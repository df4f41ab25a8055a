//! Calibration with a user's own measurements: refit the per-architecture efficiency
//! parameters and host costs on their traces, score it honestly (k-fold: every row is
//! predicted by a calibration that did not see it), and write an overlay that
//! `--calibration FILE` applies to any command.

use super::fit::{self, FitReport, Sample};
use super::metrics::{pct_error, percentile};
use crate::error::{Error, Result};
use crate::hw::Registry;
use crate::kernel;
use std::path::Path;

/// Folds of the cross-validation: row `i` belongs to fold `i % FOLDS`.
pub const FOLDS: usize = 5;

/// Cross-validated error before and after calibration, and the final values.
#[derive(Debug, Clone)]
pub struct Calibration {
    pub rows: usize,
    /// Median and p90 APE (%) of the committed parameters on every row (nothing fitted).
    pub before: (f64, f64),
    /// Median and p90 APE (%) of each row predicted by a calibration fitted on the
    /// other folds.
    pub after: (f64, f64),
    /// Fitted on all rows: what the overlay holds.
    pub report: FitReport,
}

fn apes(reg: &Registry, samples: &[&Sample]) -> Vec<f64> {
    samples
        .iter()
        .filter_map(|s| kernel::predict_in(reg.gpu(&s.gpu).ok()?, &reg.templates, &s.op, s.dtype, s.ctx).ok().map(|p| pct_error(p.predicted_ms, s.measured_ms).abs()))
        .collect()
}

fn median_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.9))
}

/// Calibrates `reg` on `samples` (all of them: the user's rows, none held back), after
/// scoring the procedure by k-fold cross-validation.
pub fn calibrate(reg: &Registry, samples: &[Sample], sweeps: usize) -> Result<Calibration> {
    if samples.len() < FOLDS * 4 {
        return Err(Error::Usage(format!("calibration needs at least {} measured rows on known GPUs; the traces have {}", FOLDS * 4, samples.len())));
    }
    let all: Vec<&Sample> = samples.iter().collect();
    let before = median_p90(apes(reg, &all));
    let mut held_out = Vec::with_capacity(samples.len());
    for f in 0..FOLDS {
        let train: Vec<Sample> = samples.iter().enumerate().filter(|(i, _)| i % FOLDS != f).map(|(_, s)| s.clone()).collect();
        let test: Vec<&Sample> = samples.iter().enumerate().filter(|(i, _)| i % FOLDS == f).map(|(_, s)| s).collect();
        let mut r = reg.clone();
        fit::refine(&mut r, &train, sweeps);
        held_out.extend(apes(&r, &test));
    }
    let after = median_p90(held_out);
    let mut r = reg.clone();
    let report = fit::refine(&mut r, samples, sweeps);
    Ok(Calibration { rows: samples.len(), before, after, report })
}

/// The overlay file: `[isa.<arch>]` efficiency values, `[host]` call costs and `[kernel]`
/// library kernel parameters.
pub fn overlay_toml(c: &Calibration, command: &str) -> String {
    let mut doc = toml_edit::DocumentMut::new();
    doc["about"] = toml_edit::value(format!(
        "PhantomGPU calibration overlay written by `{command}` from {} rows of GPUs {}; {}-fold cross-validated median APE {:.1}% before, {:.1}% after",
        c.rows,
        c.report.gpus.iter().cloned().collect::<Vec<_>>().join(", "),
        FOLDS,
        c.before.0,
        c.after.0
    ));
    for ((scope, name), (v, rows, _)) in &c.report.values {
        let rounded = (v * 1e4).round() / 1e4;
        let table = if scope == "host" || scope == "kernel" { scope.clone() } else { format!("isa.{scope}") };
        let (outer, inner) = table.split_once('.').map_or((table.as_str(), None), |(a, b)| (a, Some(b)));
        if !doc.contains_key(outer) {
            doc[outer] = toml_edit::table();
            if let Some(t) = doc[outer].as_table_mut() { t.set_implicit(true) }
        }
        match inner {
            Some(arch) => {
                if doc[outer].get(arch).is_none() {
                    doc[outer][arch] = toml_edit::table();
                }
                doc[outer][arch][name.as_str()] = toml_edit::value(rounded);
                doc[outer][arch][&format!("{name}_rows")] = toml_edit::value(*rows as i64);
            }
            None => {
                doc[outer][name.as_str()] = toml_edit::value(rounded);
            }
        }
    }
    doc.to_string()
}

/// Applies an overlay written by `calibrate` to the registry.
pub fn apply(reg: &mut Registry, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::Parse {
        path: path.display().to_string(),
        line: e.span().map(|s| crate::error::line_of(&text, s.start)).unwrap_or(0),
        msg: e.message().to_string(),
    })?;
    let bad = |msg: String| Error::File { path: path.display().to_string(), msg };
    for (key, v) in &doc {
        match (key.as_str(), v) {
            ("about", _) => {}
            ("host", toml::Value::Table(t)) => {
                for (name, v) in t {
                    if !fit::HOST_PARAMS.iter().any(|p| p.name == name) {
                        return Err(bad(format!("[host] {name}: not a calibrated host parameter (expected one of {})", fit::HOST_PARAMS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))));
                    }
                    let x = v.as_float().or(v.as_integer().map(|i| i as f64)).filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| bad(format!("[host] {name}: expected a positive number")))?;
                    fit::host_set(reg, name, x);
                }
            }
            ("kernel", toml::Value::Table(t)) => {
                for (name, v) in t {
                    if !fit::KERNEL_PARAMS.iter().any(|p| p.name == name) {
                        return Err(bad(format!("[kernel] {name}: not a calibrated kernel parameter (expected one of {})", fit::KERNEL_PARAMS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))));
                    }
                    let x = v.as_float().or(v.as_integer().map(|i| i as f64)).filter(|x| x.is_finite() && *x >= 0.0).ok_or_else(|| bad(format!("[kernel] {name}: expected a number ≥ 0")))?;
                    fit::kernel_set(reg, name, x);
                }
            }
            ("isa", toml::Value::Table(archs)) => {
                for (arch, t) in archs {
                    let mut isa = (**reg.isa(arch).ok_or_else(|| bad(format!("[isa.{arch}]: unknown architecture")))?).clone();
                    let toml::Value::Table(t) = t else { return Err(bad(format!("[isa.{arch}] must be a table"))) };
                    for (name, v) in t {
                        if name.ends_with("_rows") {
                            continue;
                        }
                        if !fit::ARCH_PARAMS.iter().any(|p| p.name == name) {
                            return Err(bad(format!("[isa.{arch}] {name}: not a calibrated parameter (expected one of {})", fit::ARCH_PARAMS.iter().map(|p| p.name).collect::<Vec<_>>().join(", "))));
                        }
                        let x = v.as_float().or(v.as_integer().map(|i| i as f64)).filter(|x| x.is_finite() && *x > 0.0).ok_or_else(|| bad(format!("[isa.{arch}] {name}: expected a positive number")))?;
                        fit::set(&mut isa, name, x);
                    }
                    reg.replace_isa(isa);
                }
            }
            (other, _) => return Err(bad(format!("unexpected key '{other}' (a calibration overlay has [host], [kernel] and [isa.<arch>] tables)"))),
        }
    }
    Ok(())
}

/// Samples from every row of the given canonical kernel traces.
pub fn samples_of(reg: &Registry, files: &[crate::trace::canonical::TraceFile]) -> Vec<Sample> {
    fit::samples(reg, files, |_| true)
}

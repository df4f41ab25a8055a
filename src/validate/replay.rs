//! Predicts every row of a canonical kernel trace, on the row's GPU or on a target.

use crate::hw::{Gpu, Registry};
use crate::kernel::{self, Dtype, Op, Timing};
use crate::trace::canonical::{TraceFile, TraceKind};
use rayon::prelude::*;

/// The prediction for one input row; `status` is empty when simulated, otherwise the
/// reason it was not.
#[derive(Debug, Clone)]
pub struct ReplayRow {
    pub predicted_ms: Option<f64>,
    pub status: String,
    pub tile: Option<String>,
    pub bound: &'static str,
}

impl ReplayRow {
    fn skipped(status: String) -> ReplayRow {
        ReplayRow { predicted_ms: None, status, tile: None, bound: "" }
    }
}

/// One row, one prediction. Errors become a status, never a panic or a lost row.
pub fn replay_row(reg: &Registry, file: &TraceFile, index: usize, target: Option<&Gpu>) -> ReplayRow {
    let rec = &file.rows[index];
    if file.kind == TraceKind::Models {
        return ReplayRow::skipped("model traces need the whole-model simulator".into());
    }
    let row = file.kernel_row(rec);
    let gpu = match target {
        Some(g) => g,
        None => match reg.gpu(row.gpu) {
            Ok(g) => g,
            Err(_) => return ReplayRow::skipped(format!("unknown gpu '{}'", row.gpu)),
        },
    };
    let op = match Op::parse(row.op, row.shape) {
        Ok(op) => op,
        Err(e) => return ReplayRow::skipped(e.to_string()),
    };
    let dtype = match Dtype::parse(row.dtype) {
        Ok(d) => d,
        Err(e) => return ReplayRow::skipped(e.to_string()),
    };
    let timing = match Timing::parse(row.timing) {
        Ok(t) => t,
        Err(e) => return ReplayRow::skipped(e.to_string()),
    };
    let node_type = crate::trace::canonical::tag(row.tags, "node_type");
    match kernel::predict_on(gpu, &reg.templates, &op, dtype, kernel::Context::for_timing(timing), node_type) {
        Ok(p) => ReplayRow { predicted_ms: Some(p.predicted_ms), status: String::new(), tile: p.tile, bound: p.bound },
        Err(e) => ReplayRow::skipped(e.to_string()),
    }
}

/// Every row of a file, in parallel, in input order. `progress` is called with the
/// number of rows done (in chunks), for a progress bar.
pub fn replay_kernels(
    reg: &Registry,
    file: &TraceFile,
    target: Option<&Gpu>,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<ReplayRow> {
    if file.kind == TraceKind::Models {
        return super::models::replay_models(reg, file, target, progress);
    }
    const CHUNK: usize = 4096;
    let n = file.rows.len();
    let chunks: Vec<Vec<ReplayRow>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let out: Vec<ReplayRow> =
                (c * CHUNK..((c + 1) * CHUNK).min(n)).map(|i| replay_row(reg, file, i, target)).collect();
            progress(out.len() as u64);
            out
        })
        .collect();
    chunks.into_iter().flatten().collect()
}

/// For a convolution row: the cuDNN algorithm family its `kernel=`/`n_kernels=` tags
/// record and the one the prediction (`tile`) chose, when both are known.
pub fn conv_algorithms(reg: &Registry, tags: &str, tile: Option<&str>) -> Option<(kernel::conv::Family, kernel::conv::Family)> {
    use crate::trace::canonical::tag;
    use kernel::conv::Family;
    let launches = tag(tags, "n_kernels").and_then(|n| n.trim().parse().ok()).unwrap_or(1);
    let recorded = Family::of_kernel(tag(tags, "kernel")?.trim(), launches)?;
    Some((recorded, Family::of_tile(&reg.templates, tile?)?))
}

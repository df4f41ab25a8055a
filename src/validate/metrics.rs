//! Error metrics: absolute percentage error (APE) percentiles and signed bias per group.

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    pub source: String,
    pub gpu: String,
    pub op: String,
    pub dtype: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    #[serde(flatten)]
    pub key: GroupKey,
    pub rows: usize,
    pub median_ape: f64,
    pub p90_ape: f64,
    /// Median signed error, %: positive means the model predicts too slow.
    pub bias: f64,
    /// Baselines' median APE on the same rows, by predictor name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub baselines: BTreeMap<String, f64>,
}

/// Percentile by nearest rank on a sorted slice.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Signed error in percent.
pub fn pct_error(predicted: f64, measured: f64) -> f64 {
    (predicted - measured) / measured * 100.0
}

/// Summarises (key, predicted, measured) triples per key.
pub fn summarize(samples: impl IntoIterator<Item = (GroupKey, f64, f64)>) -> Vec<GroupStats> {
    let mut groups: BTreeMap<GroupKey, Vec<f64>> = BTreeMap::new();
    for (k, p, m) in samples {
        if m > 0.0 && p.is_finite() {
            groups.entry(k).or_default().push(pct_error(p, m));
        }
    }
    groups.into_iter().map(|(key, errs)| stats(key, errs)).collect()
}

pub fn stats(key: GroupKey, mut signed: Vec<f64>) -> GroupStats {
    signed.sort_by(f64::total_cmp);
    let bias = percentile(&signed, 0.5);
    let mut abs: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
    abs.sort_by(f64::total_cmp);
    GroupStats {
        key,
        rows: abs.len(),
        median_ape: percentile(&abs, 0.5),
        p90_ape: percentile(&abs, 0.9),
        bias,
        baselines: BTreeMap::new(),
    }
}

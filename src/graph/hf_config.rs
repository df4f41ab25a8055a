//! HuggingFace `config.json` → `TransformerConfig`.

use super::transformer::Workload;
use super::Graph;
use crate::error::{Error, Result};
use std::path::Path;

/// Builds the graph a trace row measured from the HuggingFace config it names.
/// (Placeholder until the config parser lands: always an error, so replay falls back.)
pub fn build_for_trace(path: &Path, _wl: Workload, _training: bool) -> Result<Graph> {
    Err(Error::File { path: path.display().to_string(), msg: "HuggingFace configs are not supported yet".into() })
}

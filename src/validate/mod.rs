//! Replay of real traces and the error metrics that compare them with predictions.

pub mod calibrate;
pub mod fit;
pub mod kineto;
pub mod metrics;
pub mod models;
pub mod replay;

pub use metrics::{summarize, GroupKey, GroupStats};
pub use replay::{replay_kernels, ReplayRow};

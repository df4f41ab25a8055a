//! Trace formats. `canonical` reads the CSV format of `../shared/traces/FORMAT.md`;
//! `kineto` PyTorch profiler traces; `ort_profile` ONNX Runtime profiles (→ canonical rows).

pub mod canonical;
pub mod kineto;
pub mod ort_profile;

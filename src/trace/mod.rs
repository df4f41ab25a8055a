//! Trace formats. `canonical` reads the CSV format of `../shared/traces/FORMAT.md`.

pub mod canonical;
pub mod kineto;

//! PhantomGPU: a cycle-approximate, kernel-level GPU performance simulator for ML work.
//!
//! Data flows one way: `hw` (profiles, ISA tables) → `kernel` (one cost model per kernel
//! kind, using `sim` for clocks and memory) → `trace`/`validate` (replay of real
//! measurements) → `report` (tables, JSON, CSV, Markdown, SVG plots, HTML); `cost` and
//! `recommend` price simulated runs. The binary in `main.rs` only parses
//! arguments and prints.

pub mod cli;
pub mod cost;
pub mod error;
/// Entry points for `fuzz/` (cargo fuzz) and `tests/fuzz_regressions.rs`.
#[doc(hidden)]
pub mod fuzzing;
pub mod graph;
pub mod hw;
pub mod kernel;
pub mod lower;
pub mod onnxrt;
pub mod recommend;
pub mod report;
pub mod run;
pub mod serve;
pub mod sim;
pub mod trace;
pub mod validate;

pub use error::{Error, Result};

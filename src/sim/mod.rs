//! The machine a kernel runs on: clock from power, and the memory hierarchy's
//! achievable bandwidth. Kernel cost models ask these questions; they hold no kernel
//! knowledge themselves.

pub mod clock;
pub mod memory;
pub mod scheduler;

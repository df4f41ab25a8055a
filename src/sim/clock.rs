//! Sustained SM clock from the board power limit.
//!
//! Dynamic power scales roughly with f·V², and V with f near the top of the DVFS curve, so
//! P(f) = idle + Σ_SM w(activity) · u · (f / boost)³. The sustained clock is the highest
//! f ≤ boost with P(f) ≤ TDP. Tensor work draws more than FFMA work, which draws more than
//! memory-bound work; `u` is the fraction of the machine the kernel keeps busy.

use crate::hw::Gpu;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Tensor,
    Ffma,
    Memory,
}

/// Lowest clock the model will report, as a fraction of boost (DVFS floors are far
/// below base on power-capped boards, e.g. an L40 at 1320 of 2490 MHz).
const FLOOR: f64 = 0.4;

/// Sustained clock in MHz for a kernel of this activity that keeps a fraction
/// `utilization` (0..=1) of the SMs' pipes busy.
pub fn sustained_mhz(gpu: &Gpu, activity: Activity, utilization: f64) -> f64 {
    let p = &gpu.isa.power;
    let boost = gpu.profile.compute.boost_clock_mhz;
    let w = match activity {
        Activity::Tensor => p.tensor_w_per_sm,
        Activity::Ffma => p.ffma_w_per_sm,
        Activity::Memory => p.memory_w_per_sm,
    };
    let demand = gpu.sms() * w * utilization.clamp(0.0, 1.0);
    let budget = gpu.profile.power.tdp_w * (1.0 - p.idle_fraction);
    if demand <= budget || demand <= 0.0 {
        return boost;
    }
    (boost * (budget / demand).cbrt()).max(boost * FLOOR)
}

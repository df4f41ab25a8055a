//! Sustained SM clock from the board power limit.
//!
//! A kernel draws E·(work per second) of dynamic power, where the work rate scales with
//! the clock f and the energy per operation with V², and V falls with f down to a floor.
//! The sustained clock is the highest f ≤ boost whose idle + dynamic power fits the board
//! limit. Tensor work at full rate draws more than FFMA work on most boards, and a
//! DRAM-bound kernel draws mostly memory power, which the clock does not change.

use crate::hw::Gpu;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Tensor,
    Ffma,
    Memory,
}

/// Lowest clock the model reports, as a fraction of boost (DVFS floors are far below base
/// on power-capped boards: an L40 was seen at 1320 of 2490 MHz).
const FLOOR: f64 = 0.3;

/// Dynamic power relative to its value at boost, at clock ratio `x = f / boost`.
fn relative_power(x: f64, v_min: f64) -> f64 {
    let v = x.max(v_min);
    x * v * v
}

/// Sustained clock in MHz for a kernel of this activity that keeps a fraction
/// `utilization` (0..=1) of the machine's pipes busy.
pub fn sustained_mhz(gpu: &Gpu, activity: Activity, utilization: f64) -> f64 {
    let p = &gpu.isa.power;
    let boost = gpu.profile.compute.boost_clock_mhz;
    let u = utilization.clamp(0.0, 1.0);
    let hz = boost * 1e6;
    let watts_at_boost = match activity {
        Activity::Tensor => {
            let rate = gpu.tensor_flop_per_clk("fp16").unwrap_or(gpu.rates.ffma_flop_per_clk);
            p.tensor_pj_per_flop * 1e-12 * rate * gpu.sms() * hz * u
        }
        Activity::Ffma => p.ffma_pj_per_flop * 1e-12 * gpu.rates.ffma_flop_per_clk * gpu.sms() * hz * u,
        Activity::Memory => return boost,
    };
    let budget = gpu.profile.power.tdp_w * (1.0 - p.idle_fraction) / gpu.duty;
    if watts_at_boost <= budget {
        return boost;
    }
    // relative_power is increasing in x: bisect for the clock that meets the budget.
    let target = budget / watts_at_boost;
    let (mut lo, mut hi) = (FLOOR, 1.0);
    if relative_power(lo, p.v_min_ratio) >= target {
        return boost * FLOOR;
    }
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if relative_power(mid, p.v_min_ratio) > target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    boost * lo
}

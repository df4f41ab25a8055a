//! The custom-GPU layout of the original PhantomGPU (`[profiles.NAME]` with `.thermal`,
//! `.memory`, `.architecture`, `.precision`, `.model_performance` tables).
//!
//! Only physical fields are taken. Fudge factors (`batch_scaling_curve`,
//! `architecture_multiplier`, precision multipliers, cache hit ratios …) are ignored with
//! a warning, because the simulator derives those effects from tiles, caches and clocks.
//! That layout never said how much memory or DRAM bandwidth the GPU has, nor its
//! architecture generation; a profile gives them as `memory_gb`, `memory_bandwidth_gbs`
//! and `arch`, or names a built-in GPU in `based_on` to inherit every fact it omits.

use super::{GpuProfile, Registry};
use crate::error::{show_num, Error, Result};
use toml::{Table, Value};

/// Fields that are physical and mapped, as `table.field`.
const MAPPED: &[&str] = &[
    "name", "based_on", "arch", "chip", "memory_gb", "memory_bandwidth_gbs", "memory_bandwidth_gbps",
    "thermal.tdp_watts", "thermal.base_clock_mhz", "thermal.boost_clock_mhz",
    "memory.l1_cache_kb", "memory.l2_cache_mb", "memory.memory_gb", "memory.memory_bandwidth_gbs",
    "memory.memory_bandwidth_gbps",
    "architecture.cuda_cores", "architecture.tensor_cores", "architecture.streaming_multiprocessors",
    "architecture.memory_bus_width",
];

/// Known fields that are deliberately not used, with the reason.
const IGNORED: &[(&str, &str)] = &[
    ("thermal.throttle_temp_celsius", "the clock model derives throttling from board power (tdp_watts), not a temperature threshold"),
    ("thermal.thermal_factor_sustained", "a fudge factor; the sustained clock follows from tdp_watts and the kernel's activity"),
    ("memory.memory_channels", "bandwidth is taken from memory_bandwidth_gbs, not channel counts"),
    ("memory.cache_hit_ratio", "a fudge factor; L2 hits follow from the tiling and the L2 size"),
    ("memory.coalescing_efficiency", "a fudge factor; library kernels are modelled as coalesced"),
    ("architecture.rt_cores", "ray-tracing cores do no ML work"),
    ("model_performance", "batch_scaling_curve, memory_efficiency, tensor_core_utilization and architecture_multiplier are fudge factors; the simulator derives them per kernel from tiles, waves and clocks"),
    ("precision", "precision multipliers are fudge factors; per-dtype rates come from the architecture's ISA table"),
];

fn num(t: &Table, path: &str) -> Option<f64> {
    let mut cur = t;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur.get(*p)?.as_table()?;
    }
    match cur.get(*parts.last()?)? {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn string(t: &Table, key: &str) -> Option<String> {
    t.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

/// Converts every `[profiles.NAME]` table; returns the profiles and the warnings to show.
pub fn convert(path: &str, text: &str, reg: &Registry) -> Result<(Vec<GpuProfile>, Vec<String>)> {
    let root: Table = toml::from_str(text).map_err(|e| Error::File { path: path.into(), msg: e.to_string() })?;
    let profiles = root.get("profiles").and_then(|v| v.as_table()).ok_or_else(|| Error::File {
        path: path.into(),
        msg: "`profiles` must be a table of [profiles.<name>] tables".into(),
    })?;
    let mut out = vec![];
    let mut warnings = vec![];
    for (name, v) in profiles {
        let t = v.as_table().ok_or_else(|| Error::File {
            path: path.into(),
            msg: format!("[profiles.{name}] must be a table"),
        })?;
        let here = |msg: String| Error::File { path: path.into(), msg: format!("[profiles.{name}]: {msg}") };
        // Report what is ignored, and anything unknown.
        for (k, sub) in t {
            let ignored_whole = IGNORED.iter().find(|(f, _)| f == k);
            if let Some((_, why)) = ignored_whole {
                warnings.push(format!("{path}: [profiles.{name}.{k}] ignored: {why}"));
                continue;
            }
            match sub.as_table() {
                Some(st) => {
                    for f in st.keys() {
                        let full = format!("{k}.{f}");
                        if let Some((_, why)) = IGNORED.iter().find(|(g, _)| *g == full) {
                            warnings.push(format!("{path}: profiles.{name}.{full} ignored: {why}"));
                        } else if !MAPPED.contains(&full.as_str()) {
                            warnings.push(format!("{path}: profiles.{name}.{full} is not a known field; ignored"));
                        }
                    }
                }
                None if !MAPPED.contains(&k.as_str()) => {
                    warnings.push(format!("{path}: profiles.{name}.{k} is not a known field; ignored"))
                }
                None => {}
            }
        }
        // A mapped field of the wrong type is an error, not a silent fallback to the base GPU.
        for field in MAPPED {
            let (parent, key) = field.rsplit_once('.').map_or((None, *field), |(p, k)| (Some(p), k));
            let table = match parent {
                Some(p) => t.get(p).and_then(|v| v.as_table()),
                None => Some(t),
            };
            let Some(v) = table.and_then(|tb| tb.get(key)) else { continue };
            let text = matches!(*field, "name" | "based_on" | "arch" | "chip");
            let ok = if text { v.is_str() } else { v.is_integer() || v.is_float() };
            if !ok {
                let want = if text { "a string" } else { "a number" };
                return Err(here(format!("{field} must be {want}, got {} {v}", v.type_str())));
            }
        }
        let base = match string(t, "based_on") {
            Some(b) => Some(reg.gpu(&b).map_err(|e| here(format!("based_on: {e}")))?.profile.as_ref().clone()),
            None => None,
        };
        let arch = string(t, "arch")
            .map(|a| a.to_lowercase().replace("ada lovelace", "ada"))
            .or_else(|| base.as_ref().map(|b| b.architecture.clone()))
            .ok_or_else(|| here("needs `arch` (pascal, volta, turing, ampere, ada, hopper, blackwell) or `based_on = \"<gpu>\"`".into()))?;
        let isa = reg.isa(&arch).ok_or_else(|| here(format!("unknown arch '{arch}'")))?;
        let sms = num(t, "architecture.streaming_multiprocessors")
            .or_else(|| base.as_ref().map(|b| b.compute.sm_count as f64))
            .ok_or_else(|| here("needs architecture.streaming_multiprocessors".into()))?;
        // Counts become integers: out of range they would wrap or saturate silently.
        let count = |v: f64, what: &str, max: f64| {
            if (1.0..=max).contains(&v.round()) {
                Ok(v)
            } else {
                Err(here(format!("{what} must be from 1 to {max}, got {}", show_num(v))))
            }
        };
        let sms = count(sms, "architecture.streaming_multiprocessors", 65536.0)?;
        let cores = num(t, "architecture.cuda_cores");
        let cores_per_sm = cores
            .map(|c| count(c / sms, "architecture.cuda_cores per streaming multiprocessor", 65536.0))
            .transpose()?
            .or_else(|| base.as_ref().map(|b| b.compute.fp32_cores_per_sm as f64))
            .ok_or_else(|| here("needs architecture.cuda_cores".into()))?;
        // Pick the chip of this architecture with the same FP32 lanes per SM.
        let chip = string(t, "chip")
            .or_else(|| base.as_ref().filter(|b| b.architecture == arch).map(|b| b.chip.clone()))
            .or_else(|| {
                isa.chips
                    .iter()
                    .min_by_key(|(_, r)| ((r.ffma_flop_per_clk / 2.0 - cores_per_sm).abs() * 1000.0) as i64)
                    .map(|(c, _)| c.clone())
            })
            .ok_or_else(|| here(format!("arch '{arch}' has no chips")))?;
        let need = |v: Option<f64>, what: &str| v.ok_or_else(|| here(format!("needs {what}")));
        let base_mem = base.as_ref().map(|b| b.memory.clone());
        let mem_gb = need(
            num(t, "memory_gb").or(num(t, "memory.memory_gb")).or(base_mem.as_ref().map(|m| m.memory_gb)),
            "memory_gb (device memory in GB)",
        )?;
        let bw = need(
            num(t, "memory_bandwidth_gbs")
                .or(num(t, "memory_bandwidth_gbps"))
                .or(num(t, "memory.memory_bandwidth_gbs"))
                .or(num(t, "memory.memory_bandwidth_gbps"))
                .or(base_mem.as_ref().map(|m| m.dram_bandwidth_gbs)),
            "memory_bandwidth_gbs (DRAM bandwidth in GB/s)",
        )?;
        let boost = need(
            num(t, "thermal.boost_clock_mhz").or(base.as_ref().map(|b| b.compute.boost_clock_mhz)),
            "thermal.boost_clock_mhz",
        )?;
        let tdp = need(num(t, "thermal.tdp_watts").or(base.as_ref().map(|b| b.power.tdp_w)), "thermal.tdp_watts")?;
        let l2 = need(num(t, "memory.l2_cache_mb").or(base_mem.as_ref().map(|m| m.l2_mib)), "memory.l2_cache_mb")?;
        // Per-SM storage limits: from the base GPU, else the architecture's defaults via
        // any built-in GPU of the same chip.
        let sibling = reg.gpus().find(|g| g.profile.architecture == arch && g.profile.chip == chip).map(|g| g.profile.as_ref().clone());
        let limits = base.clone().or(sibling).ok_or_else(|| here(format!("no built-in {arch} GPU to take per-SM limits from; give based_on")))?;
        let mut p = base.clone().unwrap_or_else(|| limits.clone());
        let key = super::normalize(name);
        p.key = key.clone();
        p.name = string(t, "name").unwrap_or_else(|| name.clone());
        p.architecture = arch;
        p.chip = chip;
        p.aliases = vec![];
        p.device_names = vec![];
        p.compute.sm_count = sms.round() as u32;
        p.compute.fp32_cores_per_sm = cores_per_sm.round() as u32;
        if let Some(tc) = num(t, "architecture.tensor_cores") {
            if !(0.0..=65536.0).contains(&(tc / sms)) {
                return Err(here(format!("architecture.tensor_cores must be from 0 to 65536 per streaming multiprocessor, got {}", show_num(tc))));
            }
            p.compute.tensor_cores_per_sm = (tc / sms).round() as u32;
        }
        p.compute.boost_clock_mhz = boost;
        p.compute.base_clock_mhz = num(t, "thermal.base_clock_mhz").or(p.compute.base_clock_mhz);
        p.memory.memory_gb = mem_gb;
        p.memory.dram_bandwidth_gbs = bw;
        if num(t, "memory_bandwidth_gbs").or(num(t, "memory_bandwidth_gbps")).or(num(t, "memory.memory_bandwidth_gbs")).or(num(t, "memory.memory_bandwidth_gbps")).is_some() {
            p.memory.dram_bandwidth_measured_gbs = None;
        }
        p.memory.l2_mib = l2;
        if let Some(l1) = num(t, "memory.l1_cache_kb") {
            p.memory.l1_smem_per_sm_kib = Some(l1);
        }
        if let Some(bus) = num(t, "architecture.memory_bus_width") {
            p.memory.bus_width_bits = Some(bus as u32);
        }
        p.power.tdp_w = tdp;
        p.power.observed_clock_under_load_mhz = None;
        p.peaks = Default::default();
        p.sources = [("*".to_string(), format!("user file {path} [profiles.{name}]"))].into();
        p.notes = vec![match &base {
            Some(b) => format!("converted from the original PhantomGPU layout; facts not given are those of {}", b.key),
            None => format!("converted from the original PhantomGPU layout; per-SM limits taken from {}", limits.key),
        }];
        p.tensor_fp32_accumulate_half_rate = base.as_ref().is_some_and(|b| b.tensor_fp32_accumulate_half_rate);
        out.push(p);
    }
    Ok((out, warnings))
}

//! GPU profiles and ISA tables as typed structs, and name lookup.
//!
//! Invariant: every `Gpu` handed out has a profile, its architecture's ISA and the
//! chip's rate table; lookups never fall back to a default GPU.

pub mod isa;
pub mod legacy;
pub mod profile;

use crate::error::{closest, line_of, show_num, Error, Result};
use crate::kernel::templates::{AttentionTemplates, ConvTemplates, GemmTemplates, LaunchModel, MemoryBoundTemplates};
pub use isa::{ChipRates, Isa};
pub use profile::GpuProfile;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// A GPU ready to simulate: its facts, its architecture, its chip's rates.
#[derive(Debug, Clone)]
pub struct Gpu {
    pub profile: Arc<GpuProfile>,
    pub isa: Arc<Isa>,
    pub rates: Arc<ChipRates>,
    /// Fraction of the time the GPU is busy (1 for kernels run back to back): the board's
    /// power limit holds an average over many kernels, so a GPU idle between calls may draw
    /// 1/duty of its sustained dynamic power while a kernel runs (`sim::clock`).
    pub duty: f64,
}

impl Gpu {
    /// The same GPU busy only a fraction `duty` (0..=1) of the time, as a loop of calls
    /// with host gaps keeps it.
    pub fn with_duty(&self, duty: f64) -> Gpu {
        Gpu { duty: duty.clamp(1e-3, 1.0), ..self.clone() }
    }

    pub fn key(&self) -> &str {
        &self.profile.key
    }
    pub fn sms(&self) -> f64 {
        self.profile.compute.sm_count as f64
    }
    /// Sustained DRAM bandwidth in GB/s: the measured figure where one exists, otherwise
    /// the spec times the architecture's streaming efficiency.
    pub fn dram_gbs(&self) -> f64 {
        let m = &self.profile.memory;
        m.dram_bandwidth_measured_gbs
            .unwrap_or(m.dram_bandwidth_gbs * self.isa.efficiency.dram_stream)
    }
    /// Dense tensor FLOP per clock per SM for a dtype (halved on GeForce for FP32
    /// accumulate), or None when the tensor cores lack it.
    pub fn tensor_flop_per_clk(&self, dtype: &str) -> Option<f64> {
        let r = *self.rates.tensor_flop_per_clk.get(dtype)?;
        if r <= 0.0 {
            return None;
        }
        let half = self.profile.tensor_fp32_accumulate_half_rate
            && matches!(dtype, "fp16" | "bf16" | "fp8" | "tf32");
        Some(if half { r / 2.0 } else { r })
    }
}

/// Kernel templates of all architectures.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub gemm: GemmTemplates,
    pub attention: AttentionTemplates,
    pub conv: ConvTemplates,
    pub launch: LaunchModel,
    pub memory_bound: MemoryBoundTemplates,
    /// Node topologies for collectives, by `node_type` (`kernels/topologies.toml`).
    pub topologies: crate::kernel::collective::Topologies,
}

/// All known GPUs and architectures, built-in plus user additions.
#[derive(Debug, Clone)]
pub struct Registry {
    gpus: BTreeMap<String, Gpu>,
    aliases: BTreeMap<String, String>,
    isas: BTreeMap<String, Arc<Isa>>,
    pub templates: Templates,
    /// Messages about user files (ignored legacy fields …), shown once by the CLI.
    pub warnings: Vec<String>,
}

/// Case-, space- and underscore-insensitive form of a GPU name.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase().replace(['_', ' '], "-")
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::Parse {
        path: path.to_string(),
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(0),
        msg: e.message().to_string(),
    })
}

impl Registry {
    /// The profiles, ISA tables and templates embedded in the binary.
    pub fn builtin() -> Result<Registry> {
        let mut isas = BTreeMap::new();
        for (file, text) in embedded::ISA {
            let isa: Isa = parse_toml(&format!("isa/{file}"), text)?;
            isas.insert(isa.architecture.clone(), Arc::new(isa));
        }
        let mut templates = Templates::default();
        for (file, text) in embedded::KERNELS {
            let path = format!("kernels/{file}");
            match *file {
                "gemm.toml" => templates.gemm = parse_toml(&path, text)?,
                "attention.toml" => templates.attention = parse_toml(&path, text)?,
                "conv.toml" => templates.conv = parse_toml(&path, text)?,
                "launch.toml" => templates.launch = parse_toml(&path, text)?,
                "memory_bound.toml" => templates.memory_bound = parse_toml(&path, text)?,
                "topologies.toml" => templates.topologies = crate::kernel::collective::Topologies::parse(&path, text)?,
                _ => {}
            }
        }
        let mut reg = Registry {
            gpus: BTreeMap::new(),
            aliases: BTreeMap::new(),
            isas,
            templates,
            warnings: vec![],
        };
        for (file, text) in embedded::PROFILES {
            let p: GpuProfile = parse_toml(&format!("profiles/{file}"), text)?;
            reg.insert(p, &format!("profiles/{file}"))?;
        }
        Ok(reg)
    }

    /// Adds or overrides GPUs from a user TOML: our own profile layout (one profile, or
    /// `[gpu.<key>]` tables) or the original PhantomGPU `[profiles.<name>]` layout.
    pub fn add_file(&mut self, path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        self.add_str(&path.display().to_string(), &text)
    }

    /// As `add_file`, from the file's text; `shown` names it in errors.
    pub fn add_str(&mut self, shown: &str, text: &str) -> Result<Vec<String>> {
        let shown = shown.to_string();
        let value: toml::Table = parse_toml(&shown, text)?;
        let mut added = vec![];
        if value.contains_key("profiles") {
            let (profiles, warnings) = legacy::convert(&shown, text, self)?;
            self.warnings.extend(warnings);
            for p in profiles {
                added.push(p.key.clone());
                self.insert(p, &shown)?;
            }
        } else if let Some(toml::Value::Table(gpus)) = value.get("gpu") {
            for (key, t) in gpus {
                let mut t = t.as_table().cloned().ok_or_else(|| Error::File {
                    path: shown.clone(),
                    msg: format!("[gpu.{key}] must be a table"),
                })?;
                t.entry("key").or_insert_with(|| toml::Value::String(key.clone()));
                let p: GpuProfile = parse_toml(&shown, &toml::to_string(&t).unwrap_or_default())
                    .map_err(|e| match e {
                        Error::Parse { msg, .. } => Error::File { path: shown.clone(), msg: format!("[gpu.{key}]: {msg}") },
                        other => other,
                    })?;
                added.push(p.key.clone());
                self.insert(p, &shown)?;
            }
        } else if value.contains_key("key") {
            let p: GpuProfile = parse_toml(&shown, text)?;
            added.push(p.key.clone());
            self.insert(p, &shown)?;
        } else {
            return Err(Error::File {
                path: shown,
                msg: "expected a GPU profile (top-level `key = ...`), `[gpu.<key>]` tables, or the original `[profiles.<name>]` layout".into(),
            });
        }
        Ok(added)
    }

    fn insert(&mut self, p: GpuProfile, origin: &str) -> Result<()> {
        let isa = self.isas.get(&p.architecture).cloned().ok_or_else(|| Error::File {
            path: origin.to_string(),
            msg: format!(
                "GPU '{}': unknown architecture '{}' (known: {})",
                p.key,
                p.architecture,
                self.isas.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        let rates = isa.chips.get(&p.chip).cloned().ok_or_else(|| Error::File {
            path: origin.to_string(),
            msg: format!(
                "GPU '{}': architecture '{}' has no chip '{}' (known: {})",
                p.key,
                p.architecture,
                p.chip,
                isa.chips.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        validate_profile(&p, origin)?;
        let key = normalize(&p.key);
        for a in p.aliases.iter().chain(p.device_names.iter()) {
            self.aliases.insert(normalize(a), key.clone());
        }
        self.gpus.insert(key, Gpu { profile: Arc::new(p), isa, rates: Arc::new(rates), duty: 1.0 });
        Ok(())
    }

    /// Resolves a key, alias or reported device name.
    pub fn gpu(&self, name: &str) -> Result<&Gpu> {
        let n = normalize(name);
        let n = n.strip_prefix("nvidia-").map(str::to_string).filter(|s| !self.gpus.contains_key(&n) && (self.gpus.contains_key(s) || self.aliases.contains_key(s))).unwrap_or(n);
        if let Some(g) = self.gpus.get(&n) {
            return Ok(g);
        }
        if let Some(k) = self.aliases.get(&n) {
            return Ok(&self.gpus[k]);
        }
        let names = self.gpus.keys().map(String::as_str).chain(self.aliases.keys().map(String::as_str));
        let mut suggestions: Vec<String> = closest(&n, names)
            .into_iter()
            .map(|s| self.aliases.get(&s).cloned().unwrap_or(s))
            .collect();
        suggestions.dedup();
        Err(Error::UnknownGpu { name: name.to_string(), suggestions })
    }

    pub fn gpus(&self) -> impl Iterator<Item = &Gpu> {
        self.gpus.values()
    }

    pub fn isa(&self, arch: &str) -> Option<&Arc<Isa>> {
        self.isas.get(arch)
    }

    /// Replaces one architecture's ISA table (for fitting), updating every GPU of it.
    pub fn replace_isa(&mut self, isa: Isa) {
        let arc = Arc::new(isa);
        for g in self.gpus.values_mut() {
            if g.profile.architecture == arc.architecture {
                g.isa = arc.clone();
            }
        }
        self.isas.insert(arc.architecture.clone(), arc);
    }

    pub fn isas(&self) -> impl Iterator<Item = &Arc<Isa>> {
        self.isas.values()
    }

    /// Aliases that point at a key.
    pub fn aliases_of(&self, key: &str) -> Vec<&str> {
        self.aliases.iter().filter(|(_, k)| k.as_str() == key).map(|(a, _)| a.as_str()).collect()
    }
}

/// Physical sanity of a profile: every number the model uses lies in a range far wider
/// than any real GPU's on both sides, but narrow enough that every time, rate and size
/// derived from it stays finite (a clock of 1e-300 MHz would make every kernel take
/// forever; a lane count of zero, an infinite bandwidth).
fn validate_profile(p: &GpuProfile, origin: &str) -> Result<()> {
    let (c, m, i) = (&p.compute, &p.memory, &p.interconnect);
    let checks: [(&str, Option<f64>, f64, f64); 21] = [
        ("compute.sm_count", Some(c.sm_count as f64), 1.0, 65536.0),
        ("compute.fp32_cores_per_sm", Some(c.fp32_cores_per_sm as f64), 0.0, 65536.0),
        ("compute.tensor_cores_per_sm", Some(c.tensor_cores_per_sm as f64), 0.0, 65536.0),
        ("compute.base_clock_mhz", c.base_clock_mhz, 1.0, 1e5),
        ("compute.boost_clock_mhz", Some(c.boost_clock_mhz), 1.0, 1e5),
        // Below 2^48 bytes: no tensor too large to count fits (see `kernel::op::MAX_ELEMENTS`).
        ("memory.memory_gb", Some(m.memory_gb), 1e-3, 1e5),
        ("memory.dram_bandwidth_gbs", Some(m.dram_bandwidth_gbs), 1e-3, 1e8),
        ("memory.dram_bandwidth_measured_gbs", m.dram_bandwidth_measured_gbs, 1e-3, 1e8),
        ("memory.l2_mib", Some(m.l2_mib), 1e-3, 1e7),
        ("memory.l2_bandwidth_measured_gbs", m.l2_bandwidth_measured_gbs, 1e-3, 1e8),
        ("memory.l1_smem_per_sm_kib", m.l1_smem_per_sm_kib, 0.0, 1e7),
        ("memory.smem_per_sm_max_kib", Some(m.smem_per_sm_max_kib), 1e-3, 1e7),
        ("memory.smem_per_block_max_kib", m.smem_per_block_max_kib, 1e-3, 1e7),
        ("memory.register_file_per_sm_kib", Some(m.register_file_per_sm_kib), 1e-3, 1e7),
        ("memory.max_threads_per_sm", Some(m.max_threads_per_sm as f64), 1.0, 1e7),
        ("memory.max_blocks_per_sm", m.max_blocks_per_sm.map(f64::from), 1.0, 1e7),
        ("power.tdp_w", Some(p.power.tdp_w), 1e-3, 1e7),
        ("power.observed_clock_under_load_mhz", p.power.observed_clock_under_load_mhz, 1.0, 1e5),
        ("interconnect.pcie_gen", i.pcie_gen.map(f64::from), 1.0, 64.0),
        ("interconnect.pcie_lanes", i.pcie_lanes.map(f64::from), 1.0, 1024.0),
        ("interconnect.nvlink_bandwidth_gbs_per_direction", i.nvlink_bandwidth_gbs_per_direction, 1e-3, 1e8),
    ];
    for (field, v, lo, hi) in checks {
        let Some(v) = v else { continue };
        if !(lo..=hi).contains(&v) {
            let what = if lo == 0.0 { format!("a number from 0 to {hi}") } else { format!("a positive number from {lo} to {hi}") };
            return Err(Error::File {
                path: origin.to_string(),
                msg: format!("GPU '{}': {field} must be {what}, got {}", p.key, show_num(v)),
            });
        }
    }
    Ok(())
}

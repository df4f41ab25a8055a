//! One GPU's physical facts, as written in `profiles/<key>.toml`.
//!
//! Every number is a datasheet or measured fact with a source (the `[sources]` table maps
//! a field path such as `"memory.dram_bandwidth_gbs"` to a citation). There are no
//! efficiency knobs here: those live per architecture in `isa/`, so a GPU nobody measured
//! is predicted from its facts alone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GpuProfile {
    /// Canonical key, e.g. `a100-sxm4-80gb`; the trace `gpu` column uses the same keys.
    pub key: String,
    /// Marketing name, e.g. `NVIDIA A100 SXM4 80GB`.
    pub name: String,
    pub vendor: String,
    /// ISA table to use: the file stem under `isa/` (`ampere`, `hopper`, `cdna2` …).
    pub architecture: String,
    /// Chip family inside the architecture (`GA100`, `GA102`, `AD102` …): selects the
    /// per-SM rate table of the ISA file.
    pub chip: String,
    #[serde(default)]
    pub compute_capability: Option<String>,
    /// Short names that resolve to this SKU (`a100`, `4090` …).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Names the device reports (`torch.cuda.get_device_name()`, Kineto `deviceProperties`).
    #[serde(default)]
    pub device_names: Vec<String>,
    /// `sxm`, `pcie`, `nvl` or `oam`.
    #[serde(default)]
    pub form_factor: Option<String>,
    /// GeForce boards run FP16/BF16/FP8 tensor MMA with FP32 accumulate at half rate.
    #[serde(default)]
    pub tensor_fp32_accumulate_half_rate: bool,
    pub compute: Compute,
    pub memory: Memory,
    pub power: Power,
    #[serde(default)]
    pub interconnect: Interconnect,
    /// Vendor peak rates (dense), used to cross-check the ISA tables, never to predict.
    #[serde(default)]
    pub peaks: Peaks,
    /// Field path → citation.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    /// Free notes: conflicts between sources, derived values, estimates.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compute {
    pub sm_count: u32,
    pub fp32_cores_per_sm: u32,
    #[serde(default)]
    pub tensor_cores_per_sm: u32,
    #[serde(default)]
    pub base_clock_mhz: Option<f64>,
    pub boost_clock_mhz: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    pub memory_gb: f64,
    #[serde(default)]
    pub memory_type: Option<String>,
    #[serde(default)]
    pub bus_width_bits: Option<u32>,
    /// Vendor spec.
    pub dram_bandwidth_gbs: f64,
    /// Best sustained STREAM-like figure, where one was measured.
    #[serde(default)]
    pub dram_bandwidth_measured_gbs: Option<f64>,
    pub l2_mib: f64,
    #[serde(default)]
    pub l2_bandwidth_measured_gbs: Option<f64>,
    #[serde(default)]
    pub l1_smem_per_sm_kib: Option<f64>,
    pub smem_per_sm_max_kib: f64,
    #[serde(default)]
    pub smem_per_block_max_kib: Option<f64>,
    pub register_file_per_sm_kib: f64,
    pub max_threads_per_sm: u32,
    #[serde(default)]
    pub max_blocks_per_sm: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// Board power limit (TDP/TGP) in watts.
    pub tdp_w: f64,
    /// A clock measured under sustained load, where one exists (for checking the model).
    #[serde(default)]
    pub observed_clock_under_load_mhz: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Interconnect {
    #[serde(default)]
    pub pcie_gen: Option<u32>,
    #[serde(default)]
    pub pcie_lanes: Option<u32>,
    #[serde(default)]
    pub nvlink_gen: Option<u32>,
    /// NVLink bandwidth per direction, all links together, GB/s.
    #[serde(default)]
    pub nvlink_bandwidth_gbs_per_direction: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Peaks {
    #[serde(default)]
    pub fp32_tflops: Option<f64>,
    #[serde(default)]
    pub fp16_nontensor_tflops: Option<f64>,
    #[serde(default)]
    pub tf32_tensor_tflops: Option<f64>,
    #[serde(default)]
    pub fp16_tensor_tflops: Option<f64>,
    #[serde(default)]
    pub bf16_tensor_tflops: Option<f64>,
    #[serde(default)]
    pub fp8_tensor_tflops: Option<f64>,
    #[serde(default)]
    pub int8_tensor_tops: Option<f64>,
    /// INT8 on CUDA cores (dp4a), for GPUs without tensor cores (P4).
    #[serde(default)]
    pub int8_nontensor_tops: Option<f64>,
}

#!/usr/bin/env python3
"""Generate profiles/<key>.toml from the shared hardware facts.

Run by hand from the repository root (Python 3.11+, stdlib only):

    python3 tools/gen_profiles.py

Inputs (relative to the repository root):
    ../shared/hardware/gpus.toml        one [gpu.<key>] table per GPU, [source.<TAG>] citations
    ../shared/hardware/microbench.toml  measured DRAM/L2 bandwidth and clocks under load
    ../shared/traces/neusight/gpus.csv  NeuSight's device configs (only compared, never copied)

Output: one profiles/<key>.toml per GPU, in the layout of src/hw/profile.rs (`GpuProfile`).
Every value written gets a `[sources]` entry keyed by its field path. The `conflicts`,
`derived` and `estimates` strings of gpus.toml are copied into `notes` with the prefixes
"conflict:", "derived:" and "estimate:"; choices made here are noted the same way.

Rules (see also tools/check_profiles.py):
  * Values come from gpus.toml. The only hand-written facts are in HAND below (ISA stem,
    chip family, aliases, device names, form factor, GeForce accumulate rate) plus a few
    documented fallbacks (CUDA_GUIDE, AMD_CU_FALLBACK, the `mi250` GCD profile).
  * memory.dram_bandwidth_measured_gbs: gpus.toml's best STREAM-like value; mt4g readings
    (the only measurement for a100-pcie-40gb and h100-nvl) are lower bounds and are NOT used
    (the simulator uses this field instead of spec x efficiency). Where gpus.toml has no
    value, the best microbench [[dram_stream]] kernel with gpu_match exact/variant-unstated.
  * memory.l2_bandwidth_measured_gbs: gpus.toml, else the best microbench [[l2_bandwidth]]
    with gpu_match exact/variant-unstated and confidence high/medium.
  * power.observed_clock_under_load_mhz: gpus.toml, else the lowest clock of a microbench
    [[clock_under_load]] entry with gpu_match exact/variant-unstated.
"""
from __future__ import annotations

import csv
import math
import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
HW = ROOT.parent / "shared" / "hardware"
NEUSIGHT_GPUS = ROOT.parent / "shared" / "traces" / "neusight" / "gpus.csv"
OUT = ROOT / "profiles"

# --------------------------------------------------------------------------------------
# Hand-written additions. Aliases are compared case-insensitively with '_' and ' ' read as
# '-', so variants that differ only in that way are not listed.
# `dn` = device names as torch.cuda.get_device_name() / Kineto deviceProperties report them;
# `dn_src` says where each was seen (or that it follows the driver's naming convention).
# --------------------------------------------------------------------------------------
CONVENTION = "NVIDIA driver naming convention (hand-written, not seen in shared/)"
NEUSIGHT = "shared/traces/neusight/gpus.csv source_device_name (torch.cuda.get_device_name)"
HAND: dict[str, dict] = {
    "p100-sxm2-16gb": dict(arch="pascal", chip="GP100", form="sxm", form_src="SXM2 module (gpus.toml name 'Tesla P100 SXM2 16GB', NVLink 1)",
                           aliases=[], dn=["Tesla P100-SXM2-16GB"], dn_src=CONVENTION + "; cf. 'Tesla P100-PCIE-16GB' in " + NEUSIGHT),
    "v100-sxm2-16gb": dict(arch="volta", chip="GV100", form="sxm", form_src="SXM2 module (gpus.toml name 'Tesla V100 SXM2 16GB')",
                           aliases=[], dn=["Tesla V100-SXM2-16GB"], dn_src="shared/traces/kineto/README.md (deviceProperties of transformer-train-v100.json.gz)"),
    "v100-sxm2-32gb": dict(arch="volta", chip="GV100", form="sxm", form_src="SXM2 module (gpus.toml name 'Tesla V100 SXM2 32GB')",
                           aliases=["v100", "tesla-v100"], dn=["Tesla V100-SXM2-32GB"], dn_src=CONVENTION + "; cf. 'Tesla V100-SXM2-16GB' in shared/traces/kineto/README.md"),
    "v100-pcie-16gb": dict(arch="volta", chip="GV100", form="pcie", form_src="PCIe card (gpus.toml name 'Tesla V100 PCIe 16GB', pcie_lanes 16)",
                           aliases=[], dn=["Tesla V100-PCIE-16GB"], dn_src="microbench.toml [[latency]] MT4G device_as_reported 'Tesla V100-PCIE-16GB'"),
    "t4": dict(arch="turing", chip="TU104", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 3 x16, 70 W low-profile board)",
               aliases=[], dn=["Tesla T4"], dn_src=NEUSIGHT),
    "a10": dict(arch="ampere", chip="GA102", form="pcie", form_src="PCIe card (gpus.toml name 'NVIDIA A10 (PCIe)')",
                aliases=[], dn=["NVIDIA A10"], dn_src=CONVENTION),
    "a100-sxm4-40gb": dict(arch="ampere", chip="GA100", form="sxm", form_src="SXM4 module (gpus.toml name 'A100 SXM4 40GB')",
                           aliases=["a100-40gb"], dn=["NVIDIA A100-SXM4-40GB", "NVIDIA A100-PG509-200"],
                           dn_src="'NVIDIA A100-SXM4-40GB': " + NEUSIGHT + "; 'NVIDIA A100-PG509-200' (HGX A100 board name): shared/traces/kineto/README.md (alexnet-a100.json.gz, 40 GB)"),
    "a100-sxm4-80gb": dict(arch="ampere", chip="GA100", form="sxm", form_src="SXM4 module (gpus.toml name 'A100 SXM4 80GB'; AZURE-AIBENCH ND A100 v4 'A100-SXM4-80GB')",
                           aliases=["a100", "a100-80gb-sxm"], dn=["NVIDIA A100-SXM4-80GB"],
                           dn_src=CONVENTION + "; AZURE-AIBENCH ND A100 v4 results name the device 'A100-SXM4-80GB'; alias 'a100-80gb-sxm' is shared/traces/vidur/gpus.csv gpu_alt_name"),
    "a100-pcie-80gb": dict(arch="ampere", chip="GA100", form="pcie", form_src="PCIe card (gpus.toml name 'A100 PCIe 80GB')",
                           aliases=["a100-pcie", "a100-80gb-pcie"], dn=["NVIDIA A100 80GB PCIe"],
                           dn_src=NEUSIGHT + "; alias 'a100-80gb-pcie' is shared/traces/vidur/gpus.csv gpu_alt_name"),
    "rtx-a6000": dict(arch="ampere", chip="GA102", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16; STH-A6000 'PCIe 4.0 x16')",
                      aliases=["a6000"], dn=["NVIDIA RTX A6000"], dn_src=CONVENTION),
    "rtx3090": dict(arch="ampere", chip="GA102", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16)", geforce=True,
                    aliases=["3090", "rtx-3090"], dn=["NVIDIA GeForce RTX 3090"], dn_src=CONVENTION),
    "rtx4090": dict(arch="ada", chip="AD102", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16; ITEMWIKI 'PCI Express 4.0 card')", geforce=True,
                    aliases=["4090", "rtx-4090"], dn=["NVIDIA GeForce RTX 4090"], dn_src=CONVENTION),
    "l4": dict(arch="ada", chip="AD104", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16, 72 W)",
               aliases=[], dn=["NVIDIA L4"], dn_src=NEUSIGHT),
    "l40s": dict(arch="ada", chip="AD102", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16; L40S-DS 'PCIe Gen4 x16')",
                 aliases=[], dn=["NVIDIA L40S"], dn_src=CONVENTION),
    "h100-sxm5-80gb": dict(arch="hopper", chip="GH100", form="sxm", form_src="SXM5 module (gpus.toml name 'H100 SXM5 80GB')",
                           aliases=["h100", "h100-sxm", "h100-sxm-80gb", "h100-80gb-sxm"], dn=["NVIDIA H100 80GB HBM3"],
                           dn_src=NEUSIGHT + " (NeuSight gpu 'h100-sxm'; also AZURE-AIBENCH ND H100 v5 and the MT4G report name); aliases 'h100-sxm' (NeuSight README), 'h100-sxm-80gb' and 'h100-80gb-sxm' (shared/traces/vidur/gpus.csv gpu / gpu_alt_name)"),
    "h100-pcie-80gb": dict(arch="hopper", chip="GH100", form="pcie", form_src="PCIe card (gpus.toml name 'H100 PCIe 80GB', pcie_gen 5 x16)",
                           aliases=["h100-pcie"], dn=["NVIDIA H100 PCIe"], dn_src="shared/traces/neusight/README.md ('an H100 PCIe reports \"NVIDIA H100 PCIe\"')"),
    "h200-sxm-141gb": dict(arch="hopper", chip="GH100", form="sxm", form_src="SXM module (gpus.toml name 'H200 SXM 141GB')",
                           aliases=["h200"], dn=["NVIDIA H200"], dn_src=CONVENTION),
    "b200": dict(arch="blackwell", chip="GB100", form="sxm", form_src="SXM module on HGX B200 boards (gpus.toml name 'B200 (HGX, 1000 W)')",
                 aliases=[], dn=["NVIDIA B200"], dn_src=CONVENTION),
    "rtx5090": dict(arch="blackwell", chip="GB202", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 5 x16; TPU-5090-REVIEW 'PCIe 5.0 x16')", geforce=True,
                    aliases=["5090", "rtx-5090"], dn=["NVIDIA GeForce RTX 5090"], dn_src=CONVENTION),
    "rtx-pro-6000-blackwell": dict(arch="blackwell", chip="GB202", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 5 x16; GPUNAME-PRO6000 'PCIe Gen5')",
                                   aliases=["rtx-pro-6000", "pro6000"], dn=["NVIDIA RTX PRO 6000 Blackwell Workstation Edition"], dn_src=CONVENTION),
    "mi250x": dict(arch="cdna2", chip="MI200", form="oam", form_src="OAM module (AMD Instinct MI250X ships only as OAM; hand-written, not stated in gpus.toml)",
                   aliases=[], dn=[], dn_src=""),
    "mi300x": dict(arch="cdna3", chip="MI300", form="oam", form_src="OAM module (AMD Instinct MI300X platform board; hand-written, not stated in gpus.toml)",
                   aliases=[], dn=["AMD Instinct MI300X", "AMD Instinct MI300X VF"],
                   dn_src="'AMD Instinct MI300X': ROCm marketing name (hand-written); 'AMD Instinct MI300X VF': microbench.toml MT4G device_as_reported (Azure virtual function)"),
    "v100-pcie-32gb": dict(arch="volta", chip="GV100", form="pcie", form_src="PCIe card (gpus.toml name 'Tesla V100 PCIe 32GB')",
                           aliases=[], dn=["Tesla V100-PCIE-32GB"], dn_src=NEUSIGHT + "; DEAC-DQ deviceQuery"),
    "p100-pcie-16gb": dict(arch="pascal", chip="GP100", form="pcie", form_src="PCIe card (gpus.toml name 'Tesla P100 PCIe 16GB')",
                           aliases=["p100"], dn=["Tesla P100-PCIE-16GB"], dn_src=NEUSIGHT + "; DQ-P100PCIE deviceQuery"),
    "p4": dict(arch="pascal", chip="GP104", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 3 x16, 75 W low-profile board)",
               aliases=[], dn=["Tesla P4"], dn_src=NEUSIGHT + "; DQ-P4 deviceQuery"),
    "a100-pcie-40gb": dict(arch="ampere", chip="GA100", form="pcie", form_src="PCIe card (gpus.toml name 'A100 PCIe 40GB')",
                           aliases=[], dn=["NVIDIA A100-PCIE-40GB"], dn_src=NEUSIGHT + "; DEAC-DQ deviceQuery; MT4G report"),
    "a40": dict(arch="ampere", chip="GA102", form="pcie", form_src="PCIe card (A40-NV-SPEC 'PCIe 4.0 x16'; shared/traces/vidur/gpus.csv 'A40 ships only as a 48 GB PCIe card')",
                aliases=["a40-pcie-48gb", "a40-48gb-pcie"], dn=["NVIDIA A40"],
                dn_src=CONVENTION + "; aliases 'a40-pcie-48gb' / 'a40-48gb-pcie' are shared/traces/vidur/gpus.csv gpu / gpu_alt_name"),
    "h100-nvl": dict(arch="hopper", chip="GH100", form="nvl", form_src="H100 NVL PCIe card used in NVLink-bridged pairs (gpus.toml name 'H100 NVL 94GB (per GPU)')",
                     aliases=[], dn=["NVIDIA H100 NVL"], dn_src="MT4G report name 'NVIDIA H100 NVL' (gpus.toml h100-nvl sources; microbench.toml device_as_reported)"),
    "mi100": dict(arch="cdna1", chip="MI100", form="pcie", form_src="PCIe card (gpus.toml pcie_gen 4 x16; ROCM-MI100 'PCIe Gen4 x16')",
                  aliases=[], dn=["AMD Instinct MI100"], dn_src=NEUSIGHT),
    "mi210": dict(arch="cdna2", chip="MI200", form="pcie", form_src="PCIe card (ANANDTECH-MI210 'CDNA 2 On a PCIe Card')",
                  aliases=[], dn=["AMD Instinct MI210"], dn_src=NEUSIGHT),
    "mi250": dict(arch="cdna2", chip="MI200", form="oam", form_src="OAM module (MI250 is an OAM part like MI250X; hand-written)",
                  aliases=[], dn=["AMD Instinct MI250X / MI250", "AMD Instinct MI250"],
                  dn_src="'AMD Instinct MI250X / MI250': shared/traces/neusight/README.md (ROCm name of an MI250/MI250X GCD, which NeuSight's collector renames to MI250); 'AMD Instinct MI250': hand-written"),
}

# Per-GPU facts that are not fields of gpus.toml but have a source elsewhere in shared/.
# h100-sxm5-80gb: the microbench entry gives the clock only in its notes text.
CLOCK_FROM_NOTES = {
    "h100-sxm5-80gb": (1780.0, "microbench.toml [[clock_under_load]] gpu=h100-sxm5-80gb gpu_match=exact source=SMALLSCI-FMHA notes: "
                       "'Clock set to 1980 MHz -> Nsight Compute reports 1780 MHz during an FMHA kernel'"),
}

# CUDA C Programming Guide, "Technical Specifications per Compute Capability" table:
# max shared memory per SM (KiB), 32-bit registers per SM x 4 B (KiB), max resident threads per SM.
CUDA_GUIDE = {
    "6.0": dict(smem_per_sm_max_kib=64.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "6.1": dict(smem_per_sm_max_kib=96.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "7.0": dict(smem_per_sm_max_kib=96.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "7.5": dict(smem_per_sm_max_kib=64.0, register_file_per_sm_kib=256.0, max_threads_per_sm=1024),
    "8.0": dict(smem_per_sm_max_kib=164.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "8.6": dict(smem_per_sm_max_kib=100.0, register_file_per_sm_kib=256.0, max_threads_per_sm=1536),
    "8.9": dict(smem_per_sm_max_kib=100.0, register_file_per_sm_kib=256.0, max_threads_per_sm=1536),
    "9.0": dict(smem_per_sm_max_kib=228.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "10.0": dict(smem_per_sm_max_kib=228.0, register_file_per_sm_kib=256.0, max_threads_per_sm=2048),
    "12.0": dict(smem_per_sm_max_kib=100.0, register_file_per_sm_kib=256.0, max_threads_per_sm=1536),
}

# AMD CDNA per-CU facts that gpus.toml lacks for some parts: (value, source, note).
AMD_TENSOR_PER_CU = {
    "mi100": (4, "derived: ANANDTECH-MI210 AMD table MI100 column '480 matrix cores' / 120 CU", None),
    "mi210": (4, "derived: ANANDTECH-MI210 AMD table MI210 column '416 matrix cores' / 104 CU", None),
    "mi250x": (4, "derived: same CDNA2 CU as MI210 (ANANDTECH-MI210: 416 matrix cores / 104 CU)", "estimate: compute.tensor_cores_per_sm = 4 matrix cores per CU taken from the MI210 (same CDNA2 CU); not read for MI250X."),
    "mi250": (4, "derived: same CDNA2 CU as MI210 (ANANDTECH-MI210: 416 matrix cores / 104 CU)", "estimate: compute.tensor_cores_per_sm = 4 matrix cores per CU taken from the MI210 (same CDNA2 CU); not read for MI250."),
    "mi300x": (4, "estimate: 4 matrix cores per CU as on CDNA1/CDNA2 (ANANDTECH-MI210 480/120, 416/104); CDNA3 count not in shared/hardware",
               "estimate: compute.tensor_cores_per_sm = 4 matrix cores per CU assumed as on CDNA1/CDNA2; no MI300X matrix-core count in shared/hardware."),
}
AMD_MAX_THREADS = {
    # gfx908: 10 waves/SIMD x 4 SIMD x 64 = 2560 (MT4G MI100 report); gfx90a/gfx942: 8 x 4 x 64 = 2048.
    "mi100": (2560, "MT4G: caps-tum/mt4g AMD Instinct MI100 report 'max 2560 threads per CU' (gpus.toml gpu.mi100 sources)", None),
    "mi210": (2048, "estimate: CDNA2 8 wavefronts/SIMD x 4 SIMD x 64 lanes (rocminfo 'Max Waves Per CU: 32' on gfx90a); not in shared/hardware", "estimate: memory.max_threads_per_sm = 2048 (CDNA2: 32 waves x 64 lanes per CU); not read from a shared/hardware source."),
    "mi250x": (2048, "estimate: CDNA2 8 wavefronts/SIMD x 4 SIMD x 64 lanes (rocminfo 'Max Waves Per CU: 32' on gfx90a); not in shared/hardware", "estimate: memory.max_threads_per_sm = 2048 (CDNA2: 32 waves x 64 lanes per CU); not read from a shared/hardware source."),
    "mi250": (2048, "estimate: CDNA2 8 wavefronts/SIMD x 4 SIMD x 64 lanes (rocminfo 'Max Waves Per CU: 32' on gfx90a); not in shared/hardware", "estimate: memory.max_threads_per_sm = 2048 (CDNA2: 32 waves x 64 lanes per CU); not read from a shared/hardware source."),
    "mi300x": (2048, "estimate: CDNA3 8 wavefronts/SIMD x 4 SIMD x 64 lanes (rocminfo 'Max Waves Per CU: 32' on gfx942); not in shared/hardware", "estimate: memory.max_threads_per_sm = 2048 (CDNA3: 32 waves x 64 lanes per CU); not read from a shared/hardware source."),
}

# Keys the trace files use; each must be a profile key.
TRACE_KEYS = ["a100-pcie-40gb", "a100-pcie-80gb", "a100-sxm4-80gb", "a40", "p4", "p100-pcie-16gb", "t4",
              "v100-pcie-32gb", "mi100", "mi210", "mi250"]

# NeuSight gpus.csv `gpu` values that are not profile keys.
NEUSIGHT_KEY = {"h100-sxm": "h100-sxm5-80gb"}

# --------------------------------------------------------------------------------------
# Schema of src/hw/profile.rs: section -> [(field, type)], in struct order.
# "u32" fields are written as TOML integers, "f64" as floats.
# --------------------------------------------------------------------------------------
TOP = [("key", "str"), ("name", "str"), ("vendor", "str"), ("architecture", "str"), ("chip", "str"),
       ("compute_capability", "str"), ("aliases", "list"), ("device_names", "list"), ("form_factor", "str"),
       ("tensor_fp32_accumulate_half_rate", "bool")]
SECTIONS = {
    "compute": [("sm_count", "u32"), ("fp32_cores_per_sm", "u32"), ("tensor_cores_per_sm", "u32"),
                ("base_clock_mhz", "f64"), ("boost_clock_mhz", "f64")],
    "memory": [("memory_gb", "f64"), ("memory_type", "str"), ("bus_width_bits", "u32"), ("dram_bandwidth_gbs", "f64"),
               ("dram_bandwidth_measured_gbs", "f64"), ("l2_mib", "f64"), ("l2_bandwidth_measured_gbs", "f64"),
               ("l1_smem_per_sm_kib", "f64"), ("smem_per_sm_max_kib", "f64"), ("smem_per_block_max_kib", "f64"),
               ("register_file_per_sm_kib", "f64"), ("max_threads_per_sm", "u32"), ("max_blocks_per_sm", "u32")],
    "power": [("tdp_w", "f64"), ("observed_clock_under_load_mhz", "f64")],
    "interconnect": [("pcie_gen", "u32"), ("pcie_lanes", "u32"), ("nvlink_gen", "u32"),
                     ("nvlink_bandwidth_gbs_per_direction", "f64")],
    "peaks": [("fp32_tflops", "f64"), ("fp16_nontensor_tflops", "f64"), ("tf32_tensor_tflops", "f64"),
              ("fp16_tensor_tflops", "f64"), ("bf16_tensor_tflops", "f64"), ("fp8_tensor_tflops", "f64"),
              ("int8_tensor_tops", "f64"), ("int8_nontensor_tops", "f64")],
}
TYPES = {f: t for f, t in TOP} | {f"{s}.{f}": t for s, fs in SECTIONS.items() for f, t in fs}

# gpus.toml field -> profile path, for fields copied one to one.
PEAKS_MAP = {
    "fp32_tflops": "peaks.fp32_tflops",
    "fp16_nontensor_tflops": "peaks.fp16_nontensor_tflops",
    "tf32_tensor_dense_tflops": "peaks.tf32_tensor_tflops",
    "fp16_tensor_dense_tflops": "peaks.fp16_tensor_tflops",
    "bf16_tensor_dense_tflops": "peaks.bf16_tensor_tflops",
    "fp8_tensor_dense_tflops": "peaks.fp8_tensor_tflops",
    "int8_tensor_dense_tops": "peaks.int8_tensor_tops",
    "int8_nontensor_tops": "peaks.int8_nontensor_tops",
}
# gpus.toml fields consumed (directly or through a rule); the rest are listed in a note.
CONSUMED = {
    "name", "vendor", "architecture", "chip", "compute_capability_major", "compute_capability_minor",
    "sm_count", "compute_units", "fp32_cores_per_sm", "stream_processors_per_cu", "tensor_cores_per_sm",
    "base_clock_mhz", "boost_clock_mhz", "peak_engine_clock_mhz", "memory_type", "memory_size_gb",
    "memory_bus_width_bits", "dram_bandwidth_gbs", "dram_bandwidth_measured_gbs", "l2_mib",
    "l2_bandwidth_measured_gbs", "l1_smem_per_sm_kib", "smem_per_sm_max_kib", "lds_per_cu_kib",
    "smem_per_block_max_kib", "register_file_per_sm_kib", "vgpr_file_per_cu_kib", "max_threads_per_sm",
    "max_blocks_per_sm", "tdp_w", "observed_clock_under_load_mhz", "pcie_gen", "pcie_lanes", "nvlink_gen",
    "nvlink_bandwidth_gbs_per_direction", "nvlink_bandwidth_gbs_bidir", "nvlink_bridge_bandwidth_gbs_bidir",
    "sources", "src", "derived", "estimates", "conflicts", "dram_bandwidth_measured_note",
    "dram_bandwidth_measured_note_2", "fp16_tensor_fp16acc_dense_tflops",
} | set(PEAKS_MAP)


class Profile:
    def __init__(self, key: str):
        self.key = key
        self.values: dict[str, object] = {}
        self.sources: dict[str, str] = {}
        self.notes: list[str] = []

    def set(self, path: str, value, source: str) -> None:
        t = TYPES[path]
        if t == "u32":
            if isinstance(value, float):
                assert value.is_integer(), (self.key, path, value)
            value = int(value)
        elif t == "f64":
            value = float(value)
        self.values[path] = value
        self.sources[path] = source

    def has(self, path: str) -> bool:
        return path in self.values

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


class Facts:
    def __init__(self):
        self.gpus_doc = tomllib.loads((HW / "gpus.toml").read_text())
        self.mb = tomllib.loads((HW / "microbench.toml").read_text())
        self.gpus = self.gpus_doc["gpu"]
        self.cites = {t: v["cite"] for t, v in self.gpus_doc.get("source", {}).items()}
        self.cites |= {t: v["cite"] for t, v in self.mb.get("source", {}).items()}

    def tag_cite(self, text: str) -> str:
        """'GPUBENCH (file ...)' -> 'GPUBENCH (file ...) [te42kyfo/gpu-benches ...]'."""
        tag = text.split()[0].rstrip(":,;")
        c = self.cites.get(tag)
        return f"{text} [{tag}: {c}]" if c else text

    def cite(self, key: str, field: str) -> str:
        g = self.gpus[key]
        src = g.get("src", {}).get(field)
        if src:
            return f"{self.tag_cite(src)} (gpus.toml gpu.{key}.src.{field})"
        tags = []
        for s in g.get("sources", []):
            t = s.split()[0]
            if t not in tags:
                tags.append(t)
        return f"gpus.toml gpu.{key}.{field} (no per-field src; GPU-level sources: {', '.join(tags)})"


def fmt_num(v: float) -> str:
    s = repr(float(v))
    return s


# --------------------------------------------------------------------------------------
# Building one profile from a gpus.toml table
# --------------------------------------------------------------------------------------
def build(facts: Facts, key: str) -> Profile:
    g = facts.gpus[key]
    h = HAND[key]
    p = Profile(key)
    amd = g["vendor"] == "AMD"
    c = lambda f: facts.cite(key, f)  # noqa: E731
    copy_notes(p, g)  # gpus.toml's conflicts / derived / estimates first, the generator's own notes after

    # ---- identity
    p.set("key", key, f"gpus.toml [gpu.{key}] table key")
    name = g["name"]
    if g["vendor"] == "NVIDIA" and not name.startswith("NVIDIA"):
        name = "NVIDIA " + name
        p.set("name", name, f"gpus.toml gpu.{key}.name = '{g['name']}', vendor prefix added")
    else:
        p.set("name", name, f"gpus.toml gpu.{key}.name")
    p.set("vendor", g["vendor"], f"gpus.toml gpu.{key}.vendor")
    p.set("architecture", h["arch"], f"tools/gen_profiles.py HAND: ISA file stem for gpus.toml architecture '{g['architecture']}'")
    p.set("chip", h["chip"], f"tools/gen_profiles.py HAND: chip family for gpus.toml chip '{g['chip']}'")
    if amd:
        gfx = [w.strip(" ,()") for w in g["chip"].split() if w.strip(" ,()").startswith("gfx")]
        assert gfx, key
        p.set("compute_capability", gfx[0], f"gpus.toml gpu.{key}.chip = '{g['chip']}' (gfx target; ROCM-SPECS: {facts.cites['ROCM-SPECS']})")
    else:
        cc = f"{g['compute_capability_major']}.{g['compute_capability_minor']}"
        p.set("compute_capability", cc, c("compute_capability_major").replace(".compute_capability_major", ".compute_capability_major/minor"))
    set_hand_identity(p, h)

    # ---- compute
    if amd:
        p.set("compute.sm_count", g["compute_units"], c("compute_units") + " (AMD compute units)")
        p.set("compute.fp32_cores_per_sm", g.get("stream_processors_per_cu", 64),
              c("stream_processors_per_cu") if "stream_processors_per_cu" in g else
              f"derived: 64 stream processors per CU as every CDNA CU in gpus.toml (mi100/mi210/mi250x stream_processors_per_cu = 64); consistent with gpus.toml gpu.{key}.fp32_tflops {g['fp32_tflops']} = {g['compute_units']} CU x 64 lanes x 2 FLOP x 2 (packed FP32) x {g['peak_engine_clock_mhz'] / 1000} GHz")
        if "stream_processors_per_cu" not in g:
            p.note("derived: compute.fp32_cores_per_sm = 64 stream processors per CU (CDNA CU layout, as mi100/mi210/mi250x); gpus.toml has no stream_processors_per_cu for this part.")
        tv, ts, tn = AMD_TENSOR_PER_CU[key]
        p.set("compute.tensor_cores_per_sm", tv, ts)
        if tn:
            p.note(tn)
        p.set("compute.boost_clock_mhz", g["peak_engine_clock_mhz"], c("peak_engine_clock_mhz") + " (AMD peak engine clock)")
    else:
        p.set("compute.sm_count", g["sm_count"], c("sm_count"))
        p.set("compute.fp32_cores_per_sm", g["fp32_cores_per_sm"], c("fp32_cores_per_sm"))
        p.set("compute.tensor_cores_per_sm", g["tensor_cores_per_sm"], c("tensor_cores_per_sm"))
        if "base_clock_mhz" in g:
            p.set("compute.base_clock_mhz", g["base_clock_mhz"], c("base_clock_mhz"))
        p.set("compute.boost_clock_mhz", g["boost_clock_mhz"], c("boost_clock_mhz"))

    # ---- memory
    p.set("memory.memory_gb", g["memory_size_gb"], c("memory_size_gb"))
    if "memory_type" in g:
        p.set("memory.memory_type", g["memory_type"], c("memory_type"))
    if "memory_bus_width_bits" in g:
        p.set("memory.bus_width_bits", g["memory_bus_width_bits"], c("memory_bus_width_bits"))
    p.set("memory.dram_bandwidth_gbs", g["dram_bandwidth_gbs"], c("dram_bandwidth_gbs"))
    set_dram_measured(facts, p, key, g)
    p.set("memory.l2_mib", g["l2_mib"], c("l2_mib"))
    set_l2_measured(facts, p, key, g)
    if "l1_smem_per_sm_kib" in g:
        p.set("memory.l1_smem_per_sm_kib", g["l1_smem_per_sm_kib"], c("l1_smem_per_sm_kib"))
    if amd:
        p.set("memory.smem_per_sm_max_kib", g["lds_per_cu_kib"], c("lds_per_cu_kib") + " (AMD LDS per CU)")
        p.set("memory.register_file_per_sm_kib", g["vgpr_file_per_cu_kib"], c("vgpr_file_per_cu_kib") + " (AMD VGPR file per CU)")
        mv, ms, mn = AMD_MAX_THREADS[key]
        p.set("memory.max_threads_per_sm", mv, ms)
        if mn:
            p.note(mn)
        if "l1_vector_per_cu_kib" in g:
            p.note(f"note: memory.l1_smem_per_sm_kib not set: CDNA has a separate {g['l1_vector_per_cu_kib']} KiB vector L1 per CU beside the {g['lds_per_cu_kib']} KiB LDS (gpus.toml l1_vector_per_cu_kib, lds_per_cu_kib).")
    else:
        cc = p.values["compute_capability"]
        for f in ("smem_per_sm_max_kib", "register_file_per_sm_kib", "max_threads_per_sm"):
            guide = CUDA_GUIDE[cc][f]
            if f in g:
                p.set(f"memory.{f}", g[f], c(f))
                if float(g[f]) != float(guide):
                    p.note(f"conflict: memory.{f} = {g[f]} (gpus.toml) differs from the CUDA C Programming Guide compute capability {cc} table ({guide}); gpus.toml value kept.")
            else:
                p.set(f"memory.{f}", guide, f"CUDA C Programming Guide, compute capability {cc} table (gpus.toml gpu.{key} has no {f})")
                p.note(f"estimate: memory.{f} = {guide} is the CUDA C Programming Guide value for compute capability {cc}; gpus.toml has no {f} for this GPU.")
        if "smem_per_block_max_kib" in g:
            p.set("memory.smem_per_block_max_kib", g["smem_per_block_max_kib"], c("smem_per_block_max_kib"))
    if "max_blocks_per_sm" in g:
        p.set("memory.max_blocks_per_sm", g["max_blocks_per_sm"], c("max_blocks_per_sm"))

    # ---- power
    p.set("power.tdp_w", g["tdp_w"], c("tdp_w"))
    set_clock_under_load(facts, p, key, g)

    # ---- interconnect
    if "pcie_gen" in g:
        p.set("interconnect.pcie_gen", g["pcie_gen"], c("pcie_gen"))
    if "pcie_lanes" in g:
        p.set("interconnect.pcie_lanes", g["pcie_lanes"], c("pcie_lanes"))
    set_nvlink(facts, p, key, g)

    # ---- peaks
    for src_f, path in PEAKS_MAP.items():
        if src_f in g:
            extra = ""
            if amd and "tensor" in src_f:
                extra = " (AMD MFMA matrix-core peak)"
            elif src_f in ("fp16_tensor_dense_tflops", "bf16_tensor_dense_tflops", "fp8_tensor_dense_tflops"):
                extra = " (dense, FP32 accumulate)"
            p.set(path, g[src_f], c(src_f) + extra)

    return p


def set_hand_identity(p: Profile, h: dict) -> None:
    if h["aliases"]:
        p.set("aliases", list(h["aliases"]), "tools/gen_profiles.py HAND: project naming decision (short names; vidur/NeuSight ids where noted in device_names source)")
    if h["dn"]:
        p.set("device_names", list(h["dn"]), h["dn_src"])
    p.set("form_factor", h["form"], "tools/gen_profiles.py HAND: " + h["form_src"])
    vendor = p.values["vendor"]
    if vendor == "NVIDIA":
        if h.get("geforce"):
            p.set("tensor_fp32_accumulate_half_rate", True,
                  "shared/hardware/README.md 'Throughput conventions': GeForce parts run FP16/BF16/FP8 MMA with FP32 accumulate at half the FP16-accumulate rate (gpus.toml fp16_tensor_fp16acc_dense_tflops = 2 x fp16_tensor_dense_tflops)")
        else:
            p.set("tensor_fp32_accumulate_half_rate", False,
                  "shared/hardware/README.md 'Throughput conventions': data-center and professional parts run FP32 accumulate at full rate (Pascal parts here have no tensor cores)")


def set_dram_measured(facts: Facts, p: Profile, key: str, g: dict) -> None:
    if "dram_bandwidth_measured_gbs" in g:
        src = g.get("src", {}).get("dram_bandwidth_measured_gbs", "")
        if src.startswith("MT4G"):
            p.note(f"note: memory.dram_bandwidth_measured_gbs not set: gpus.toml's {g['dram_bandwidth_measured_gbs']} GB/s is an mt4g reading, "
                   "which shared/hardware/README.md says to treat as a lower bound (not a STREAM-like best); the simulator would use it in place of the spec.")
            p.note("measured (lower bound, not used): " + g.get("dram_bandwidth_measured_note", ""))
            return
        p.set("memory.dram_bandwidth_measured_gbs", g["dram_bandwidth_measured_gbs"], facts.cite(key, "dram_bandwidth_measured_gbs"))
        for nk in ("dram_bandwidth_measured_note", "dram_bandwidth_measured_note_2"):
            if nk in g:
                p.note("measured: " + g[nk])
        return
    best = None
    for e in facts.mb.get("dram_stream", []):
        if e["gpu"] != key or e["gpu_match"] not in ("exact", "variant-unstated") or e.get("confidence") == "low":
            continue
        for k, v in e.items():
            if k.endswith("_gbs") and k != "spec_gbs" and isinstance(v, (int, float)):
                if best is None or v > best[0]:
                    best = (v, e, k)
    if best:
        v, e, k = best
        p.set("memory.dram_bandwidth_measured_gbs", v,
              f"microbench.toml [[dram_stream]] gpu={key} gpu_match={e['gpu_match']} source={e['source']} {e.get('file', '')} best kernel {k} = {v}: {facts.tag_cite(e['source'])}")


def set_l2_measured(facts: Facts, p: Profile, key: str, g: dict) -> None:
    if "l2_bandwidth_measured_gbs" in g:
        p.set("memory.l2_bandwidth_measured_gbs", g["l2_bandwidth_measured_gbs"], facts.cite(key, "l2_bandwidth_measured_gbs"))
        return
    best, skipped = None, []
    for e in facts.mb.get("l2_bandwidth", []):
        if e["gpu"] != key or e["gpu_match"] not in ("exact", "variant-unstated"):
            continue
        vals = [(e[k], k) for k in ("l2_gbs", "l2_read_gbs", "l2_cp_async_gbs") if isinstance(e.get(k), (int, float))]
        if not vals:
            continue
        if e.get("confidence") == "low":
            skipped.append(f"{e['source']} {max(vals)[0]} GB/s")
            continue
        v, k = max(vals)
        if best is None or v > best[0]:
            best = (v, e, k)
    if best:
        v, e, k = best
        p.set("memory.l2_bandwidth_measured_gbs", v,
              f"microbench.toml [[l2_bandwidth]] gpu={key} gpu_match={e['gpu_match']} confidence={e['confidence']} {k} = {v}: {facts.tag_cite(e['source'])}")
        p.note(f"measured: memory.l2_bandwidth_measured_gbs from microbench.toml ({e['source']}): {e.get('notes', '')}".rstrip())
    if skipped:
        p.note("note: low-confidence L2 bandwidth readings not used: " + "; ".join(skipped) + " (microbench.toml [[l2_bandwidth]], confidence low).")


def set_clock_under_load(facts: Facts, p: Profile, key: str, g: dict) -> None:
    if "observed_clock_under_load_mhz" in g:
        p.set("power.observed_clock_under_load_mhz", g["observed_clock_under_load_mhz"], facts.cite(key, "observed_clock_under_load_mhz"))
        return
    for e in facts.mb.get("clock_under_load", []):
        if e["gpu"] == key and e["gpu_match"] in ("exact", "variant-unstated") and "clock_mhz_min" in e:
            p.set("power.observed_clock_under_load_mhz", e["clock_mhz_min"],
                  f"microbench.toml [[clock_under_load]] gpu={key} source={e['source']} clock_mhz_min: {facts.tag_cite(e['source'])}")
            return
    if key in CLOCK_FROM_NOTES:
        v, s = CLOCK_FROM_NOTES[key]
        tag = s.split("source=")[1].split()[0]
        p.set("power.observed_clock_under_load_mhz", v, f"{s} [{tag}: {facts.cites.get(tag, '')}]")
        p.note(f"measured: power.observed_clock_under_load_mhz = {v:g} MHz is the Nsight-reported clock of one FMHA kernel with the clock set to 1980 MHz (microbench.toml, confidence medium).")


def set_nvlink(facts: Facts, p: Profile, key: str, g: dict) -> None:
    c = lambda f: facts.cite(key, f)  # noqa: E731
    if "nvlink_gen" in g:
        p.set("interconnect.nvlink_gen", g["nvlink_gen"], c("nvlink_gen"))
    if "nvlink_bandwidth_gbs_per_direction" in g:
        p.set("interconnect.nvlink_bandwidth_gbs_per_direction", g["nvlink_bandwidth_gbs_per_direction"], c("nvlink_bandwidth_gbs_per_direction"))
    elif "nvlink_bandwidth_gbs_bidir" in g:
        v = g["nvlink_bandwidth_gbs_bidir"] / 2
        p.set("interconnect.nvlink_bandwidth_gbs_per_direction", v, "derived: " + c("nvlink_bandwidth_gbs_bidir") + " / 2")
        p.note(f"derived: interconnect.nvlink_bandwidth_gbs_per_direction = gpus.toml nvlink_bandwidth_gbs_bidir {g['nvlink_bandwidth_gbs_bidir']} / 2 = {v:g}.")
    elif "nvlink_bridge_bandwidth_gbs_bidir" in g:
        v = g["nvlink_bridge_bandwidth_gbs_bidir"] / 2
        p.set("interconnect.nvlink_bandwidth_gbs_per_direction", v, "derived: " + c("nvlink_bridge_bandwidth_gbs_bidir") + " / 2 (NVLink bridge between two cards)")
        p.note(f"derived: interconnect.nvlink_bandwidth_gbs_per_direction = gpus.toml nvlink_bridge_bandwidth_gbs_bidir {g['nvlink_bridge_bandwidth_gbs_bidir']} / 2 = {v:g} (bridged pair of cards).")
        if "nvlink_gen" not in g and p.values["architecture"] == "hopper":
            p.set("interconnect.nvlink_gen", 4, "derived: Hopper NVLink generation 4 (GK-H100 / NV-EXEMPLAR 'NVLink4' for GH100); gpus.toml gives only the bridge bandwidth for this card")
            p.note("derived: interconnect.nvlink_gen = 4 (GH100's NVLink generation; gpus.toml states only the bridge bandwidth for this card).")
    elif key == "a100-pcie-80gb":
        o = facts.gpus["a100-pcie-40gb"]
        v = o["nvlink_bridge_bandwidth_gbs_bidir"] / 2
        p.set("interconnect.nvlink_gen", o["nvlink_gen"], "estimate: as a100-pcie-40gb (same GA100 PCIe board family); " + facts.cite("a100-pcie-40gb", "nvlink_gen"))
        p.set("interconnect.nvlink_bandwidth_gbs_per_direction", v,
              "estimate: " + facts.cite("a100-pcie-40gb", "nvlink_bridge_bandwidth_gbs_bidir") + " / 2, assumed for the 80GB PCIe card; "
              "shared/traces/vidur/gpus.csv: 'Azure Standard_NC96ads_A100_v4 with 4 80GB A100 PCIe GPUs with pair-wise NVLINK connectivity'")
        p.note(f"estimate: interconnect.nvlink_gen / nvlink_bandwidth_gbs_per_direction = 3 / {v:g} taken from the A100 40GB PCIe product brief (bridge 600 GB/s bidirectional); "
               "gpus.toml has no NVLink figure for the 80GB PCIe card, but vidur's a100_pairwise_nvlink node bridges these cards in pairs.")


def copy_notes(p: Profile, g: dict) -> None:
    for prefix, field in (("conflict", "conflicts"), ("derived", "derived"), ("estimate", "estimates")):
        for s in g.get(field, []):
            p.note(f"{prefix}: {s}")


def unmapped_note(p: Profile, g: dict) -> None:
    rest = [f"{k} = {g[k]}" for k in g if k not in CONSUMED]
    if rest:
        p.note("note: gpus.toml fields with no profile field: " + "; ".join(rest) + ".")


# --------------------------------------------------------------------------------------
# mi250: one GCD of an AMD Instinct MI250 as NeuSight reports it (a ROCm device = one GCD)
# --------------------------------------------------------------------------------------
def build_mi250(facts: Facts) -> Profile:
    key = "mi250"
    x = facts.gpus["mi250x"]
    m210 = facts.gpus["mi210"]
    h = HAND[key]
    p = Profile(key)
    ns = "shared/traces/neusight/gpus.csv row mi250 (NeuSight repo device config: 104 CU, 64 GB, 1640 GB/s, 1700 MHz)"
    cx = lambda f: facts.cite("mi250x", f)  # noqa: E731
    c210 = lambda f: facts.cite("mi210", f)  # noqa: E731
    rocm250 = f"ROCM-MI250: {facts.cites['ROCM-MI250']}"

    p.set("key", key, "shared/traces neusight.* gpu column 'mi250' (shared/traces/neusight/README.md GPU naming table)")
    p.set("name", "AMD Instinct MI250 (one GCD)", "shared/traces/neusight/README.md: 'AMD Instinct MI250X / MI250' device renamed MI250 by the collector; its config is one MI250 GCD (one logical device)")
    p.set("vendor", "AMD", cx("vendor"))
    p.set("architecture", h["arch"], f"tools/gen_profiles.py HAND: ISA file stem for CDNA2 (gpus.toml mi250x architecture '{x['architecture']}')")
    p.set("chip", h["chip"], f"tools/gen_profiles.py HAND: chip family for Aldebaran (gpus.toml mi250x chip '{x['chip']}')")
    p.set("compute_capability", "gfx90a", f"gpus.toml gpu.mi250x.chip = '{x['chip']}' (same Aldebaran GCD)")
    set_hand_identity(p, h)

    p.set("compute.sm_count", 104, ns + "; ROCM-MI250 (as quoted in gpus.toml gpu.mi210 sources): 'CDNA2 GCD: 104 active CUs at 1.7 GHz'")
    p.set("compute.fp32_cores_per_sm", x["stream_processors_per_cu"], cx("stream_processors_per_cu"))
    tv, ts, tn = AMD_TENSOR_PER_CU[key]
    p.set("compute.tensor_cores_per_sm", tv, ts)
    p.set("compute.boost_clock_mhz", x["peak_engine_clock_mhz"], cx("peak_engine_clock_mhz") + "; " + ns)

    p.set("memory.memory_gb", x["memory_size_gb"] / 2, "derived: " + cx("memory_size_gb") + " / 2 GCDs; " + ns)
    p.set("memory.memory_type", x["memory_type"], cx("memory_type"))
    bus = 1024 * x["memory_stacks"] // 2
    p.set("memory.bus_width_bits", bus, f"derived: gpus.toml gpu.mi250x.memory_stacks {x['memory_stacks']} / 2 GCDs x 1024 bit per HBM2e stack (as gpus.toml gpu.mi210 memory_bus_width_bits 4096)")
    bw = x["memory_data_rate_gbps"] * bus / 8
    p.set("memory.dram_bandwidth_gbs", bw, f"derived: gpus.toml gpu.mi250x.memory_data_rate_gbps {x['memory_data_rate_gbps']} x {bus} bit / 8 (= gpus.toml gpu.mi210 dram_bandwidth_gbs); ROCM-MI250 '1.6 TB/s per GCD'; " + ns)
    p.set("memory.l2_mib", x["l2_mib"] / x["l2_partitions"], "derived: " + cx("l2_mib") + f" / {x['l2_partitions']} GCDs; ROCM-SPECS 'L2 16 MiB = 8/GCD' (gpus.toml gpu.mi250x sources)")
    p.set("memory.smem_per_sm_max_kib", x["lds_per_cu_kib"], cx("lds_per_cu_kib") + " (AMD LDS per CU)")
    p.set("memory.register_file_per_sm_kib", x["vgpr_file_per_cu_kib"], cx("vgpr_file_per_cu_kib") + " (AMD VGPR file per CU)")
    mv, ms, mn = AMD_MAX_THREADS[key]
    p.set("memory.max_threads_per_sm", mv, ms)

    p.set("power.tdp_w", x["tdp_w"] / 2, "estimate: " + cx("tdp_w") + " / 2 GCDs (MI250X package figure; no MI250 board power in shared/hardware)")

    p.set("interconnect.pcie_gen", x["pcie_gen"], cx("pcie_gen"))
    p.set("interconnect.pcie_lanes", 16, rocm250 + " ('PCIe Gen4 x16 per GCD', as quoted in gpus.toml gpu.mi250x sources)")

    clk = x["peak_engine_clock_mhz"] / 1000
    cus = 104
    fp32 = round(cus * 128 * clk / 1000, 1)
    mat = round(cus * x["matrix_fp16_flop_per_clk_per_cu"] * clk / 1000, 1)
    p.set("peaks.fp32_tflops", fp32, f"derived: 104 CU x 128 FLOP/clk/CU (FP32 vector, ROCM-MI250 per-CU table as quoted in gpus.toml gpu.mi210 sources) x {clk} GHz; = gpus.toml gpu.mi210 fp32_tflops {m210['fp32_tflops']}")
    for path in ("peaks.fp16_tensor_tflops", "peaks.bf16_tensor_tflops"):
        p.set(path, mat, f"derived: 104 CU x {x['matrix_fp16_flop_per_clk_per_cu']} FLOP/clk/CU (gpus.toml gpu.mi250x matrix_fp16_flop_per_clk_per_cu, ROCM-MI250) x {clk} GHz (AMD MFMA matrix-core peak); = gpus.toml gpu.mi210 fp16_tensor_dense_tflops {m210['fp16_tensor_dense_tflops']}")
    p.set("peaks.int8_tensor_tops", mat, f"derived: 104 CU x 1024 INT8 op/clk/CU (ROCM-MI250 per-CU table as quoted in gpus.toml gpu.mi210 sources) x {clk} GHz; = gpus.toml gpu.mi210 int8_tensor_dense_tops {m210['int8_tensor_dense_tops']}")

    p.note("note: one Graphics Compute Die (GCD) of an AMD Instinct MI250, i.e. one ROCm device, as NeuSight measured it (shared/traces/neusight/README.md and gpus.csv: "
           "'AMD Instinct MI250X / MI250' renamed MI250; repo config 104 CU, 64 GB, 1640 GB/s, identical to its MI210 config). Built from the mi250x facts halved per GCD, "
           "with the MI250's 104 CUs per GCD instead of the MI250X's 110.")
    p.note(f"derived: memory.memory_gb, memory.l2_mib, memory.bus_width_bits = mi250x package values / 2 GCDs; memory.dram_bandwidth_gbs = {x['memory_data_rate_gbps']} Gbps x {bus} bit / 8 = {bw:g} GB/s "
           "(NeuSight config 1640, ROCm '1.6 TB/s per GCD').")
    p.note(f"derived: peaks = 104 CU x per-CU FLOP/clk (ROCM-MI250) x {clk} GHz, equal to the MI210 figures (same 104-CU CDNA2 GCD at 1.7 GHz).")
    p.note("estimate: power.tdp_w = MI250X package 560 W / 2 GCDs; no MI250 board power in shared/hardware.")
    if tn:
        p.note(tn)
    if mn:
        p.note(mn)
    p.note("note: interconnect.pcie_lanes = 16 per GCD (ROCM-MI250); the GCD's Infinity Fabric links have no profile field.")
    p.note("note: memory.dram_bandwidth_measured_gbs not set: no measurement of an MI250 GCD in shared/hardware (gpus.toml mi210 has 1539 GB/s for the MI210 card).")
    p.note(f"note: memory.l1_smem_per_sm_kib not set: CDNA has a separate {x['l1_vector_per_cu_kib']} KiB vector L1 per CU beside the {x['lds_per_cu_kib']} KiB LDS.")
    p.note(f"note: FP32 matrix (packed) peak = 104 x 256 x {clk} GHz = {round(cus * 256 * clk / 1000, 1)} TFLOPS and FP64 vector {round(cus * 128 * clk / 1000, 1)} TFLOPS (ROCM-MI250 per-CU rates) have no profile field.")
    return p


# --------------------------------------------------------------------------------------
# Cross-checks against NeuSight's device configs (noted, never copied)
# --------------------------------------------------------------------------------------
def neusight_notes(profiles: dict[str, Profile]) -> None:
    if not NEUSIGHT_GPUS.exists():
        return
    with NEUSIGHT_GPUS.open(newline="") as f:
        for row in csv.DictReader(f):
            key = NEUSIGHT_KEY.get(row["gpu"], row["gpu"])
            p = profiles.get(key)
            if p is None:
                continue
            amd = row["vendor"] == "amd"
            pairs = [("mem_gb", "memory.memory_gb"), ("mem_bw_gbs", "memory.dram_bandwidth_gbs"),
                     ("num_sm_or_cu", "compute.sm_count"), ("freq_mhz", "compute.boost_clock_mhz"), ("l2_mb", "memory.l2_mib")]
            if not amd:
                pairs.append(("cores_per_sm", "compute.fp32_cores_per_sm"))
            diffs = []
            for col, path in pairs:
                if not row[col] or path not in p.values:
                    continue
                a, b = float(row[col]), float(p.values[path])
                if abs(a - b) > 0.01 * max(abs(a), abs(b)):
                    diffs.append(f"{col} {row[col]} vs {path} {b:g}")
            if diffs:
                p.note("conflict: NeuSight's device config (shared/traces/neusight/gpus.csv, gpu " + row["gpu"] + ") differs: " + "; ".join(diffs)
                       + ". The profile keeps its sourced values (NeuSight's configs are its own model inputs, not sourced specs).")


# --------------------------------------------------------------------------------------
# TOML output
# --------------------------------------------------------------------------------------
def q(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        assert math.isfinite(v)
        return fmt_num(v)
    if isinstance(v, str):
        return q(v)
    if isinstance(v, list):
        return "[" + ", ".join(val(x) for x in v) + "]"
    raise TypeError(type(v))


def render(p: Profile) -> str:
    lines = [
        f"# GPU profile '{p.key}' (schema: src/hw/profile.rs, GpuProfile).",
        "# GENERATED by tools/gen_profiles.py from ../shared/hardware/gpus.toml and microbench.toml;",
        "# edit the script or the facts and rerun it rather than editing this file.",
        "",
    ]
    for f, _ in TOP:
        if f in p.values:
            lines.append(f"{f} = {val(p.values[f])}")
    lines.append("notes = [")
    for n in p.notes:
        lines.append(f"  {q(n)},")
    lines.append("]")
    for sec, fields in SECTIONS.items():
        present = [(f, p.values[f"{sec}.{f}"]) for f, _ in fields if f"{sec}.{f}" in p.values]
        if not present:
            continue
        lines.append("")
        lines.append(f"[{sec}]")
        for f, v in present:
            lines.append(f"{f} = {val(v)}")
    lines.append("")
    lines.append("[sources]")
    order = [f for f, _ in TOP] + [f"{s}.{f}" for s, fs in SECTIONS.items() for f, _ in fs]
    for path in order:
        if path in p.sources:
            lines.append(f"{q(path)} = {q(p.sources[path])}")
    return "\n".join(lines) + "\n"


def main() -> int:
    facts = Facts()
    missing = [k for k in facts.gpus if k not in HAND]
    if missing:
        print("no HAND entry for: " + ", ".join(missing), file=sys.stderr)
        return 1
    profiles: dict[str, Profile] = {}
    for key in facts.gpus:
        p = build(facts, key)
        unmapped_note(p, facts.gpus[key])
        profiles[key] = p
    profiles["mi250x"].note("note: device_names left empty on purpose: a ROCm device is one GCD (110 CU, 64 GB), not this 2-GCD package; the name 'AMD Instinct MI250X / MI250' "
                            "that ROCm reports resolves to the mi250 profile (one GCD, as NeuSight used it).")
    profiles["mi250"] = build_mi250(facts)
    neusight_notes(profiles)
    for k in TRACE_KEYS:
        assert k in profiles, k
    OUT.mkdir(exist_ok=True)
    for key, p in profiles.items():
        text = render(p)
        tomllib.loads(text)  # must parse
        (OUT / f"{key}.toml").write_text(text)
    print(f"wrote {len(profiles)} profiles to {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Check profiles/*.toml against the GpuProfile schema of src/hw/profile.rs.

Run from the repository root (Python 3.11+, stdlib only):

    python3 tools/check_profiles.py [profiles_dir]

The field lists below mirror the Rust structs by hand (serde `deny_unknown_fields`), so a
change to src/hw/profile.rs must be copied here. Checks:
  * every file parses, `key` equals the file stem;
  * required fields present, no unknown keys, value types as the Rust types expect;
  * every written field has a `[sources]` entry keyed by its path, and no `[sources]` entry
    points at a field that is not written;
  * aliases and device names are unique across all files (compared as the registry does:
    lowercase, '_' and ' ' read as '-') and do not shadow another profile's key;
  * the keys used by the trace files and the agreed aliases resolve as intended;
  * architecture / chip / form factor values are from the agreed sets; numbers positive;
  * notes carry one of the agreed prefixes.
Exit status 1 on any failure.
"""
from __future__ import annotations

import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

# (field, type, required). Types: str, bool, u32, f64, list[str], table.
GPU_PROFILE = [
    ("key", "str", True), ("name", "str", True), ("vendor", "str", True), ("architecture", "str", True),
    ("chip", "str", True), ("compute_capability", "str", False), ("aliases", "list[str]", False),
    ("device_names", "list[str]", False), ("form_factor", "str", False),
    ("tensor_fp32_accumulate_half_rate", "bool", False), ("compute", "table", True), ("memory", "table", True),
    ("power", "table", True), ("interconnect", "table", False), ("peaks", "table", False),
    ("sources", "table", False), ("notes", "list[str]", False),
]
COMPUTE = [("sm_count", "u32", True), ("fp32_cores_per_sm", "u32", True), ("tensor_cores_per_sm", "u32", False),
           ("base_clock_mhz", "f64", False), ("boost_clock_mhz", "f64", True)]
MEMORY = [("memory_gb", "f64", True), ("memory_type", "str", False), ("bus_width_bits", "u32", False),
          ("dram_bandwidth_gbs", "f64", True), ("dram_bandwidth_measured_gbs", "f64", False), ("l2_mib", "f64", True),
          ("l2_bandwidth_measured_gbs", "f64", False), ("l1_smem_per_sm_kib", "f64", False),
          ("smem_per_sm_max_kib", "f64", True), ("smem_per_block_max_kib", "f64", False),
          ("register_file_per_sm_kib", "f64", True), ("max_threads_per_sm", "u32", True),
          ("max_blocks_per_sm", "u32", False)]
POWER = [("tdp_w", "f64", True), ("observed_clock_under_load_mhz", "f64", False)]
INTERCONNECT = [("pcie_gen", "u32", False), ("pcie_lanes", "u32", False), ("nvlink_gen", "u32", False),
                ("nvlink_bandwidth_gbs_per_direction", "f64", False)]
PEAKS = [(f, "f64", False) for f in ("fp32_tflops", "fp16_nontensor_tflops", "tf32_tensor_tflops", "fp16_tensor_tflops",
                                      "bf16_tensor_tflops", "fp8_tensor_tflops", "int8_tensor_tops", "int8_nontensor_tops")]
TABLES = {"compute": COMPUTE, "memory": MEMORY, "power": POWER, "interconnect": INTERCONNECT, "peaks": PEAKS}

ARCH_CHIPS = {
    "pascal": {"GP100", "GP104"}, "volta": {"GV100"}, "turing": {"TU104"}, "ampere": {"GA100", "GA102"},
    "ada": {"AD102", "AD104"}, "hopper": {"GH100"}, "blackwell": {"GB100", "GB202"},
    "cdna1": {"MI100"}, "cdna2": {"MI200"}, "cdna3": {"MI300"},
}
FORM_FACTORS = {"sxm", "pcie", "nvl", "oam"}
NOTE_PREFIXES = ("conflict:", "derived:", "estimate:", "note:", "measured:", "measured (lower bound, not used):")

ALL_KEYS = [
    "p100-sxm2-16gb", "v100-sxm2-16gb", "v100-sxm2-32gb", "v100-pcie-16gb", "t4", "a10", "a100-sxm4-40gb",
    "a100-sxm4-80gb", "a100-pcie-80gb", "rtx-a6000", "rtx3090", "rtx4090", "l4", "l40s", "h100-sxm5-80gb",
    "h100-pcie-80gb", "h200-sxm-141gb", "b200", "rtx5090", "rtx-pro-6000-blackwell", "mi250x", "mi300x",
    "v100-pcie-32gb", "p100-pcie-16gb", "p4", "a100-pcie-40gb", "a40", "h100-nvl", "mi100", "mi210", "mi250",
]
TRACE_KEYS = ["a100-pcie-40gb", "a100-pcie-80gb", "a100-sxm4-80gb", "a40", "p4", "p100-pcie-16gb", "t4",
              "v100-pcie-32gb", "mi100", "mi210", "mi250"]
EXPECTED_ALIASES = {
    "v100": "v100-sxm2-32gb", "tesla-v100": "v100-sxm2-32gb", "p100": "p100-pcie-16gb", "a100": "a100-sxm4-80gb",
    "a100-40gb": "a100-sxm4-40gb", "a100-pcie": "a100-pcie-80gb", "h100": "h100-sxm5-80gb",
    "h100-pcie": "h100-pcie-80gb", "h200": "h200-sxm-141gb", "4090": "rtx4090", "rtx-4090": "rtx4090",
    "3090": "rtx3090", "rtx-3090": "rtx3090", "5090": "rtx5090", "rtx-5090": "rtx5090", "a6000": "rtx-a6000",
    "rtx_a6000": "rtx-a6000", "rtx-pro-6000": "rtx-pro-6000-blackwell", "rtx_pro_6000": "rtx-pro-6000-blackwell",
    "pro6000": "rtx-pro-6000-blackwell", "h100-sxm": "h100-sxm5-80gb", "h100-sxm-80gb": "h100-sxm5-80gb",
    "a40-pcie-48gb": "a40",
    # device names
    "NVIDIA A100-SXM4-80GB": "a100-sxm4-80gb", "NVIDIA A100-PCIE-40GB": "a100-pcie-40gb",
    "NVIDIA A100 80GB PCIe": "a100-pcie-80gb", "NVIDIA A100-PG509-200": "a100-sxm4-40gb",
    "NVIDIA A100-SXM4-40GB": "a100-sxm4-40gb", "Tesla V100-SXM2-32GB": "v100-sxm2-32gb",
    "Tesla V100-SXM2-16GB": "v100-sxm2-16gb", "Tesla V100-PCIE-32GB": "v100-pcie-32gb", "Tesla T4": "t4",
    "Tesla P4": "p4", "Tesla P100-PCIE-16GB": "p100-pcie-16gb", "NVIDIA H100 80GB HBM3": "h100-sxm5-80gb",
    "NVIDIA H100 PCIe": "h100-pcie-80gb", "NVIDIA H100 NVL": "h100-nvl", "NVIDIA L4": "l4", "NVIDIA A10": "a10",
    "NVIDIA A40": "a40", "NVIDIA RTX A6000": "rtx-a6000", "NVIDIA GeForce RTX 4090": "rtx4090",
    "NVIDIA L40S": "l40s", "NVIDIA H200": "h200-sxm-141gb", "NVIDIA B200": "b200", "AMD Instinct MI100": "mi100",
    "AMD Instinct MI210": "mi210", "AMD Instinct MI250X / MI250": "mi250",
}
HALF_RATE = {"rtx3090", "rtx4090", "rtx5090"}


def normalize(name: str) -> str:
    """Same as src/hw/mod.rs `normalize`."""
    return name.strip().lower().replace("_", "-").replace(" ", "-")


def type_ok(v, t: str) -> bool:
    if t == "str":
        return isinstance(v, str)
    if t == "bool":
        return isinstance(v, bool)
    if t == "u32":
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
    if t == "f64":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "list[str]":
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if t == "table":
        return isinstance(v, dict)
    raise ValueError(t)


def check_fields(where: str, doc: dict, spec, errors: list[str]) -> None:
    known = {f for f, _, _ in spec}
    for k in doc:
        if k not in known:
            errors.append(f"{where}: unknown key '{k}'")
    for f, t, req in spec:
        if f not in doc:
            if req:
                errors.append(f"{where}: missing required '{f}'")
            continue
        if not type_ok(doc[f], t):
            errors.append(f"{where}: '{f}' should be {t}, got {type(doc[f]).__name__} {doc[f]!r}")


def check_file(path: pathlib.Path, errors: list[str]) -> dict | None:
    where = path.name
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        errors.append(f"{where}: does not parse: {e}")
        return None
    check_fields(where, doc, GPU_PROFILE, errors)
    if doc.get("key") != path.stem:
        errors.append(f"{where}: key {doc.get('key')!r} != file stem {path.stem!r}")
    written: list[str] = []
    for f, _, _ in GPU_PROFILE:
        if f in doc and f not in TABLES and f not in ("sources", "notes"):
            written.append(f)
    for t, spec in TABLES.items():
        sub = doc.get(t)
        if isinstance(sub, dict):
            check_fields(f"{where} [{t}]", sub, spec, errors)
            written += [f"{t}.{k}" for k in sub]
            for k, v in sub.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not v > 0 and k != "tensor_cores_per_sm":
                    errors.append(f"{where}: {t}.{k} must be positive, got {v}")
    sources = doc.get("sources", {})
    for f in written:
        s = sources.get(f)
        if not isinstance(s, str) or not s.strip():
            errors.append(f"{where}: no [sources] entry for '{f}'")
    for s in sources:
        if s not in written:
            errors.append(f"{where}: [sources] entry '{s}' names a field that is not written")
    arch, chip = doc.get("architecture"), doc.get("chip")
    if arch not in ARCH_CHIPS:
        errors.append(f"{where}: architecture {arch!r} not in {sorted(ARCH_CHIPS)}")
    elif chip not in ARCH_CHIPS[arch]:
        errors.append(f"{where}: chip {chip!r} not in {sorted(ARCH_CHIPS[arch])} for {arch}")
    if "form_factor" in doc and doc["form_factor"] not in FORM_FACTORS:
        errors.append(f"{where}: form_factor {doc['form_factor']!r} not in {sorted(FORM_FACTORS)}")
    if doc.get("tensor_fp32_accumulate_half_rate", False) != (path.stem in HALF_RATE):
        errors.append(f"{where}: tensor_fp32_accumulate_half_rate should be {path.stem in HALF_RATE}")
    for n in doc.get("notes", []):
        if not n.startswith(NOTE_PREFIXES):
            errors.append(f"{where}: note without an agreed prefix: {n[:60]!r}")
    mem = doc.get("memory", {})
    if isinstance(mem, dict) and "dram_bandwidth_measured_gbs" in mem and "dram_bandwidth_gbs" in mem:
        r = mem["dram_bandwidth_measured_gbs"] / mem["dram_bandwidth_gbs"]
        if not 0.5 < r < 1.1:
            errors.append(f"{where}: measured/spec DRAM bandwidth ratio {r:.2f} is implausible")
    return doc


def main(argv: list[str]) -> int:
    pdir = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "profiles"
    errors: list[str] = []
    docs: dict[str, dict] = {}
    for path in sorted(pdir.glob("*.toml")):
        doc = check_file(path, errors)
        if doc is not None:
            docs[path.stem] = doc
    keys = {normalize(k): k for k in docs}
    names: dict[str, str] = {}
    for key, doc in docs.items():
        for kind in ("aliases", "device_names"):
            for a in doc.get(kind, []):
                n = normalize(a)
                if n in keys:
                    errors.append(f"{key}.toml: {kind} entry {a!r} equals a profile key ({keys[n]})")
                elif n in names and names[n] != key:
                    errors.append(f"{key}.toml: {kind} entry {a!r} also used by {names[n]}")
                elif n in names:
                    errors.append(f"{key}.toml: {kind} entry {a!r} repeated (after normalisation)")
                names[n] = key

    def resolve(name: str) -> str | None:
        n = normalize(name)
        if n in keys:
            return keys[n]
        if n in names:
            return names[n]
        s = n.removeprefix("nvidia-")
        return keys.get(s) or names.get(s)

    for k in ALL_KEYS:
        if k not in docs:
            errors.append(f"missing profile: {k}")
    for k in TRACE_KEYS:
        if k not in docs:
            errors.append(f"trace key without a profile: {k}")
    for a, k in EXPECTED_ALIASES.items():
        got = resolve(a)
        if got != k:
            errors.append(f"name {a!r} resolves to {got!r}, expected {k!r}")
    extra = sorted(set(docs) - set(ALL_KEYS))
    for e in errors:
        print("ERROR", e)
    print(f"{len(docs)} profiles checked, {len(names)} aliases/device names, {len(errors)} error(s)"
          + (f"; profiles not in the agreed list: {', '.join(extra)}" if extra else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

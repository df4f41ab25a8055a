"""Writes the libFuzzer dictionaries fuzz/dicts/<target>.dict: the string literals of each
parser (keys, op and dtype names, GPU and architecture names), a few words of the format,
and numbers at the edges of the integer and float ranges (mutations rarely build a
20-digit number on their own). Run with `python3 fuzz/dicts/make_dicts.py`."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUMBERS = ["0", "1", "-1", "2", "3", "7", "8", "16", "64", "128", "1024", "65535", "65536", "4294967295",
           "4294967296", "1099511627776", "281474976710656", "4611686018427387903", "4611686018427387904",
           "9007199254740993", "9223372036854775807", "9223372036854775808", "18446744073709551615",
           "18446744073709551616", "1e308", "1e309", "-1e308", "1e-308", "5e-324", "0.5", "-0.0", "1.5", "nan",
           "inf", "-inf", "NaN", "Infinity", "0.001", "1e-3", "1e5", "1e7", "1e8", "65537", "100001", "2147483648",
           "1e-300", "1e300"]


def literals(files):
    out = set()
    for f in files:
        text = open(os.path.join(ROOT, f)).read()
        for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', text):
            v = m.group(1)
            if re.fullmatch(r"[A-Za-z0-9_.:#][A-Za-z0-9_.:# -]{0,39}", v):
                out.add(v)
    return out


def escape(t):
    return "".join(c if 32 <= ord(c) < 127 and c not in '\\"' else ("\\" + c if c in '\\"' else f"\\x{ord(c):02X}") for c in t)


def write(name, tokens):
    tokens = sorted(set(tokens) | set(NUMBERS))
    with open(os.path.join(ROOT, "fuzz", "dicts", name + ".dict"), "w") as f:
        f.write(f"# libFuzzer dictionary of the {name} target, written by fuzz/dicts/make_dicts.py.\n")
        for t in tokens:
            f.write(f'"{escape(t)}"\n')


JSON = {"{", "}", "[", "]", ":", ",", "null", "true", "false"}
ARCHS = {"ampere", "ada", "hopper", "blackwell", "volta", "turing", "pascal", "cdna1", "cdna2", "cdna3", "GA100", "GA102",
         "AD102", "AD104", "GH100", "GB100", "GB202", "GV100", "TU104", "GP100", "GP104", "MI100", "MI200", "MI300"}
PROFILE_FIELDS = {"key", "name", "vendor", "architecture", "chip", "compute_capability", "aliases", "device_names",
                  "form_factor", "tensor_fp32_accumulate_half_rate", "compute", "memory", "power", "interconnect",
                  "peaks", "sources", "notes", "sm_count", "fp32_cores_per_sm", "tensor_cores_per_sm",
                  "base_clock_mhz", "boost_clock_mhz", "memory_gb", "memory_type", "bus_width_bits",
                  "dram_bandwidth_gbs", "dram_bandwidth_measured_gbs", "l2_mib", "l2_bandwidth_measured_gbs",
                  "l1_smem_per_sm_kib", "smem_per_sm_max_kib", "smem_per_block_max_kib", "register_file_per_sm_kib",
                  "max_threads_per_sm", "max_blocks_per_sm", "tdp_w", "observed_clock_under_load_mhz", "pcie_gen",
                  "pcie_lanes", "nvlink_gen", "nvlink_bandwidth_gbs_per_direction", "fp32_tflops",
                  "fp16_tensor_tflops"}
TOML = {"profiles", "gpu", "thermal", "[gpu.x]", "[profiles.x]", "[profiles.x.thermal]", "[profiles.x.memory]",
        "[profiles.x.architecture]", "[gpu.x.compute]", "[gpu.x.memory]", "[gpu.x.power]", "=", "\n", "h100", "a100"}

write("hf_config", literals(["src/graph/hf_config.rs"]) | JSON)
write("gpu_profile", literals(["src/hw/legacy.rs", "src/hw/mod.rs"]) | ARCHS | PROFILE_FIELDS | TOML)
write("trace_csv", literals(["src/kernel/op.rs", "src/trace/canonical.rs", "src/validate/models.rs", "src/kernel/mod.rs"])
      | {"a100", "h100", "v100", "t4", "a40", "mi100", "p100-pcie-16gb", "node_type=", "a100_dgx", "config=", "attn=flash",
         ",", ";", "=", "\n", '"'})
write("kineto", literals(["src/trace/kineto/mod.rs", "src/trace/kineto/classify.rs"]) | JSON
      | {"traceEvents", "deviceProperties", "distributedInfo", "world_size", "ph", "cat", "name", "pid", "tid", "ts", "dur",
         "id", "args", "correlation", "stream", "device", "grid", "block", "bytes", "Input Dims", "Input type",
         "Concrete Inputs", "X", "s", "f", "kernel", "cpu_op", "cuda_runtime", "ac2g", "gpu_memcpy", "gpu_memset",
         "user_annotation", "ProfilerStep#1", "c10::Half", "c10::BFloat16", "float"})
write("onnx", literals(["src/graph/onnx/" + f for f in os.listdir(os.path.join(ROOT, "src/graph/onnx"))]))

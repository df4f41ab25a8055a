//! Shared by the ONNX Runtime profile tests: where the nine light ONNX models are, and the
//! comparison of a converted profile with our own ONNX shape inference.

#![allow(dead_code)]

use phantom_gpu::graph::onnx;
use phantom_gpu::graph::GraphOp;
use phantom_gpu::kernel::Op;
use phantom_gpu::trace::canonical::{tag, TraceFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const LIGHT: &[&str] = &["resnet50", "vgg19", "densenet121", "inception_v1", "inception_v2", "squeezenet", "shufflenet", "bvlc_alexnet", "zfnet512"];

/// `onnx/backend/test/data/light` of the PyPI `onnx` package: `ONNX_LIGHT_DIR`, the installed
/// package, else `onnx==1.23.2` fetched with pip into the test scratch folder (as
/// `tests/onnx_models.rs` does).
pub fn light_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os("ONNX_LIGHT_DIR") {
            Some(d) => PathBuf::from(d),
            None => {
                let out = std::process::Command::new("python3").args(["-c", "import onnx, os; print(os.path.dirname(onnx.__file__))"]).output();
                match out {
                    Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("backend/test/data/light"),
                    _ => {
                        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("onnx-pkg");
                        let dir = target.join("onnx/backend/test/data/light");
                        if !dir.join("light_resnet50.onnx").is_file() {
                            let _ = std::process::Command::new("python3")
                                .args(["-m", "pip", "install", "--quiet", "--no-deps", "--target"])
                                .arg(&target)
                                .arg("onnx==1.23.2")
                                .status();
                        }
                        dir
                    }
                }
            }
        };
        assert!(dir.join("light_resnet50.onnx").is_file(), "the ONNX test models are missing: `python3 -m pip install onnx` or set ONNX_LIGHT_DIR (looked in '{}')", dir.display());
        dir
    })
    .clone()
}

pub fn light(name: &str) -> PathBuf {
    light_dir().join(format!("light_{name}.onnx"))
}

/// The kernel op our ONNX import gives each convolution and matmul node, by node name, with
/// the name of the tensor it reads (a grouped convolution as the lowering runs it: n·g,
/// c/g, k/g).
pub fn our_ops(model: &Path) -> BTreeMap<String, (Op, String)> {
    let g = onnx::load(model, 1).unwrap_or_else(|e| panic!("{e}"));
    g.nodes
        .iter()
        .filter_map(|n| {
            let op = match n.op {
                GraphOp::Conv2d { n: b, c, h, w, k, r, s, stride, pad, groups, .. } => Op::Conv2d { n: b * groups, c: c / groups, h, w, k: k / groups, r, s, stride, pad },
                GraphOp::MatMul { b, m, n, k, bias } => Op::Gemm { b, m, n, k, bias },
                _ => return None,
            };
            Some((n.name.clone(), (op, g.tensors[n.inputs[0]].name.clone())))
        })
        .collect()
}

/// Reads a converted trace (canonical CSV) and checks that its conv2d and gemm rows are
/// exactly the convolutions and matmuls of our shape inference, node by node. Returns
/// (rows, conv2d + gemm rows checked, nodes ONNX Runtime merged into an identical twin).
///
/// The light models are weight-stripped: every weight is a `ConstantOfShape` of zeros, so
/// after constant folding two convolutions of the same input and filter shape are the same
/// expression and ONNX Runtime's common-subexpression elimination keeps one of them (and,
/// along a duplicated branch, everything after it). A node of ours missing from the profile
/// must be such a twin: the same op as a node that was profiled.
pub fn check_against_our_inference(model: &Path, csv: &str) -> (usize, usize, usize) {
    let file = TraceFile::from_reader(Path::new("converted.kernels.csv"), csv.as_bytes()).expect("the converted trace is canonical CSV");
    let ours = our_ops(model);
    let mut seen = BTreeMap::new();
    for rec in &file.rows {
        let row = file.kernel_row(rec);
        assert_eq!(row.timing, "kernel");
        assert!(row.measured_ms.is_some_and(|m| m >= 0.0), "{rec:?}");
        if row.op != "conv2d" && row.op != "gemm" {
            continue;
        }
        let node = tag(row.tags, "node").expect("node tag").to_string();
        let op = Op::parse(row.op, row.shape).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let (expected, _) = ours.get(&node).unwrap_or_else(|| panic!("{}: profiled node '{node}' ({}) is not a conv/matmul of our import", model.display(), row.op));
        assert_eq!(&op, expected, "{}: node {node}", model.display());
        if row.op == "conv2d" {
            assert_eq!(tag(row.tags, "window"), Some("model"), "{}: {node} took its window from the model", model.display());
        }
        seen.insert(node, ());
    }
    let mut twins = 0;
    for (name, (op, _)) in ours.iter().filter(|(k, _)| !seen.contains_key(*k)) {
        let twin = ours.iter().find(|(k, (o, _))| seen.contains_key(*k) && o == op);
        assert!(twin.is_some(), "{}: our node {name} ({op:?}) is missing from the profile and has no profiled twin", model.display());
        twins += 1;
    }
    (file.rows.len(), seen.len(), twins)
}

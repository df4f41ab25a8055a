//! `profile`: run an ONNX model under ONNX Runtime with profiling on (`crate::onnxrt`,
//! feature `ort`) or read a profile ONNX Runtime already wrote, convert it to canonical
//! kernel rows (`crate::trace::ort_profile`), and optionally replay them on a GPU
//! (`crate::validate::replay_kernels`).

use crate::error::{Error, Result};
use crate::graph::onnx::proto::{Message, ModelProto};
use crate::hw::Registry;
use crate::onnxrt::{self, Ep, OptLevel, RunOptions};
use crate::report::{num, text, Format, Table};
use crate::trace::canonical::TraceFile;
use crate::trace::ort_profile::{self, CanonRow, ModelInfo, RowContext};
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// The ONNX model (also read for node attributes: strides, pads, axes).
    pub model: PathBuf,
    /// Execution provider: cpu (the PyPI onnxruntime wheel), cuda (onnxruntime-gpu's library).
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: Ep,
    /// Size of a symbolic leading (batch) dimension of the inputs.
    #[arg(long, default_value = "1")]
    pub batch: u64,
    /// Size of a named symbolic input dimension, NAME=N (repeatable), e.g. --dim seq=128.
    #[arg(long = "dim", value_name = "NAME=N")]
    pub dims: Vec<String>,
    /// Profiled runs after one warm-up run; a node's time is its median over them.
    #[arg(long, default_value = "5")]
    pub runs: usize,
    /// ONNX Runtime graph optimisation level. basic keeps one node per ONNX op (with
    /// BatchNorm folded into Conv and constants folded), as a GPU framework would run them.
    #[arg(long, value_enum, default_value = "basic")]
    pub optimization: OptLevel,
    /// Intra-op threads (default: ONNX Runtime's, one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// CUDA device ordinal (--ep cuda).
    #[arg(long, default_value = "0")]
    pub device_id: i32,
    /// Write the converted canonical trace (gpu,op,dtype,shape,timing,measured_ms,source,tags) to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also keep ONNX Runtime's own JSON profile as FILE.
    #[arg(long, value_name = "FILE")]
    pub save_ort_profile: Option<PathBuf>,
    /// Convert this ONNX Runtime JSON profile (recorded elsewhere, e.g. with Python's
    /// SessionOptions.enable_profiling) instead of running the model; needs no ONNX Runtime.
    #[arg(long, value_name = "FILE")]
    pub from_ort_profile: Option<PathBuf>,
    /// Predict every converted row with the kernel models (on --gpu, else on the GPU it ran on).
    #[arg(long)]
    pub replay: bool,
    /// GPU to predict on (implies --replay).
    #[arg(long)]
    pub gpu: Option<String>,
    /// The GPU a CUDA-EP profile ran on (default for a run here: nvidia-smi's name for --device-id).
    #[arg(long, value_name = "GPU")]
    pub recorded_on: Option<String>,
}

pub const AFTER_HELP: &str = "Needs a build with --features ort and ORT_DYLIB_PATH naming ONNX Runtime's library \
(python3 -m pip download --no-deps onnxruntime==1.32.0; unzip the wheel; onnxruntime/capi/libonnxruntime.so.1.32.0).\n\
--from-ort-profile converts a profile recorded elsewhere and works in every build.\n\n\
Inputs get the declared shapes (a symbolic leading dimension takes --batch, others --dim NAME=N),\n\
seeded random floats in [0,1) and zero integers. Every profiled node keeps one row: nodes with a\n\
kernel model map to conv2d, gemm, elementwise, softmax, layernorm, embedding…; the others (views\n\
such as Reshape, integer shape arithmetic, ops without a model) keep op=onnx:<Op> and the reason in\n\
the `why` tag, and replay reports them as unknown ops. A CPU run has no GPU measurement: its rows say\n\
gpu=cpu and replaying them on a GPU is a prediction, not a validation.\n\n\
Examples:\n  \
phantom-gpu profile resnet50.onnx\n  \
phantom-gpu profile resnet50.onnx --batch 8 --runs 10 --out resnet50.cpu.kernels.csv\n  \
phantom-gpu profile resnet50.onnx --replay --gpu a100\n  \
phantom-gpu profile bert.onnx --dim sequence_length=128 --gpu h100 --format csv\n  \
phantom-gpu profile model.onnx --ep cuda --recorded-on a100-pcie-40gb --replay\n  \
phantom-gpu profile resnet50.onnx --from-ort-profile onnxruntime_profile__2025-01-01.json --gpu a100";

fn parse_dims(dims: &[String]) -> Result<Vec<(String, u64)>> {
    dims.iter()
        .map(|d| {
            let (k, v) = d.split_once('=').ok_or_else(|| Error::Usage(format!("--dim {d}: expected NAME=N")))?;
            let n: u64 = v.trim().parse().ok().filter(|&n| n > 0).ok_or_else(|| Error::Usage(format!("--dim {d}: N must be a positive integer")))?;
            Ok((k.trim().to_string(), n))
        })
        .collect()
}

/// The CPU's model name, for the tags (Linux).
fn cpu_name() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
}

/// The registry key of the GPU a CUDA run used: --recorded-on, else nvidia-smi's name.
fn cuda_gpu(reg: &Registry, recorded_on: Option<&str>, device_id: i32, ran_here: bool) -> Result<String> {
    if let Some(g) = recorded_on {
        return Ok(reg.gpu(g)?.key().to_string());
    }
    if ran_here {
        let out = std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader", "-i", &device_id.to_string()]).output();
        if let Some(o) = out.ok().filter(|o| o.status.success()) {
            let name = String::from_utf8_lossy(&o.stdout).trim().to_string();
            return reg.gpu(&name).map(|g| g.key().to_string()).map_err(|_| {
                Error::Usage(format!("the CUDA device is '{name}', which is not a known GPU: name it with --recorded-on GPU (phantom-gpu list-gpus)"))
            });
        }
    }
    Err(Error::Usage("the profile ran on the CUDA execution provider: name its GPU with --recorded-on GPU".into()))
}

struct Profiled {
    json: String,
    label: String,
    /// How it was run, for the header.
    how: String,
    inputs: Vec<String>,
    ran_here: bool,
    source: String,
    warnings: Vec<String>,
}

fn run_or_read(args: &ProfileArgs, dims: &[(String, u64)]) -> Result<Profiled> {
    if let Some(p) = &args.from_ort_profile {
        let json = std::fs::read_to_string(p).map_err(|e| Error::Io { path: p.clone(), source: e })?;
        return Ok(Profiled {
            json,
            label: p.display().to_string(),
            how: format!("converted from the ONNX Runtime profile {}", p.display()),
            inputs: vec![],
            ran_here: false,
            source: "onnxruntime-profile".into(),
            warnings: vec![],
        });
    }
    if args.runs == 0 {
        return Err(Error::Usage("--runs must be at least 1".into()));
    }
    let opts = RunOptions {
        ep: args.ep,
        batch: args.batch,
        dims: dims.to_vec(),
        runs: args.runs,
        optimization: args.optimization,
        threads: args.threads,
        device_id: args.device_id,
    };
    let out = onnxrt::profile(&args.model, &opts)?;
    if let Some(path) = &args.save_ort_profile {
        std::fs::write(path, &out.profile_json).map_err(|e| Error::Io { path: path.clone(), source: e })?;
    }
    let version = out.ort_version.clone().unwrap_or_else(|| "?".into());
    Ok(Profiled {
        json: out.profile_json,
        label: "ONNX Runtime profile".into(),
        how: format!(
            "ONNX Runtime {version}, {}, optimisation {}, {} profiled run(s) after 1 warm-up",
            args.ep.provider(),
            args.optimization.name(),
            args.runs
        ),
        inputs: out.inputs.iter().map(|i| format!("{} {} {:?}", i.name, i.dtype, i.shape)).collect(),
        ran_here: true,
        source: out.ort_version.map(|v| format!("onnxruntime-{v}")).unwrap_or_else(|| "onnxruntime".into()),
        warnings: out.warnings,
    })
}

/// The model's node attributes; a file that is not a model is an error naming it.
fn model_info(path: &Path) -> Result<ModelInfo> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let m = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| Error::File { path: path.display().to_string(), msg: format!("not a valid ONNX model (protobuf: {e})") })?;
    if m.graph.as_ref().is_none_or(|g| g.node.is_empty()) {
        return Err(Error::File { path: path.display().to_string(), msg: "not an ONNX model: it has no graph nodes".into() });
    }
    Ok(ModelInfo::from_model(&m))
}

/// Everything `profile` computes, for the renderers and the tests.
pub struct ProfileResult {
    pub rows: Vec<CanonRow>,
    /// Per row, the prediction (ms) or the replay status, when replayed.
    pub predicted: Option<Vec<(Option<f64>, String)>>,
    pub target: Option<String>,
    pub recorded_on: String,
    pub header: Vec<String>,
    pub run_ms: Vec<f64>,
}

pub fn profile_rows(reg: &Registry, args: &ProfileArgs) -> Result<ProfileResult> {
    let dims = parse_dims(&args.dims)?;
    if args.batch == 0 {
        return Err(Error::Usage("--batch must be at least 1".into()));
    }
    let target = args.gpu.as_deref().map(|g| reg.gpu(g)).transpose()?;
    // A build or machine without ONNX Runtime says so first; then a malformed model fails
    // with its name before ONNX Runtime reads it.
    if args.from_ort_profile.is_none() {
        onnxrt::check_available()?;
    }
    let info = model_info(&args.model)?;
    let p = run_or_read(args, &dims)?;
    let prof = ort_profile::parse(&p.json, &p.label)?;
    let uses_cuda = prof.nodes.iter().any(|n| n.provider.contains("CUDA"));
    let gpu_key = if uses_cuda { Some(cuda_gpu(reg, args.recorded_on.as_deref(), args.device_id, p.ran_here)?) } else { None };
    let gpu_for = |provider: &str| -> String {
        match (&gpu_key, provider.contains("CUDA")) {
            (Some(g), true) => g.clone(),
            _ => "cpu".to_string(),
        }
    };
    let mut extra = vec![];
    if p.ran_here && args.ep == Ep::Cpu {
        if let Some(c) = cpu_name() {
            extra.push(("device".to_string(), c));
        }
    }
    let model = args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let rows = ort_profile::to_rows(&prof, Some(&info), &RowContext { gpu_for: &gpu_for, source: &p.source, model: &model, extra_tags: &extra });

    let recorded_on = match &gpu_key {
        Some(g) => g.clone(),
        None => format!("cpu{}", extra.first().map(|(_, c)| format!(" ({c})")).unwrap_or_default()),
    };
    let mut header = vec![format!("{}: {}", args.model.display(), p.how)];
    if !p.inputs.is_empty() {
        header.push(format!("inputs: {}", p.inputs.join(", ")));
    }
    header.extend(p.warnings.iter().map(|w| format!("warning: {w}")));
    if prof.runs_found >= 2 {
        header.push(format!("{} run(s) in the profile; the first is a warm-up and is left out", prof.runs_found));
    }

    let replay = args.replay || target.is_some();
    let predicted = if replay {
        if target.is_none() && gpu_key.is_none() {
            return Err(Error::Usage("the model ran on the CPU, which has no kernel model: pass --gpu GPU to predict the rows on a GPU".into()));
        }
        let csv = ort_profile::to_csv(&rows);
        let file = TraceFile::from_reader(Path::new("profile.kernels.csv"), csv.as_bytes())?;
        let out = crate::validate::replay_kernels(reg, &file, target, &|_| {});
        Some(out.into_iter().map(|r| (r.predicted_ms, r.status)).collect())
    } else {
        None
    };
    let target = target.map(|g| g.key().to_string()).or_else(|| if replay { gpu_key.clone() } else { None });
    if let Some(t) = &target {
        if gpu_key.as_deref() != Some(t.as_str()) {
            header.push(format!(
                "measured on {recorded_on}, predicted on {t}: {}",
                if gpu_key.is_none() { "a CPU profile has no GPU time, so this is a prediction, not a validation" } else { "a prediction for another GPU, not a validation" }
            ));
        } else {
            header.push(format!("measured and predicted on {t}: a validation of the kernel models"));
        }
    } else if gpu_key.is_none() {
        header.push("recorded on the CPU: no GPU profile; the rows say gpu=cpu (pass --gpu GPU to predict them on a GPU)".into());
    }
    if let Some(out) = &args.out {
        std::fs::write(out, ort_profile::to_csv(&rows)).map_err(|e| Error::Io { path: out.clone(), source: e })?;
        header.push(format!("wrote {} canonical rows to {}", rows.len(), out.display()));
    }
    Ok(ProfileResult { rows, predicted, target, recorded_on, header, run_ms: prof.run_ms })
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

pub fn profile(reg: &Registry, args: &ProfileArgs, format: Format) -> Result<String> {
    let r = profile_rows(reg, args)?;
    if format == Format::Csv {
        // The canonical rows, then (replayed) predicted_ms and status, as `replay --format csv`.
        let mut t = Table::new(&["gpu", "op", "dtype", "shape", "timing", "measured_ms", "source", "tags"]);
        if r.predicted.is_some() {
            t.headers.extend(["predicted_ms".to_string(), "status".to_string()]);
        }
        for (i, row) in r.rows.iter().enumerate() {
            let mut cells = vec![text(&row.gpu), text(&row.op), text(&row.dtype), text(&row.shape), text("kernel"), num(row.measured_ms), text(&row.source), text(&row.tags)];
            if let Some(p) = &r.predicted {
                cells.push(p[i].0.map(num).unwrap_or(Value::Null));
                cells.push(text(&p[i].1));
            }
            t.push(cells);
        }
        return Ok(t.render(Format::Csv));
    }
    // Per (ONNX op, canonical op): nodes, measured and predicted time.
    let total_ms: f64 = r.rows.iter().map(|x| x.measured_ms).sum();
    let mut groups: BTreeMap<(String, String), (usize, f64, f64, usize)> = BTreeMap::new();
    for (i, row) in r.rows.iter().enumerate() {
        let e = groups.entry((row.ort_op.clone(), row.op.clone())).or_default();
        e.0 += 1;
        e.1 += row.measured_ms;
        if let Some(Some(p)) = r.predicted.as_ref().map(|p| p[i].0) {
            e.2 += p;
            e.3 += 1;
        }
    }
    let mut order: Vec<_> = groups.into_iter().collect();
    order.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let mut headers = vec!["onnx_op", "op", "nodes", "measured_ms", "share_pct"];
    if r.predicted.is_some() {
        headers.extend(["predicted_ms", "predicted_nodes"]);
    }
    let mut t = Table::new(&headers);
    for ((ort_op, op), (n, ms, pred, npred)) in &order {
        let mut cells = vec![text(ort_op), text(op), Value::from(*n), num(*ms), num(if total_ms > 0.0 { 100.0 * ms / total_ms } else { 0.0 })];
        if r.predicted.is_some() {
            cells.extend([if *npred > 0 { num(*pred) } else { Value::Null }, Value::from(*npred)]);
        }
        t.push(cells);
    }
    let mapped: Vec<&CanonRow> = r.rows.iter().filter(|x| x.mapped).collect();
    let mapped_ms: f64 = mapped.iter().map(|x| x.measured_ms).sum();
    let predicted_total: Option<f64> = r.predicted.as_ref().map(|p| p.iter().filter_map(|x| x.0).sum());
    let predicted_rows = r.predicted.as_ref().map(|p| p.iter().filter(|x| x.0.is_some()).count());
    let mut unmapped: BTreeMap<String, (usize, f64, String)> = BTreeMap::new();
    for row in r.rows.iter().filter(|x| !x.mapped) {
        let e = unmapped.entry(row.ort_op.clone()).or_default();
        e.0 += 1;
        e.1 += row.measured_ms;
        e.2 = crate::trace::canonical::tag(&row.tags, "why").unwrap_or("").to_string();
    }
    if format == Format::Json {
        let v = json!({
            "model": args.model.display().to_string(),
            "recorded_on": r.recorded_on,
            "notes": r.header,
            "nodes": r.rows.len(),
            "mapped_nodes": mapped.len(),
            "measured_node_ms": total_ms,
            "mapped_measured_ms": mapped_ms,
            "run_ms_median": median(&r.run_ms),
            "target_gpu": r.target,
            "predicted_ms": predicted_total,
            "predicted_rows": predicted_rows,
            "unmapped": unmapped.iter().map(|(op, (n, ms, why))| json!({"onnx_op": op, "nodes": n, "measured_ms": ms, "why": why})).collect::<Vec<_>>(),
            "by_op": serde_json::from_str::<Value>(&t.render(Format::Json)).unwrap_or(Value::Null),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = r.header.iter().map(|l| l.to_string() + "\n").collect::<String>();
    let share = if total_ms > 0.0 { 100.0 * mapped_ms / total_ms } else { 0.0 };
    out += &format!(
        "nodes: {} profiled, {} mapped to kernel models ({share:.1}% of the measured node time), {} unmapped\n",
        r.rows.len(),
        mapped.len(),
        r.rows.len() - mapped.len()
    );
    for (op, (n, ms, why)) in &unmapped {
        out += &format!("  unmapped: {op} x{n}, {ms:.3} ms ({why})\n");
    }
    out += &format!("measured: {total_ms:.3} ms of node time (sum of per-node medians)");
    if let Some(m) = median(&r.run_ms) {
        out += &format!(", {m:.3} ms per run (median model_run)");
    }
    out += "\n";
    if let (Some(p), Some(t), Some(n)) = (predicted_total, &r.target, predicted_rows) {
        out += &format!("predicted on {t}: {p:.4} ms for the {n} rows with a kernel model (kernel time, no launch gaps)\n");
    }
    out += "\n";
    out += &t.render(format);
    if format == Format::Table {
        out += "\nPer-node rows: --out FILE (canonical trace) or --format csv (with predicted_ms and status when replayed).\n";
    }
    Ok(out)
}

//! PyTorch profiler (Kineto) traces: the Chrome-trace JSON that `torch.profiler` writes,
//! plain or gzip-compressed.
//!
//! Reading is streaming: the event array is walked one event at a time and only the
//! events replay needs are kept (GPU kernels, memcpys and memsets, CUDA runtime calls,
//! `cpu_op`s, `ProfilerStep#N` annotations, CPU→GPU flow events). Each GPU event is then
//! linked to the runtime call that launched it (`args.correlation`, or the `ac2g` flow
//! events when the correlation is missing) and through it to the stack of `cpu_op`s that
//! were open on the launching thread when the call was made.
//!
//! Invariant: a malformed or truncated file, or one without GPU events, is an error that
//! names the file; nothing here panics on input.

pub mod classify;

use crate::error::{Error, Result};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// What kind of GPU activity an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuKind {
    Kernel,
    Memcpy,
    Memset,
}

/// One GPU activity: a kernel, a memcpy or a memset (times in µs, as recorded).
#[derive(Debug, Clone)]
pub struct GpuEvent {
    pub name: String,
    pub kind: GpuKind,
    pub ts: f64,
    pub dur: f64,
    pub device: Option<i64>,
    pub stream: i64,
    pub grid: [u64; 3],
    pub block: [u64; 3],
    /// Bytes moved (memcpy, memset).
    pub bytes: Option<f64>,
    pub correlation: Option<i64>,
    /// Index of the runtime call that launched it (`KinetoTrace::runtime`).
    pub launch: Option<usize>,
}

impl GpuEvent {
    pub fn end(&self) -> f64 {
        self.ts + self.dur
    }
}

/// A CUDA runtime (or driver) call on a host thread.
#[derive(Debug, Clone)]
pub struct RuntimeCall {
    pub name: String,
    pub tid: String,
    pub ts: f64,
    pub dur: f64,
    pub correlation: Option<i64>,
    /// The `cpu_op`s open on the thread when the call was made, outermost first
    /// (indices into `KinetoTrace::cpu_ops`).
    pub ops: Vec<usize>,
}

/// One argument of a `cpu_op`, from its `Input Dims`.
#[derive(Debug, Clone, PartialEq)]
pub enum Dims {
    /// A tensor with these sizes (a 0-d tensor has none).
    Tensor(Vec<u64>),
    /// A list of tensors.
    List(Vec<Vec<u64>>),
    /// A scalar, `None`, or anything else without sizes.
    Scalar,
}

impl Dims {
    pub fn tensor(&self) -> Option<&[u64]> {
        match self {
            Dims::Tensor(d) if !d.is_empty() => Some(d),
            _ => None,
        }
    }
}

/// A framework operator (`cpu_op` event): name, interval and recorded inputs.
#[derive(Debug, Clone)]
pub struct CpuOp {
    pub name: String,
    pub tid: String,
    pub ts: f64,
    pub dur: f64,
    /// `Input Dims`, empty when not recorded.
    pub dims: Vec<Dims>,
    /// `Input type` (`float`, `c10::Half` …), empty when not recorded.
    pub types: Vec<String>,
    /// `Concrete Inputs` (scalar values as text), empty when not recorded.
    pub concrete: Vec<String>,
}

/// A `ProfilerStep#N` annotation on the host.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub ts: f64,
    pub dur: f64,
}

/// A parsed and linked Kineto trace.
#[derive(Debug, Clone)]
pub struct KinetoTrace {
    pub path: PathBuf,
    /// `deviceProperties[].name` by device id.
    pub devices: BTreeMap<i64, String>,
    /// `distributedInfo.world_size`, when recorded.
    pub world_size: Option<u64>,
    /// GPU events of the profiled device, sorted by start time.
    pub gpu: Vec<GpuEvent>,
    pub runtime: Vec<RuntimeCall>,
    pub cpu_ops: Vec<CpuOp>,
    pub steps: Vec<Step>,
}

/// True when a path names a Kineto trace (`.json` or `.json.gz`).
pub fn is_kineto_path(path: &Path) -> bool {
    let s = path.to_string_lossy().to_lowercase();
    s.ends_with(".json") || s.ends_with(".json.gz")
}

impl KinetoTrace {
    /// Reads a trace file, plain JSON or gzip (recognised by its magic bytes).
    pub fn read(path: &Path) -> Result<KinetoTrace> {
        let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        Self::from_reader(file, path)
    }

    /// Reads a trace from a stream, plain JSON or gzip (recognised by its magic bytes);
    /// `path` names it in errors.
    pub fn from_reader(mut r: impl Read, path: &Path) -> Result<KinetoTrace> {
        let mut magic = [0u8; 2];
        let n = read_prefix(&mut r, &mut magic).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let head = std::io::Cursor::new(magic[..n].to_vec());
        let gz = n == 2 && magic == [0x1f, 0x8b];
        let shown = path.display().to_string();
        let collected = if gz {
            let r = BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(BufReader::new(head.chain(r))));
            parse_reader(r, &shown, true)?
        } else {
            parse_reader(BufReader::with_capacity(1 << 16, head.chain(r)), &shown, false)?
        };
        collected.link(path)
    }

    /// Parses a trace from text (tests, tools).
    pub fn from_str(text: &str, name: &str) -> Result<KinetoTrace> {
        parse_reader(text.as_bytes(), name, false)?.link(Path::new(name))
    }

    /// The device the kernels ran on: the most common `args.device` of the GPU events.
    pub fn device_id(&self) -> Option<i64> {
        let mut count: BTreeMap<i64, usize> = BTreeMap::new();
        for e in &self.gpu {
            if let Some(d) = e.device {
                *count.entry(d).or_default() += 1;
            }
        }
        count.into_iter().max_by_key(|(_, n)| *n).map(|(d, _)| d)
    }

    /// The reported name of the device the kernels ran on.
    pub fn device_name(&self) -> Option<&str> {
        match self.device_id() {
            Some(d) => self.devices.get(&d).map(String::as_str),
            None => self.devices.values().next().map(String::as_str),
        }
    }

    /// The innermost-first stack of `cpu_op`s that launched a GPU event.
    pub fn op_stack(&self, e: &GpuEvent) -> impl Iterator<Item = (usize, &CpuOp)> {
        let ops: &[usize] = e.launch.map(|r| self.runtime[r].ops.as_slice()).unwrap_or(&[]);
        ops.iter().rev().map(move |&i| (i, &self.cpu_ops[i]))
    }
}

fn read_prefix(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = f.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

// ---------------------------------------------------------------------------------------
// Streaming parse

#[derive(Deserialize, Default)]
struct RawArgs {
    #[serde(default)]
    correlation: Option<Value>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    device: Option<Value>,
    #[serde(default)]
    grid: Option<Value>,
    #[serde(default)]
    block: Option<Value>,
    #[serde(default)]
    bytes: Option<Value>,
    #[serde(default, rename = "Input Dims")]
    dims: Option<Value>,
    #[serde(default, rename = "Input type")]
    types: Option<Value>,
    #[serde(default, rename = "Concrete Inputs")]
    concrete: Option<Value>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    ph: Option<String>,
    #[serde(default)]
    cat: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    pid: Option<Value>,
    #[serde(default)]
    tid: Option<Value>,
    #[serde(default)]
    ts: Option<Value>,
    #[serde(default)]
    dur: Option<Value>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    args: Option<RawArgs>,
}

#[derive(Deserialize)]
struct RawDevice {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawDist {
    #[serde(default)]
    world_size: Option<Value>,
}

fn num(v: &Option<Value>) -> Option<f64> {
    match v.as_ref()? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn int(v: &Option<Value>) -> Option<i64> {
    match v.as_ref()? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn key(v: &Option<Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// A launch dimension: what CUDA allows (grid.x < 2^31), else read as absent (1).
fn dim3(v: &Option<Value>) -> [u64; 3] {
    let mut d = [1u64; 3];
    if let Some(Value::Array(a)) = v {
        for (i, x) in a.iter().take(3).enumerate() {
            d[i] = x.as_u64().filter(|&n| n < 1 << 31).unwrap_or(1).max(1);
        }
    }
    d
}

/// Tensor sizes; a tensor of more elements than any GPU holds (`Op`'s limit) reads as
/// unrecorded, so that no product of its sizes overflows.
fn sizes(v: &Value) -> Option<Vec<u64>> {
    let d: Vec<u64> = v.as_array()?.iter().map(|x| x.as_i64().map(|i| i.max(0) as u64)).collect::<Option<_>>()?;
    let numel = d.iter().try_fold(1u64, |a, &x| a.checked_mul(x));
    numel.is_some_and(|n| n <= crate::kernel::op::MAX_ELEMENTS).then_some(d)
}

fn parse_dims(v: &Option<Value>) -> Vec<Dims> {
    let Some(Value::Array(args)) = v else { return vec![] };
    args.iter()
        .map(|a| match a {
            Value::Array(items) if items.iter().all(Value::is_number) => Dims::Tensor(sizes(a).unwrap_or_default()),
            Value::Array(items) if items.iter().all(Value::is_array) => Dims::List(items.iter().filter_map(sizes).collect()),
            _ => Dims::Scalar,
        })
        .collect()
}

fn strings(v: &Option<Value>) -> Vec<String> {
    let Some(Value::Array(a)) = v else { return vec![] };
    a.iter()
        .map(|x| match x {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
        .collect()
}

/// What the streaming pass keeps.
#[derive(Default)]
struct Collected {
    devices: BTreeMap<i64, String>,
    world_size: Option<u64>,
    gpu: Vec<GpuEvent>,
    runtime: Vec<RuntimeCall>,
    cpu_ops: Vec<CpuOp>,
    steps: Vec<Step>,
    /// Flow starts: id → (host tid, ts).
    flow_start: HashMap<i64, (String, f64)>,
    /// Flow ends: (pid, tid, ts bits) → id.
    flow_end: HashMap<(String, String, u64), i64>,
    /// pid and tid of each GPU event, for flow lookup.
    gpu_at: Vec<(String, String)>,
    events_seen: usize,
}

impl Collected {
    fn push(&mut self, e: RawEvent) {
        self.events_seen += 1;
        let cat = e.cat.as_deref().unwrap_or("").to_ascii_lowercase();
        let ph = e.ph.as_deref().unwrap_or("");
        if ph == "s" || ph == "f" {
            if matches!(cat.as_str(), "ac2g" | "async_cpu_to_gpu") {
                if let (Some(id), Some(ts)) = (int(&e.id), num(&e.ts)) {
                    if ph == "s" {
                        self.flow_start.insert(id, (key(&e.tid), ts));
                    } else {
                        self.flow_end.insert((key(&e.pid), key(&e.tid), ts.to_bits()), id);
                    }
                }
            }
            return;
        }
        if ph != "X" {
            return;
        }
        let (Some(ts), Some(name)) = (num(&e.ts), e.name) else { return };
        let dur = num(&e.dur).unwrap_or(0.0).max(0.0);
        let args = e.args.unwrap_or_default();
        let kind = match cat.as_str() {
            "kernel" => Some(GpuKind::Kernel),
            "gpu_memcpy" | "memcpy" => Some(GpuKind::Memcpy),
            "gpu_memset" | "memset" => Some(GpuKind::Memset),
            _ => None,
        };
        if let Some(kind) = kind {
            self.gpu_at.push((key(&e.pid), key(&e.tid)));
            self.gpu.push(GpuEvent {
                name,
                kind,
                ts,
                dur,
                device: int(&args.device).or_else(|| int(&e.pid)),
                stream: int(&args.stream).or_else(|| int(&e.tid)).unwrap_or(0),
                grid: dim3(&args.grid),
                block: dim3(&args.block),
                bytes: num(&args.bytes),
                correlation: int(&args.correlation),
                launch: None,
            });
            return;
        }
        match cat.as_str() {
            "cuda_runtime" | "cuda_driver" | "runtime" => self.runtime.push(RuntimeCall {
                name,
                tid: key(&e.tid),
                ts,
                dur,
                correlation: int(&args.correlation),
                ops: vec![],
            }),
            "cpu_op" | "operator" => self.cpu_ops.push(CpuOp {
                name,
                tid: key(&e.tid),
                ts,
                dur,
                dims: parse_dims(&args.dims),
                types: strings(&args.types),
                concrete: strings(&args.concrete),
            }),
            "user_annotation" if name.starts_with("ProfilerStep#") => self.steps.push(Step { name, ts, dur }),
            _ => {}
        }
    }

    fn link(mut self, path: &Path) -> Result<KinetoTrace> {
        let shown = path.display().to_string();
        if self.gpu.is_empty() {
            return Err(Error::File {
                path: shown,
                msg: if self.events_seen == 0 {
                    "no trace events (expected a PyTorch profiler trace: {\"traceEvents\": [...]})".into()
                } else {
                    format!(
                        "no GPU kernels among its {} events (was the profiler run with ProfilerActivity.CUDA?)",
                        self.events_seen
                    )
                },
            });
        }
        // Runtime call of each GPU event: by correlation id, else through the flow events.
        let by_corr: HashMap<i64, usize> =
            self.runtime.iter().enumerate().filter_map(|(i, r)| r.correlation.map(|c| (c, i))).collect();
        let by_host: HashMap<(String, u64), usize> =
            self.runtime.iter().enumerate().map(|(i, r)| ((r.tid.clone(), r.ts.to_bits()), i)).collect();
        for (e, (pid, tid)) in self.gpu.iter_mut().zip(&self.gpu_at) {
            e.launch = e.correlation.and_then(|c| by_corr.get(&c).copied()).or_else(|| {
                let id = self.flow_end.get(&(pid.clone(), tid.clone(), e.ts.to_bits()))?;
                let (htid, hts) = self.flow_start.get(id)?;
                by_host.get(&(htid.clone(), hts.to_bits())).copied()
            });
        }
        // The cpu_op stack open at each runtime call, per host thread: one sweep.
        let mut ops_by_tid: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, o) in self.cpu_ops.iter().enumerate() {
            ops_by_tid.entry(o.tid.as_str()).or_default().push(i);
        }
        let mut rt_by_tid: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, r) in self.runtime.iter().enumerate() {
            rt_by_tid.entry(r.tid.as_str()).or_default().push(i);
        }
        let mut stacks: Vec<(usize, Vec<usize>)> = vec![];
        for (tid, mut rts) in rt_by_tid {
            let mut ops = ops_by_tid.remove(tid).unwrap_or_default();
            ops.sort_by(|&a, &b| {
                let (a, b) = (&self.cpu_ops[a], &self.cpu_ops[b]);
                a.ts.total_cmp(&b.ts).then(b.dur.total_cmp(&a.dur))
            });
            rts.sort_by(|&a, &b| self.runtime[a].ts.total_cmp(&self.runtime[b].ts));
            let mut stack: Vec<usize> = vec![];
            let mut next = 0;
            for r in rts {
                let t = self.runtime[r].ts;
                while next < ops.len() && self.cpu_ops[ops[next]].ts <= t {
                    let o = ops[next];
                    let start = self.cpu_ops[o].ts;
                    while stack.last().is_some_and(|&s| self.cpu_ops[s].ts + self.cpu_ops[s].dur < start) {
                        stack.pop();
                    }
                    stack.push(o);
                    next += 1;
                }
                while stack.last().is_some_and(|&s| self.cpu_ops[s].ts + self.cpu_ops[s].dur < t) {
                    stack.pop();
                }
                // An op that ended before t can hide under one still open: keep only ops
                // that contain t.
                let open: Vec<usize> =
                    stack.iter().copied().filter(|&s| self.cpu_ops[s].ts + self.cpu_ops[s].dur >= t).collect();
                stacks.push((r, open));
            }
        }
        for (r, s) in stacks {
            self.runtime[r].ops = s;
        }
        self.gpu.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        self.steps.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        Ok(KinetoTrace {
            path: path.to_path_buf(),
            devices: self.devices,
            world_size: self.world_size,
            gpu: self.gpu,
            runtime: self.runtime,
            cpu_ops: self.cpu_ops,
            steps: self.steps,
        })
    }
}

struct EventsSeed<'a>(&'a mut Collected);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of trace events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while let Some(e) = seq.next_element::<RawEvent>()? {
            self.0.push(e);
        }
        Ok(())
    }
}

struct TopVisitor<'a>(&'a mut Collected);

impl<'de> Visitor<'de> for TopVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Chrome-trace object with \"traceEvents\" (or an array of events)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<(), A::Error> {
        EventsSeed(self.0).visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "traceEvents" => map.next_value_seed(EventsSeed(&mut *self.0))?,
                "deviceProperties" => {
                    let devs: Option<Vec<RawDevice>> = map.next_value()?;
                    for (i, d) in devs.unwrap_or_default().into_iter().enumerate() {
                        if let Some(n) = d.name {
                            self.0.devices.insert(int(&d.id).unwrap_or(i as i64), n);
                        }
                    }
                }
                "distributedInfo" => {
                    let info: Option<RawDist> = map.next_value()?;
                    self.0.world_size = info.and_then(|i| int(&i.world_size)).map(|w| w.max(1) as u64);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

fn parse_reader<R: Read>(r: R, shown: &str, gz: bool) -> Result<Collected> {
    let mut c = Collected::default();
    let mut de = serde_json::Deserializer::from_reader(r);
    let res = de.deserialize_any(TopVisitor(&mut c)).and_then(|_| de.end());
    res.map_err(|e| json_error(e, shown, gz))?;
    Ok(c)
}

fn json_error(e: serde_json::Error, shown: &str, gz: bool) -> Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => Error::File {
            path: shown.to_string(),
            msg: if gz { format!("corrupt or truncated gzip data: {e}") } else { format!("read error: {e}") },
        },
        Category::Eof => Error::File {
            path: shown.to_string(),
            msg: format!(
                "unexpected end of the JSON at line {} (the file is truncated{})",
                e.line(),
                if gz { ", or the gzip stream ended early" } else { "" }
            ),
        },
        _ => Error::Parse { path: shown.to_string(), line: e.line(), msg: format!("malformed trace JSON: {e}") },
    }
}

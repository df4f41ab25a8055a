//! Running an ONNX model under ONNX Runtime with its profiler on (Cargo feature `ort`).
//!
//! The runtime library is never linked or downloaded at build time: `ort`'s `load-dynamic`
//! mode opens the file named by `ORT_DYLIB_PATH` (`libonnxruntime.so.1.32.0`, e.g. from the
//! PyPI `onnxruntime` wheel) when `profile` first needs it. A build without the feature
//! still has [`profile`]; it returns an error saying how to get one that can run it.
//!
//! One profiled session: graph optimisations at the requested level, inputs of the declared
//! shapes (symbolic dimensions from `--dim NAME=N`, else the batch for a leading one),
//! filled with seeded uniform random floats in [0, 1) and zero integers (valid token ids
//! and indices), one warm-up run and `runs` profiled runs. ORT writes the profile as
//! `<prefix>_<date>.json`; the prefix is in a private temporary folder, removed afterwards.

use crate::error::{Error, Result};
use std::path::Path;

/// The execution provider a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ep {
    /// ONNX Runtime's CPU kernels (MLAS); the PyPI `onnxruntime` wheel has only these.
    Cpu,
    /// The CUDA execution provider (`onnxruntime-gpu`: libonnxruntime_providers_cuda.so and
    /// CUDA/cuDNN beside the library).
    Cuda,
}

impl Ep {
    pub fn provider(self) -> &'static str {
        match self {
            Ep::Cpu => "CPUExecutionProvider",
            Ep::Cuda => "CUDAExecutionProvider",
        }
    }
}

/// ONNX Runtime's graph optimisation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OptLevel {
    /// None: one profiled node per node of the file.
    Disable,
    /// Constant folding, redundant-node removal, Conv+BatchNorm and MatMul+Add fusions.
    Basic,
    /// Basic plus fusions into contrib ops (FusedConv = Conv+activation, FusedMatMul, Gelu…).
    Extended,
    /// Extended plus layout changes (NCHWc blocked convolutions on x86 CPUs).
    All,
}

impl OptLevel {
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::Disable => "disable",
            OptLevel::Basic => "basic",
            OptLevel::Extended => "extended",
            OptLevel::All => "all",
        }
    }
}

/// How to run the model.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub ep: Ep,
    /// Size of a symbolic leading dimension that `dims` does not name.
    pub batch: u64,
    /// Sizes of named symbolic dimensions (`--dim seq=128`).
    pub dims: Vec<(String, u64)>,
    /// Profiled runs after the warm-up run.
    pub runs: usize,
    pub optimization: OptLevel,
    /// Intra-op threads (None: ONNX Runtime's default, one per core).
    pub threads: Option<usize>,
    /// CUDA device ordinal.
    pub device_id: i32,
}

/// A model input as fed to the session.
#[derive(Debug, Clone)]
pub struct FedInput {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// What one profiled session produced.
#[derive(Debug, Clone)]
pub struct ProfileOutput {
    /// The JSON text ONNX Runtime's profiler wrote.
    pub profile_json: String,
    pub inputs: Vec<FedInput>,
    /// `1.32.0`, from the library's build string, when it says.
    pub ort_version: Option<String>,
    pub warnings: Vec<String>,
}

/// What to do about a build or machine without ONNX Runtime.
pub fn no_runtime_hint() -> &'static str {
    "the library is in the PyPI onnxruntime wheel: python3 -m pip download --no-deps onnxruntime==1.32.0, unzip the wheel \
     and point ORT_DYLIB_PATH at onnxruntime/capi/libonnxruntime.so.1.32.0"
}

/// Whether this build and machine can run ONNX Runtime: loads the library at
/// `ORT_DYLIB_PATH` (once per process) or says what is missing.
#[cfg(not(feature = "ort"))]
pub fn check_available() -> Result<()> {
    Err(no_ort_build())
}

/// Runs `model` with ONNX Runtime's profiler on.
#[cfg(not(feature = "ort"))]
pub fn profile(_model: &Path, _opts: &RunOptions) -> Result<ProfileOutput> {
    Err(no_ort_build())
}

#[cfg(not(feature = "ort"))]
fn no_ort_build() -> Error {
    Error::Unavailable(format!(
        "this build has no ONNX Runtime: rebuild with --features ort and set ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.32.0 \
         ({}), or convert a profile recorded elsewhere with --from-ort-profile FILE",
        no_runtime_hint()
    ))
}

#[cfg(feature = "ort")]
pub use with_ort::{check_available, profile};

/// Resolves the shape of a declared input: fixed dimensions as they are, symbolic ones
/// (`-1`) from `dims` by name, else the batch for the leading dimension.
pub fn resolve_shape(input: &str, declared: &[i64], symbols: &[String], batch: u64, dims: &[(String, u64)]) -> Result<Vec<i64>> {
    declared
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            if d >= 0 {
                return Ok(d);
            }
            let sym = symbols.get(i).map(String::as_str).unwrap_or("");
            if let Some((_, v)) = dims.iter().find(|(n, _)| !sym.is_empty() && n == sym) {
                return Ok(*v as i64);
            }
            if i == 0 {
                return Ok(batch as i64);
            }
            let shown = if sym.is_empty() { "unnamed".to_string() } else { format!("'{sym}'") };
            let flag = if sym.is_empty() { "NAME".to_string() } else { sym.to_string() };
            Err(Error::Usage(format!(
                "input '{input}': dimension {i} is symbolic ({shown}) and only a leading dimension takes the batch; pass --dim {flag}=N"
            )))
        })
        .collect()
}

#[cfg(feature = "ort")]
mod with_ort {
    use super::*;
    use std::path::PathBuf;
    use ort::environment::Environment;
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;
    use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
    use std::sync::OnceLock;

    /// A private scratch folder, removed when dropped.
    struct Scratch(PathBuf);
    
    impl Scratch {
        fn new() -> Result<Scratch> {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            let dir = std::env::temp_dir().join(format!("phantom-gpu-ort-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| Error::Io { path: dir.clone(), source: e })?;
            Ok(Scratch(dir))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn err(what: &str, e: impl std::fmt::Display) -> Error {
        Error::File { path: "ONNX Runtime".into(), msg: format!("{what}: {e}") }
    }

    /// The process's one ONNX Runtime environment, from the library at `ORT_DYLIB_PATH`.
    fn environment() -> Result<&'static Environment> {
        static ENV: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
        ENV.get_or_init(|| {
            let path = match std::env::var_os("ORT_DYLIB_PATH") {
                Some(p) if !p.is_empty() => PathBuf::from(p),
                _ => return Err(format!("ORT_DYLIB_PATH is not set: {}", no_runtime_hint())),
            };
            if !path.is_file() {
                return Err(format!("ORT_DYLIB_PATH={} is not a file: {}", path.display(), no_runtime_hint()));
            }
            let builder = ort::init_from(&path).map_err(|e| format!("cannot load ONNX Runtime from ORT_DYLIB_PATH={}: {e} ({})", path.display(), no_runtime_hint()))?;
            let env = builder.with_name("phantom-gpu").with_telemetry(false).build().map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
            env.set_log_level(ort::logging::LogLevel::Error);
            Ok(env)
        })
        .as_ref()
        .map_err(|m| Error::Unavailable(m.clone()))
    }

    pub fn check_available() -> Result<()> {
        environment().map(|_| ())
    }

    /// The library's version: from its file name (`libonnxruntime.so.1.32.0`), else a
    /// `rel-1.32.0` branch in its build string (release wheels say `HEAD`).
    fn version() -> Option<String> {
        let path = PathBuf::from(std::env::var_os("ORT_DYLIB_PATH")?);
        let name = path.file_name()?.to_string_lossy().into_owned();
        let from_name = name.split_once(".so.").map(|(_, v)| v.to_string()).filter(|v| v.split('.').all(|p| p.parse::<u32>().is_ok()));
        from_name.or_else(|| ort::info().split([',', ' ']).find_map(|w| w.strip_prefix("git-branch=rel-")).map(|v| v.trim().to_string()))
    }

    fn dtype_name(t: TensorElementType) -> &'static str {
        match t {
            TensorElementType::Float32 => "float",
            TensorElementType::Float64 => "double",
            TensorElementType::Float16 => "float16",
            TensorElementType::Bfloat16 => "bfloat16",
            TensorElementType::Int8 => "int8",
            TensorElementType::Uint8 => "uint8",
            TensorElementType::Int16 => "int16",
            TensorElementType::Uint16 => "uint16",
            TensorElementType::Int32 => "int32",
            TensorElementType::Uint32 => "uint32",
            TensorElementType::Int64 => "int64",
            TensorElementType::Uint64 => "uint64",
            TensorElementType::Bool => "bool",
            TensorElementType::String => "string",
            _ => "other",
        }
    }

    /// A tensor of `shape`: seeded uniform random floats, zero integers and `false`.
    fn make_input(name: &str, ty: TensorElementType, shape: &[i64], rng: &mut fastrand::Rng) -> Result<DynValue> {
        let numel: usize = shape.iter().map(|&d| d as usize).product();
        let e = |e: ort::Error| err(&format!("input '{name}'"), e);
        let shape = shape.to_vec();
        Ok(match ty {
            TensorElementType::Float32 => Tensor::from_array((shape, (0..numel).map(|_| rng.f32()).collect::<Vec<f32>>())).map_err(e)?.into_dyn(),
            TensorElementType::Float64 => Tensor::from_array((shape, (0..numel).map(|_| rng.f64()).collect::<Vec<f64>>())).map_err(e)?.into_dyn(),
            TensorElementType::Int64 => Tensor::from_array((shape, vec![0i64; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Int32 => Tensor::from_array((shape, vec![0i32; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Int16 => Tensor::from_array((shape, vec![0i16; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Int8 => Tensor::from_array((shape, vec![0i8; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Uint8 => Tensor::from_array((shape, vec![0u8; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Uint16 => Tensor::from_array((shape, vec![0u16; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Uint32 => Tensor::from_array((shape, vec![0u32; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Uint64 => Tensor::from_array((shape, vec![0u64; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Bool => Tensor::from_array((shape, vec![false; numel])).map_err(e)?.into_dyn(),
            TensorElementType::Float16 | TensorElementType::Bfloat16 => {
                // No 16-bit float type on this side: allocate and zero the bytes.
                let mut t = ort::value::DynTensor::new(&ort::memory::Allocator::default(), ty, shape).map_err(e)?;
                let bytes = numel * 2;
                // SAFETY: a freshly allocated CPU tensor of `numel` 2-byte elements.
                unsafe { std::ptr::write_bytes(t.data_ptr_mut().cast::<u8>(), 0, bytes) };
                t.into_dyn()
            }
            other => return Err(Error::Usage(format!("input '{name}' has element type {}, which profile cannot fill", dtype_name(other)))),
        })
    }

    pub fn profile(model: &Path, opts: &RunOptions) -> Result<ProfileOutput> {
        if !model.is_file() {
            return Err(Error::Io { path: model.to_path_buf(), source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file") });
        }
        let env = environment()?;
        let scratch = Scratch::new()?;
        let mut warnings = Vec::new();
        let level = match opts.optimization {
            OptLevel::Disable => GraphOptimizationLevel::Disable,
            OptLevel::Basic => GraphOptimizationLevel::Level1,
            OptLevel::Extended => GraphOptimizationLevel::Level2,
            OptLevel::All => GraphOptimizationLevel::All,
        };
        let shown = model.display().to_string();
        let fail = |what: &str, e: String| Error::File { path: shown.clone(), msg: format!("ONNX Runtime {what}: {e}") };
        let mut b = Session::builder(env).map_err(|e| fail("session options", e.to_string()))?;
        b = b.with_optimization_level(level).map_err(|e| fail("optimisation level", e.to_string()))?;
        b = b.with_profiling(scratch.0.join("ort_profile")).map_err(|e| fail("profiling", e.to_string()))?;
        if let Some(t) = opts.threads {
            b = b.with_intra_threads(t).map_err(|e| fail("threads", e.to_string()))?;
        }
        if opts.ep == Ep::Cuda {
            let cuda = ort::ep::CUDA::default().with_device_id(opts.device_id).build().error_on_failure();
            b = b.with_execution_providers([cuda]).map_err(|e| {
                fail(
                    "CUDA execution provider",
                    format!("{e} (the PyPI onnxruntime wheel is CPU only: use the library of onnxruntime-gpu, with CUDA and cuDNN installed)"),
                )
            })?;
        }
        let mut session = b.commit_from_file(model).map_err(|e| fail("cannot load the model", e.to_string()))?;

        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut fed = Vec::new();
        let mut values: Vec<(String, DynValue)> = Vec::new();
        let mut used_batch = false;
        for input in session.inputs() {
            let ValueType::Tensor { ty, shape, dimension_symbols } = input.dtype() else {
                return Err(Error::Usage(format!("{shown}: input '{}' is not a tensor (sequences and maps are not supported)", input.name())));
            };
            let declared: Vec<i64> = shape.iter().copied().collect();
            let symbols: Vec<String> = dimension_symbols.iter().map(|s| s.to_string()).collect();
            let resolved = resolve_shape(input.name(), &declared, &symbols, opts.batch, &opts.dims)?;
            used_batch |= declared.first() == Some(&-1) && !opts.dims.iter().any(|(n, _)| symbols.first() == Some(n));
            values.push((input.name().to_string(), make_input(input.name(), *ty, &resolved, &mut rng)?));
            fed.push(FedInput { name: input.name().to_string(), dtype: dtype_name(*ty).to_string(), shape: resolved });
        }
        if opts.batch != 1 && !used_batch {
            warnings.push(format!("the model's inputs have no symbolic leading dimension, so batch {} was not applied", opts.batch));
        }
        for i in 0..=opts.runs {
            let inputs: Vec<(&str, &DynValue)> = values.iter().map(|(n, v)| (n.as_str(), v)).collect();
            session.run(inputs).map_err(|e| fail(if i == 0 { "warm-up run" } else { "profiled run" }, e.to_string()))?;
        }
        let file = session.end_profiling().map_err(|e| fail("end of profiling", e.to_string()))?;
        drop(session);
        let file = PathBuf::from(file);
        let profile_json = std::fs::read_to_string(&file).map_err(|e| Error::Io { path: file.clone(), source: e })?;
        Ok(ProfileOutput { profile_json, inputs: fed, ort_version: version(), warnings })
    }
}

//! Command-line interface: clap definitions and printing; no simulation logic here.

mod commands;
mod cost_commands;
mod kineto_commands;
mod model_commands;
pub mod profile_commands;
mod serve_commands;

use crate::error::{Error, Result};
use crate::hw::Registry;
use crate::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "phantom-gpu",
    version,
    about = "Cycle-approximate GPU performance simulator for ML workloads",
    long_about = "Predicts how long ML kernels take on GPUs you do not have, from each GPU's \
                  published facts and its architecture's instruction rates, and checks itself \
                  against real measurements.",
    after_help = "Examples:\n  phantom-gpu list-gpus\n  phantom-gpu predict gemm --gpu a100,h100,4090 --dtype fp16 --shape m=4096,n=4096,k=4096\n  phantom-gpu replay ../shared/traces/vidur.kernels.csv --gpu h100 --format csv --output h100.csv\n  phantom-gpu validate --traces ../shared/traces --op gemm"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the output to FILE instead of standard output.
    #[arg(long, global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Add or override GPUs from a TOML file (our profile layout, `[gpu.<key>]` tables, or
    /// the original PhantomGPU `[profiles.<name>]` layout). May be repeated.
    #[arg(long = "hardware-profiles", global = true, value_name = "FILE")]
    pub hardware_profiles: Vec<PathBuf>,
    /// Apply a calibration overlay written by `phantom-gpu calibrate`.
    #[arg(long, global = true, value_name = "FILE")]
    pub calibration: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the GPUs the simulator knows (keys, aliases, memory, peak rates).
    #[command(after_help = "Example:\n  phantom-gpu list-gpus --format json")]
    ListGpus,
    /// List GPU hardware profiles; --verbose shows every fact with its source.
    #[command(after_help = "Example:\n  phantom-gpu list-hardware --verbose")]
    ListHardware {
        #[arg(long, short)]
        verbose: bool,
    },
    /// List the built-in models (zoo) with their parameter counts.
    #[command(after_help = "Example:\n  phantom-gpu list-models --format json")]
    ListModels,
    /// Load a model and show its parameters, forward FLOPs (batch 1) and op breakdown.
    #[command(after_help = "MODEL is a zoo name (see list-models).\n\nExamples:\n  phantom-gpu load-model --model resnet50\n  phantom-gpu load-model --model llama2-7b --format json")]
    LoadModel {
        #[arg(long)]
        model: String,
        /// Tokens per sequence for language models (default: the model's usual context).
        #[arg(long)]
        seq_len: Option<u64>,
    },
    /// Simulate one step of a model on one or more GPUs: time, throughput, memory, fit.
    #[command(after_help = "Examples:\n  phantom-gpu benchmark --model llama2-7b --gpu a100,h100 --batch-size 8 --seq-len 2048 --precision fp16\n  phantom-gpu benchmark --model bert-large --gpu v100 --batch-size 32 --mode training --precision fp32\n  phantom-gpu benchmark --model gpt2 --gpu 4090 --batch-size 16 --execution compiled --timeline gpt2.json\n  phantom-gpu benchmark --model llama3-8b --gpu l4 --batch-size 4 --seq-len 1 --past 4096 --format json\n  phantom-gpu benchmark --model llama2-7b --gpu a100,h100 --prompt-len 512 --output-len 128\n  phantom-gpu benchmark --model llama2-70b --gpu a100,h100 --tp 4 --prompt-len 512 --output-len 128 --execution eager")]
    Benchmark {
        #[arg(long)]
        model: String,
        /// GPU key or alias; several separated by commas.
        #[arg(long, value_delimiter = ',', required = true)]
        gpu: Vec<String>,
        #[arg(long, default_value = "1")]
        batch_size: u64,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        llm: serve_commands::LlmFlags,
        /// Write the predicted timeline as Chrome-trace JSON (open in Perfetto).
        #[arg(long, value_name = "FILE")]
        timeline: Option<PathBuf>,
        #[command(flatten)]
        cost: cost_commands::CostFlags,
    },
    /// Simulate an LLM server: Poisson arrivals, continuous batching, a paged KV cache;
    /// throughput and TTFT/TPOT/end-to-end latency percentiles.
    #[command(after_help = "Examples:\n  phantom-gpu serve-sim --model llama2-7b --gpu a100 --rate 4 --prompt-len 512 --output-len 128\n  phantom-gpu serve-sim --model llama3-8b --gpu h100,l4 --rate 2 --prompt-len 1024 --output-len 256 --prompt-len-dist exp --seed 7 --format json\n  phantom-gpu serve-sim --model llama2-7b --gpu a100,h100,l4 --rate 4 --prompt-len 512 --output-len 128 --plot serve.svg\n  phantom-gpu serve-sim --model llama2-70b --gpu a100,h100 --tp 4 --rate 1 --prompt-len 1024 --output-len 256")]
    ServeSim(serve_commands::ServeSimArgs),
    /// Simulate several models × GPUs × batch sizes: a table of time, throughput, memory, OOM.
    #[command(after_help = "Example:\n  phantom-gpu compare-models --models llama2-7b,bert-large,resnet50 --gpus v100,a100,4090 --batch-sizes 1,8,32")]
    CompareModels {
        #[arg(long, value_delimiter = ',', required = true)]
        models: Vec<String>,
        #[arg(long, value_delimiter = ',', required = true)]
        gpus: Vec<String>,
        #[arg(long, value_delimiter = ',', default_value = "1")]
        batch_sizes: Vec<u64>,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        cost: cost_commands::CostFlags,
        #[command(flatten)]
        report: cost_commands::ReportFlags,
    },
    /// Rank priced GPUs and multi-GPU cloud instances for a model by cost per unit of work,
    /// among those that fit in memory and meet the latency, throughput and budget targets.
    #[command(after_help = "Examples:\n  phantom-gpu recommend-gpu --model llama2-7b --batch-size 8 --seq-len 2048 --max-latency-ms 500\n  phantom-gpu recommend-gpu --model llama2-70b --precision fp16 --seq-len 1 --past 2048 --batch-size 16 --target-throughput 1000\n  phantom-gpu recommend-gpu --model resnet50 --batch-size 64 --budget 500 --per month --format json\n  phantom-gpu recommend-gpu --model bert-large --mode training --batch-size 32 --seq-len 512 --prices my_prices.toml")]
    RecommendGpu {
        #[arg(long)]
        model: String,
        /// Batch per copy of the model (an instance with several copies runs one batch each).
        #[arg(long, default_value = "1")]
        batch_size: u64,
        #[command(flatten)]
        run: RunFlags,
        #[command(flatten)]
        flags: cost_commands::RecommendFlags,
    },
    /// List the cloud prices the cost commands use, with region, date and source.
    #[command(after_help = "Examples:\n  phantom-gpu list-prices\n  phantom-gpu list-prices --gpu h100,a100 --pricing any\n  phantom-gpu list-prices --prices my_prices.toml --format json")]
    ListPrices {
        /// Only these GPUs (keys or aliases, separated by commas).
        #[arg(long, value_delimiter = ',')]
        gpu: Vec<String>,
        #[command(flatten)]
        prices: cost_commands::PriceFlags,
    },
    /// Predict one kernel on one or more GPUs.
    #[command(after_help = "Shape keys per op:\n  gemm         b,m,n,k,bias\n  conv2d       n,c,h,w,k,r,s,stride,pad\n  attention    b,hq,hkv,sq,skv,d,causal\n  elementwise  fn,numel,inputs\n  softmax|layernorm|rmsnorm  rows,cols\n  silu_mul     tokens,cols\n  rope         tokens,hq,hkv,d\n  embedding    tokens,dim,vocab\n  all_reduce|send_recv  bytes,gpus,nodes,gpus_per_node\n\nExamples:\n  phantom-gpu predict gemm --gpu a100,h100 --dtype fp16 --shape m=4096,n=4096,k=4096\n  phantom-gpu predict attention --gpu h100 --dtype bf16 --shape b=8,hq=32,hkv=8,sq=1,skv=4096,d=128\n  phantom-gpu predict conv2d --gpu t4 --dtype fp32 --shape n=32,c=64,h=56,w=56,k=64,r=3,s=3,stride=1,pad=1 --format json")]
    Predict {
        /// Kernel kind: gemm, conv2d, attention, elementwise, softmax, layernorm, rmsnorm,
        /// silu_mul, rope, embedding, all_reduce, send_recv.
        op: String,
        /// GPU key or alias; several separated by commas.
        #[arg(long, value_delimiter = ',', required = true)]
        gpu: Vec<String>,
        /// Operand dtype: fp32, tf32, fp16, bf16, fp8, int8.
        #[arg(long, default_value = "fp16")]
        dtype: String,
        /// Shape as key=value pairs separated by commas or semicolons.
        #[arg(long)]
        shape: String,
        /// `kernel` (GPU time only) or `op` (plus the host cost of one eager PyTorch call).
        #[arg(long, default_value = "kernel")]
        timing: String,
        /// For gemm: list every tile and split-k the selector weighed, fastest first.
        #[arg(long)]
        candidates: bool,
    },
    /// Predict every row of canonical trace files, on each row's GPU or on --gpu.
    #[command(after_help = "With --format csv the output has every input column unchanged, then\n`predicted_ms`, `status` (empty when simulated, otherwise the reason), `tile` (the kernel\nor algorithm the model picked) and `bound` (what limits it), one row per input row.\n\nExamples:\n  phantom-gpu replay ../shared/traces/neusight.kernels.csv --format csv --output out.csv\n  phantom-gpu replay ../shared/traces/vidur.kernels.csv --gpu h100\n\nPyTorch profiler (Kineto) traces, .json or .json.gz: per-category measured vs predicted\ntotals, GPU busy time and step times; --format csv gives one row per GPU kernel.\n  phantom-gpu replay ../shared/traces/kineto/alexnet-a100.json.gz\n  phantom-gpu replay trace.json.gz --gpu h100 --timeline h100.json\n  phantom-gpu replay trace.json.gz --recorded-on a100-40gb")]
    Replay {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Predict on this GPU instead of the one each row names.
        #[arg(long)]
        gpu: Option<String>,
        /// Kineto traces: the GPU the trace was recorded on (overrides its deviceProperties).
        #[arg(long, value_name = "GPU")]
        recorded_on: Option<String>,
        /// Kineto traces: write the predicted timeline as Chrome-trace JSON (open in Perfetto).
        #[arg(long, value_name = "FILE")]
        timeline: Option<PathBuf>,
    },
    /// Run an ONNX model under ONNX Runtime with profiling on, convert the per-node profile
    /// into canonical kernel rows with shapes, and optionally predict them on a GPU.
    #[command(after_help = profile_commands::AFTER_HELP)]
    Profile(profile_commands::ProfileArgs),
    /// Replay every trace in a folder and report the error against the measurements.
    #[command(after_help = "Examples:\n  phantom-gpu validate\n  phantom-gpu validate --traces ../shared/traces --gpu t4 --op gemm\n  phantom-gpu validate --leave-one-gpu-out --format csv")]
    Validate {
        /// Folder of canonical traces (default: ../shared/traces, or $PHANTOM_TRACES).
        #[arg(long)]
        traces: Option<PathBuf>,
        /// Only rows of this GPU.
        #[arg(long)]
        gpu: Option<String>,
        /// Only rows of this op.
        #[arg(long)]
        op: Option<String>,
        /// Refit the fitted parameters without each GPU in turn and score that GPU.
        #[arg(long)]
        leave_one_gpu_out: bool,
        /// Also report the tile selector's agreement with the kernel names in the traces (cuBLAS
        /// tiles for GEMMs, cuDNN algorithms for convolutions).
        #[arg(long)]
        tiles: bool,
        /// Also score the fit rows (one row in ten), which the fitted parameters saw.
        #[arg(long)]
        include_fit_rows: bool,
        /// Score whole-model traces (`*.models.csv`) instead, beside the baselines'
        /// predictions, and the per-op sums of `*.model_ops.csv` against the whole model.
        #[arg(long)]
        models: bool,
    },
    /// Calibrate the efficiency parameters and host costs on your own measurements
    /// (canonical trace CSV or PyTorch profiler traces), score it by 5-fold
    /// cross-validation, and write an overlay.
    #[command(after_help = "Every row is scored by a calibration that did not see it (5 folds); the\noverlay is then fitted on all rows. Apply it with --calibration FILE on any command.\nFrom a PyTorch profiler trace, the kernels whose shapes it recorded are used (one row\nper op: its kernels' summed time), on the GPU its deviceProperties name.\n\nExamples:\n  phantom-gpu calibrate --traces my_gemms.csv --out calibration.toml\n  phantom-gpu calibrate --traces train_step.json.gz --out calibration.toml\n  phantom-gpu benchmark --model llama2-7b --gpu a100 --calibration calibration.toml")]
    Calibrate {
        /// Canonical kernel trace files (`gpu,op,dtype,shape,timing,measured_ms,…`) or
        /// PyTorch profiler (Kineto) traces (`.json`, `.json.gz`).
        #[arg(long, required = true, num_args = 1..)]
        traces: Vec<PathBuf>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value = "3")]
        sweeps: usize,
    },
    /// Fit the per-architecture efficiency parameters and the host launch cost on the fit
    /// rows of the traces (one row in ten), and optionally write them into isa/ and kernels/.
    #[command(after_help = "Examples:\n  phantom-gpu fit --traces ../shared/traces\n  phantom-gpu fit --traces ../shared/traces --write .")]
    Fit {
        #[arg(long)]
        traces: Option<PathBuf>,
        /// Write the values into REPO/isa/*.toml and REPO/kernels/launch.toml.
        #[arg(long, value_name = "REPO")]
        write: Option<PathBuf>,
        /// Coordinate-descent sweeps.
        #[arg(long, default_value = "4")]
        sweeps: usize,
    },
}

/// How a model runs (shared by benchmark and compare-models).
#[derive(Args, Debug, Clone)]
pub struct RunFlags {
    /// Tokens per sequence (prompt length in prefill; 1 for a decode step).
    #[arg(long)]
    pub seq_len: Option<u64>,
    /// Tokens already in the KV cache (decode steps of decoder LLMs).
    #[arg(long, default_value = "0")]
    pub past: u64,
    /// fp32, tf32, fp16, bf16, fp8, int8, or int4 (weight-only, fp16 compute).
    #[arg(long, default_value = "fp16")]
    pub precision: String,
    #[arg(long, value_enum, default_value = "inference")]
    pub mode: crate::lower::Mode,
    /// eager (PyTorch, one host call per kernel), compiled (fused pointwise chains) or
    /// cuda-graphs (no per-kernel host cost). Default: eager for a model step, as PyTorch
    /// runs it; cuda-graphs for a generation (--prompt-len/--output-len), as vLLM,
    /// TensorRT-LLM and llama.cpp run decode.
    #[arg(long, value_enum)]
    pub execution: Option<crate::lower::Execution>,
    /// Attention implementation: auto (FlashAttention where PyTorch SDPA would use it), flash, eager.
    #[arg(long, value_enum, default_value = "auto")]
    pub attention: crate::lower::AttentionImpl,
    /// Training without the optimizer step (forward + backward only).
    #[arg(long)]
    pub no_optimizer: bool,
    /// Data-parallel replicas (the batch size is global; gradients are all-reduced).
    #[arg(long, default_value = "1")]
    pub dp: u64,
    /// Tensor-parallel degree (Megatron-style: heads, FFN and vocabulary split, an
    /// all-reduce after each row-parallel projection).
    #[arg(long, default_value = "1")]
    pub tp: u64,
    /// Pipeline stages.
    #[arg(long, default_value = "1")]
    pub pp: u64,
    /// Micro-batches per step (pipeline parallelism).
    #[arg(long, default_value = "1")]
    pub micro_batches: u64,
    /// GPUs per node for collectives (NVLink/PCIe inside a node, the network across).
    #[arg(long, default_value = "8")]
    pub gpus_per_node: u64,
}

impl RunFlags {
    fn args(&self) -> model_commands::RunArgs {
        model_commands::RunArgs {
            seq_len: self.seq_len,
            past: self.past,
            precision: self.precision.clone(),
            mode: self.mode,
            execution: self.execution.unwrap_or(crate::lower::Execution::Eager),
            attention: self.attention,
            no_optimizer: self.no_optimizer,
            parallel: self.parallel(),
        }
    }

    /// The GPU layout the flags describe.
    fn parallel(&self) -> crate::lower::Parallel {
        crate::lower::Parallel { dp: self.dp, tp: self.tp, pp: self.pp, micro_batches: self.micro_batches, gpus_per_node: self.gpus_per_node }
    }
}

/// Runs the parsed command; returns the text to print.
pub fn run(cli: Cli) -> Result<()> {
    let mut reg = Registry::builtin()?;
    for f in &cli.global.hardware_profiles {
        reg.add_file(f)?;
    }
    for w in &reg.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(path) = &cli.global.calibration {
        crate::validate::calibrate::apply(&mut reg, path)?;
    }
    let (out, failure) = match command(&cli, &reg) {
        Ok(out) => (out, None),
        // The table that shows the model fits nowhere is still the output.
        Err(Error::DoesNotFit { report, msg }) => (report, Some(Error::DoesNotFit { report: String::new(), msg })),
        Err(e) => return Err(e),
    };
    match &cli.global.output {
        Some(path) => std::fs::write(path, out).map_err(|e| Error::Write { path: path.clone(), source: e })?,
        None => {
            use std::io::Write;
            let mut so = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = so.write_all(out.as_bytes());
        }
    }
    failure.map_or(Ok(()), Err)
}

/// The output of the parsed command.
fn command(cli: &Cli, reg: &Registry) -> Result<String> {
    Ok(match &cli.command {
        Command::ListGpus => commands::list_gpus(reg, false, cli.global.format),
        Command::ListHardware { verbose } => commands::list_gpus(reg, *verbose, cli.global.format),
        Command::Predict { op, gpu, dtype, shape, timing, candidates } => {
            if *candidates {
                commands::gemm_candidates(reg, op, gpu, dtype, shape, timing, cli.global.format)?
            } else {
                commands::predict(reg, op, gpu, dtype, shape, timing, cli.global.format)?
            }
        }
        Command::Calibrate { traces, out, sweeps } => commands::calibrate(reg, traces, out, *sweeps, cli.global.format)?,
        Command::ListModels => model_commands::list_models(cli.global.format)?,
        Command::LoadModel { model, seq_len } => model_commands::load_model(model, *seq_len, cli.global.format)?,
        Command::Benchmark { model, gpu, batch_size, run, llm, timeline, .. } if llm.active() => {
            serve_commands::benchmark(reg, model, gpu, *batch_size, run, llm, timeline.as_ref(), cli.global.format)?
        }
        Command::Benchmark { model, gpu, batch_size, run, timeline, cost, .. } if cost.active() => {
            cost_commands::benchmark(reg, model, gpu, *batch_size, &run.args(), timeline.as_ref(), cost, cli.global.format)?
        }
        Command::Benchmark { model, gpu, batch_size, run, timeline, .. } => {
            model_commands::benchmark(reg, model, gpu, *batch_size, &run.args(), timeline.as_ref(), cli.global.format)?
        }
        Command::ServeSim(args) => serve_commands::serve_sim(reg, args, cli.global.format)?,
        Command::CompareModels { models, gpus, batch_sizes, run, cost, report } if cost.active() || report.active() => {
            cost_commands::compare_models(reg, models, gpus, batch_sizes, &run.args(), cost, report, cli.global.format)?
        }
        Command::RecommendGpu { model, batch_size, run, flags } => {
            cost_commands::recommend_gpu(reg, model, *batch_size, &run.args(), flags, cli.global.format)?
        }
        Command::ListPrices { gpu, prices } => cost_commands::list_prices(reg, gpu, prices, cli.global.format)?,
        Command::CompareModels { models, gpus, batch_sizes, run, .. } => {
            model_commands::compare_models(reg, models, gpus, batch_sizes, &run.args(), cli.global.format)?
        }
        Command::Replay { files, gpu, recorded_on, timeline } => {
            if kineto_commands::is_kineto(files)? {
                kineto_commands::replay(reg, files, gpu.as_deref(), recorded_on.as_deref(), timeline.as_ref(), cli.global.format)?
            } else if recorded_on.is_some() || timeline.is_some() {
                return Err(Error::Usage("--recorded-on and --timeline apply to Kineto traces (.json, .json.gz)".into()));
            } else {
                commands::replay(reg, files, gpu.as_deref(), cli.global.format)?
            }
        }
        Command::Profile(args) => profile_commands::profile(reg, args, cli.global.format)?,
        Command::Validate { traces, gpu, models: true, .. } => {
            let dir = traces.clone().unwrap_or_else(commands::default_traces);
            let g = gpu.as_deref().map(|g| reg.gpu(g).map(|x| x.key().to_string())).transpose()?;
            model_commands::validate_models(reg, &dir, g.as_deref(), cli.global.format)?
        }
        Command::Validate { traces, gpu, op, leave_one_gpu_out, tiles, include_fit_rows, .. } => commands::validate(
            reg,
            &commands::ValidateOptions {
                traces: traces.clone(),
                gpu: gpu.clone(),
                op: op.clone(),
                leave_one_gpu_out: *leave_one_gpu_out,
                tiles: *tiles,
                include_fit_rows: *include_fit_rows,
            },
            cli.global.format,
        )?,
        Command::Fit { traces, write, sweeps } => commands::fit(reg.clone(), traces.clone(), write.clone(), *sweeps, cli.global.format)?,
    })
}

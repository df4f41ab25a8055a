//! What each GPU event of a Kineto trace is: its category, and the `kernel::Op` (with
//! its shape) that predicts it, or why none does.
//!
//! Shapes come, in this order of preference, from:
//! 1. the `Input Dims` of the launching `cpu_op` (exact): `aten::mm/addmm/bmm/baddbmm/
//!    linear/matmul`, convolutions (forward and `convolution_backward`), `_softmax`,
//!    `native_layer_norm`, `rms_norm`, `embedding`, scaled-dot-product / flash attention,
//!    element-wise aten ops. All kernels that op launched form one *op group*; the op's
//!    prediction is compared with the group's summed kernel time. A GEMM op whose group
//!    is one tiled GEMM kernel plus cuBLAS helper kernels (`splitKreduce_kernel`,
//!    cuBLASLt's bias `epilogue::impl::globalKernel`) is split instead: the trace records
//!    which kernels ran, so the GEMM kernel is predicted from the op's shape (its recorded
//!    tile and split-k kept as `Launch`) and each helper as an element-wise pass over the
//!    output (`Helper`), and each is scored against its own kernel.
//! 2. the launch of PyTorch's own element-wise kernels (`elementwise_kernel<nt, vt>`,
//!    `vectorized_/unrolled_elementwise_kernel`): elements ≈ grid.x × elements per block
//!    (an upper bound: the last block may be partial), with the function and arity from
//!    the launching aten op's name. The arity counts every tensor operand as full-size,
//!    so a broadcast operand (a bias) is over-counted.
//! 3. the bytes of a device-to-device memcpy (a copy of bytes/4 fp32 elements).
//! 4. for tiled matrix kernels without recorded shapes (cuBLAS `*_sgemm_128x64_nn`,
//!    cuDNN `*_scudnn_128x64_*`, CUTLASS / xmma `tilesize128x128x16` …): m ≈ grid.x × tile
//!    rows, n ≈ grid.y × tile columns, batch (or split-k) = grid.z. The launch does not
//!    reveal the reduction dimension k, so replay infers k from the recorded time on the
//!    recorded GPU and predicts other GPUs with it: a retargeting, never a validation.
//!
//! Anything else keeps its measured time (see `Scale` for how it moves to another GPU).

use super::{CpuOp, GpuEvent, GpuKind, KinetoTrace};
use crate::kernel::{Dtype, Op};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Gemm,
    Conv,
    Attention,
    Elementwise,
    Reduction,
    Norm,
    Softmax,
    Embedding,
    Optimizer,
    Collective,
    Memcpy,
    Memset,
    Other,
}

impl Category {
    pub const ALL: [Category; 13] = [
        Category::Gemm,
        Category::Conv,
        Category::Attention,
        Category::Elementwise,
        Category::Reduction,
        Category::Norm,
        Category::Softmax,
        Category::Embedding,
        Category::Optimizer,
        Category::Collective,
        Category::Memcpy,
        Category::Memset,
        Category::Other,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Category::Gemm => "gemm",
            Category::Conv => "conv",
            Category::Attention => "attention",
            Category::Elementwise => "elementwise",
            Category::Reduction => "reduction",
            Category::Norm => "norm",
            Category::Softmax => "softmax",
            Category::Embedding => "embedding",
            Category::Optimizer => "optimizer",
            Category::Collective => "collective",
            Category::Memcpy => "memcpy",
            Category::Memset => "memset",
            Category::Other => "other",
        }
    }
}

/// How a kernel that keeps its measured time moves to another GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Compute-like (matrix kernels without a shape): by the ratio of peak math rates in
    /// this dtype (tensor cores where the GPU has them for it, else the FMA pipe).
    Compute(Dtype),
    /// Memory-like (everything else on the SMs, memsets, device copies): by the ratio of
    /// sustained DRAM bandwidth.
    Dram,
    /// NCCL collectives: by the ratio of NVLink bandwidth per direction (PCIe when a GPU
    /// has no NVLink).
    Interconnect,
    /// Pinned host↔device copies: by the ratio of PCIe bandwidth.
    Pcie,
    /// Pageable host↔device copies: bound by the host's staging copy; unchanged.
    Host,
}

impl Scale {
    pub fn name(self) -> String {
        match self {
            Scale::Compute(d) => format!("{d} peak-rate ratio"),
            Scale::Dram => "DRAM-bandwidth ratio".into(),
            Scale::Interconnect => "interconnect-bandwidth ratio".into(),
            Scale::Pcie => "PCIe-bandwidth ratio".into(),
            Scale::Host => "unchanged (host-bound)".into(),
        }
    }
}

/// Where an op's shape came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The launching `cpu_op`'s `Input Dims`.
    InputDims,
    /// The kernel's launch grid (PyTorch element-wise kernels).
    Grid,
    /// The bytes of a memcpy.
    Bytes,
}

/// The launch of a recorded GEMM kernel: the tile its name states (the name without the
/// layout suffix, `volta_sgemm_32x32_sliced1x4`) and its split-k factor (grid.z of a
/// non-batched GEMM).
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub tile: String,
    pub split: u64,
}

/// A cuBLAS helper kernel that an op launched beside its GEMM kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    /// `splitKreduce_kernel`: sums the split-k partial products.
    SplitKReduce,
    /// cuBLASLt's `epilogue::impl::globalKernel`: adds the bias (summing split-k partials
    /// first when the GEMM kernel split k) in a pass of its own.
    Epilogue,
}

impl Helper {
    pub fn of_name(name: &str) -> Option<Helper> {
        let l = name.to_ascii_lowercase();
        if l.contains("splitkreduce") {
            Some(Helper::SplitKReduce)
        } else if l.contains("epilogue::impl") {
            Some(Helper::Epilogue)
        } else {
            None
        }
    }
}

/// How replay predicts one GPU event.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// The lead kernel of an op group: the op's prediction (× `times`) covers the group.
    /// `launch`: for a GEMM kernel, the recorded tile and split-k (see `Launch`).
    Op { op: Op, dtype: Dtype, times: f64, source: Source, members: Vec<usize>, launch: Option<Launch> },
    /// Another kernel of the op group led by event `lead`.
    Member { lead: usize },
    /// A cuBLAS helper kernel of the GEMM op led by `lead`, predicted as the element-wise
    /// pass `op` over the GEMM's output (see `Helper`).
    Helper { lead: usize, helper: Helper, op: Op, dtype: Dtype },
    /// A tiled matrix kernel without a recorded shape: m, n, batch from tile × grid; k
    /// to be inferred from the recorded time.
    TileGrid { b: u64, m: u64, n: u64, dtype: Dtype },
    /// Not mapped: measured time, moved to other GPUs by `scale`.
    Kept { scale: Scale, why: String },
}

/// One GPU event, classified.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub category: Category,
    /// The innermost known framework op that launched it (`aten::addmm` …), or "".
    pub op_name: String,
    pub work: Work,
    /// Assumptions made on the way (shown in the status column).
    pub note: String,
}

/// What a known framework op is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OpKind {
    Gemm,
    Conv,
    ConvBackward,
    Attention,
    Softmax,
    Norm,
    Embedding,
    Reduction,
    Optimizer,
    Collective,
    /// Element-wise: the function (for its arithmetic) and its tensor operands (0 for
    /// write-only fills).
    Elementwise(&'static str, u64),
}

impl OpKind {
    fn category(self) -> Category {
        match self {
            OpKind::Gemm => Category::Gemm,
            OpKind::Conv | OpKind::ConvBackward => Category::Conv,
            OpKind::Attention => Category::Attention,
            OpKind::Softmax => Category::Softmax,
            OpKind::Norm => Category::Norm,
            OpKind::Embedding => Category::Embedding,
            OpKind::Reduction => Category::Reduction,
            OpKind::Optimizer => Category::Optimizer,
            OpKind::Collective => Category::Collective,
            OpKind::Elementwise(..) => Category::Elementwise,
        }
    }
}

fn op_kind(name: &str) -> Option<OpKind> {
    if name.starts_with("nccl:") || name.starts_with("c10d::") || name == "record_param_comms" {
        return Some(OpKind::Collective);
    }
    let n = name.strip_prefix("aten::")?;
    if n.starts_with("_foreach_") || n.starts_with("_fused_adam") || n.starts_with("_fused_sgd") {
        return Some(OpKind::Optimizer);
    }
    Some(match n {
        "mm" | "addmm" | "bmm" | "baddbmm" | "matmul" | "linear" | "addmv" | "mv" | "_addmm_activation" | "dot" => OpKind::Gemm,
        "conv1d" | "conv2d" | "conv3d" | "convolution" | "_convolution" | "cudnn_convolution" | "cudnn_convolution_relu"
        | "cudnn_convolution_add_relu" | "conv_transpose2d" | "cudnn_convolution_transpose" => OpKind::Conv,
        "convolution_backward" | "cudnn_convolution_backward" | "convolution_backward_overrideable" => OpKind::ConvBackward,
        "scaled_dot_product_attention"
        | "_scaled_dot_product_flash_attention"
        | "_scaled_dot_product_efficient_attention"
        | "_scaled_dot_product_cudnn_attention"
        | "_flash_attention_forward"
        | "_efficient_attention_forward"
        | "_scaled_dot_product_flash_attention_backward"
        | "_scaled_dot_product_efficient_attention_backward"
        | "_flash_attention_backward"
        | "_efficient_attention_backward" => OpKind::Attention,
        "softmax" | "_softmax" | "log_softmax" | "_log_softmax" | "_softmax_backward_data" | "_log_softmax_backward_data" => {
            OpKind::Softmax
        }
        "layer_norm" | "native_layer_norm" | "native_layer_norm_backward" | "batch_norm" | "native_batch_norm"
        | "cudnn_batch_norm" | "_batch_norm_impl_index" | "native_batch_norm_backward" | "cudnn_batch_norm_backward"
        | "group_norm" | "native_group_norm" | "native_group_norm_backward" | "rms_norm" | "_fused_rms_norm" => OpKind::Norm,
        "embedding" | "embedding_backward" | "embedding_dense_backward" | "embedding_bag" | "_embedding_bag"
        | "_embedding_bag_backward" | "_embedding_bag_dense_backward" => OpKind::Embedding,
        "sum" | "mean" | "amax" | "amin" | "max" | "min" | "argmax" | "argmin" | "norm" | "linalg_vector_norm" | "var"
        | "std" | "var_mean" | "std_mean" | "prod" | "all" | "any" | "logsumexp" | "nll_loss" | "nll_loss_forward"
        | "nll_loss_backward" | "cross_entropy_loss" | "max_pool2d" | "max_pool2d_with_indices" | "avg_pool2d"
        | "adaptive_avg_pool2d" | "_adaptive_avg_pool2d" | "max_pool2d_with_indices_backward" | "avg_pool2d_backward"
        | "_adaptive_avg_pool2d_backward" => OpKind::Reduction,
        "add" | "add_" | "sub" | "sub_" | "rsub" | "maximum" | "minimum" | "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            OpKind::Elementwise("add", 2)
        }
        "mul" | "mul_" => OpKind::Elementwise("mul", 2),
        "div" | "div_" => OpKind::Elementwise("div", 2),
        "pow" | "pow_" => OpKind::Elementwise("pow", 2),
        "where" => OpKind::Elementwise("where", 3),
        "addcmul" | "addcmul_" | "addcdiv" | "addcdiv_" | "lerp" | "lerp_" => OpKind::Elementwise("mul", 3),
        "threshold_backward" | "sigmoid_backward" | "tanh_backward" | "gelu_backward" | "silu_backward"
        | "hardtanh_backward" | "leaky_relu_backward" | "masked_fill" | "masked_fill_" => OpKind::Elementwise("mul", 2),
        "relu" | "relu_" | "clamp" | "clamp_" | "clamp_min" | "clamp_min_" | "clamp_max" | "clamp_max_" | "hardtanh"
        | "hardtanh_" | "leaky_relu" | "leaky_relu_" | "neg" | "abs" | "sign" | "threshold" | "threshold_"
        | "nan_to_num" | "nan_to_num_" => OpKind::Elementwise("relu", 1),
        "gelu" | "gelu_" => OpKind::Elementwise("gelu", 1),
        "sigmoid" | "sigmoid_" => OpKind::Elementwise("sigmoid", 1),
        "tanh" | "tanh_" => OpKind::Elementwise("tanh", 1),
        "silu" | "silu_" => OpKind::Elementwise("silu", 1),
        "exp" | "exp_" | "log" | "log_" | "sqrt" | "sqrt_" | "rsqrt" | "rsqrt_" | "reciprocal" | "reciprocal_" | "log1p"
        | "expm1" | "erf" => OpKind::Elementwise("exp", 1),
        "copy_" | "clone" | "contiguous" | "_to_copy" => OpKind::Elementwise("copy", 1),
        "native_dropout" | "dropout" | "_fused_dropout" => OpKind::Elementwise("dropout", 1),
        "fill_" | "zero_" | "zeros" | "ones" | "full" => OpKind::Elementwise("copy", 0),
        _ => return None,
    })
}

/// Category from the kernel's name alone.
pub fn category_of_name(name: &str) -> Category {
    let l = name.to_ascii_lowercase();
    let has = |ps: &[&str]| ps.iter().any(|p| l.contains(p));
    if l.contains("nccl") {
        Category::Collective
    } else if has(&["embedding", "_embs", "embed_"]) {
        Category::Embedding
    } else if has(&["layer_norm", "layernorm", "batch_norm", "batchnorm", "bn_fw", "bn_bw", "group_norm", "rms_norm", "rmsnorm", "gammabeta", "instance_norm"]) {
        Category::Norm
    } else if l.contains("softmax") {
        Category::Softmax
    } else if has(&["flash", "fmha", "attention", "sdpa"]) {
        Category::Attention
    } else if has(&["conv2d", "convolution", "_conv", "fprop", "dgrad", "wgrad", "winograd", "fft2d", "implicit_gemm", "nchwtonhwc", "nhwctonchw", "scudnn", "hcudnn", "computeoffsets"]) {
        Category::Conv
    } else if !l.contains("fbgemm") && has(&["gemm", "gemv", "splitkreduce", "cutlass", "xmma", "cublas", "epilogue::impl", "magma", "s1688", "h1688", "s884", "h884", "h16816", "s16816", "i8816"]) {
        Category::Gemm
    } else if has(&["multi_tensor_apply", "adam", "adagrad", "sgd_", "lamb_", "optimizer"]) {
        Category::Optimizer
    } else if has(&["reduce", "triton_red", "triton_per", "pool", "argmax", "nll_loss", "cross_entropy", "logsumexp"]) {
        Category::Reduction
    } else if has(&["elementwise", "vectorized", "unrolled", "catarraybatchedcopy", "fill", "copy", "dropout", "distribution", "scatter_gather", "triton_poi", "clamp", "where"]) {
        Category::Elementwise
    } else {
        Category::Other
    }
}

/// Dtype a kernel name states (`volta_sgemm` → fp32, `*_tf32f32_*` → tf32 …).
pub fn dtype_of_name(name: &str) -> Option<Dtype> {
    let l = name.to_ascii_lowercase();
    let has = |ps: &[&str]| ps.iter().any(|p| l.contains(p));
    if l.contains("tf32") {
        Some(Dtype::Tf32)
    } else if has(&["bf16", "bfloat16"]) {
        Some(Dtype::Bf16)
    } else if has(&["e4m3", "e5m2", "fp8"]) {
        Some(Dtype::Fp8)
    } else if has(&["int8", "imma", "i8816"]) {
        Some(Dtype::Int8)
    } else if has(&["hgemm", "fp16", "f16", "h1688", "h884", "h16816", "hcudnn", "c10::half", "__half"]) {
        Some(Dtype::Fp16)
    } else if has(&["s1688", "s16816"]) {
        // CUTLASS/cuBLAS single-precision tensor-op GEMMs: TF32 tensor cores.
        Some(Dtype::Tf32)
    } else if has(&["sgemm", "scudnn", "cgemm", "gcgemm", "f32", "<float"]) {
        Some(Dtype::Fp32)
    } else {
        None
    }
}

/// Tile rows × columns of a tiled matrix kernel, from its name.
pub fn tile_of_name(name: &str) -> Option<(u64, u64)> {
    let l = name.to_ascii_lowercase();
    let tiled = ["gemm", "scudnn", "hcudnn", "xmma", "cutlass", "implicit"].iter().any(|p| l.contains(p));
    let not = ["fft", "nchwtonhwc", "nhwctonchw", "computeoffsets", "gemv", "splitkreduce", "epilogue", "fbgemm", "gemmk1", "reduce", "transpose"];
    if !tiled || not.iter().any(|p| l.contains(p)) {
        return None;
    }
    let pair = |s: &str| -> Option<(u64, u64)> {
        let (a, b) = s.split_once('x')?;
        let b: String = b.chars().take_while(char::is_ascii_digit).collect();
        let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
        ((16..=512).contains(&a) && (16..=512).contains(&b)).then_some((a, b))
    };
    if let Some(p) = l.find("tilesize") {
        return pair(&l[p + 8..]);
    }
    l.split(|c: char| !c.is_ascii_alphanumeric()).find_map(|tok| {
        let tok = tok.trim_start_matches(|c: char| !c.is_ascii_digit());
        if tok.chars().filter(|c| *c == 'x').count() == 1 && tok.chars().all(|c| c.is_ascii_digit() || c == 'x') {
            pair(tok)
        } else {
            None
        }
    })
}

/// Elements a PyTorch element-wise kernel covers, from its template and grid (an upper
/// bound: the last block may be partial). None for grid-stride kernels.
pub fn elementwise_numel(e: &GpuEvent) -> Option<u64> {
    let n = &e.name;
    // Checked: the grid and the name's template numbers come from the file.
    let product = |xs: &[u64]| xs.iter().try_fold(1u64, |a, &x| a.checked_mul(x));
    let grid = product(&e.grid)?;
    if n.contains("vectorized_elementwise_kernel<") || n.contains("unrolled_elementwise_kernel<") {
        // PyTorch's Loops.cuh: block_work_size = num_threads (block.x) × thread_work_size (4).
        return product(&[grid, e.block[0], 4]);
    }
    let p = n.find("elementwise_kernel<")?;
    let rest = &n[p + "elementwise_kernel<".len()..];
    let mut it = rest.split([',', '>']).map(str::trim);
    let nt: u64 = it.next()?.parse().ok()?;
    let vt: u64 = it.next()?.parse().ok()?;
    product(&[grid, nt, vt])
}

/// Dtype of an `Input type` string, and how many of that dtype's elements one element
/// of the recorded type weighs (8-byte types count twice as fp32).
fn dtype_of_type(t: &str) -> Option<(Dtype, u64)> {
    Some(match t.trim() {
        "float" => (Dtype::Fp32, 1),
        "c10::Half" | "Half" | "half" => (Dtype::Fp16, 1),
        "c10::BFloat16" | "BFloat16" => (Dtype::Bf16, 1),
        "double" | "long int" | "long" | "int64_t" => (Dtype::Fp32, 2),
        "int" | "unsigned int" => (Dtype::Fp32, 1),
        "bool" | "unsigned char" | "signed char" | "c10::Float8_e4m3fn" | "c10::Float8_e5m2" => (Dtype::Int8, 1),
        _ => return None,
    })
}

fn numel(d: &[u64]) -> u64 {
    d.iter().product()
}

/// The first integer of a `Concrete Inputs` value (`"[2, 2]"` → 2, `"1"` → 1).
fn concrete_int(op: &CpuOp, idx: usize) -> Option<u64> {
    let s = op.concrete.get(idx)?;
    let digits: String = s.trim_start_matches(|c: char| !c.is_ascii_digit()).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn concrete_bool(op: &CpuOp, idx: usize) -> Option<bool> {
    match op.concrete.get(idx)?.trim() {
        "True" | "true" | "1" => Some(true),
        "False" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn tensor(op: &CpuOp, i: usize) -> Option<&[u64]> {
    op.dims.get(i)?.tensor()
}

fn positive(xs: &[u64]) -> bool {
    xs.iter().all(|&x| x > 0)
}

/// Dtype of the op from its first tensor's `Input type`, refined by the kernels' names
/// (an fp32 matmul that cuBLAS/cuDNN ran on TF32 tensor cores is a TF32 op).
fn op_dtype(op: &CpuOp, idx: usize, kernel_dtype: Option<Dtype>, note: &mut Vec<String>) -> Dtype {
    let recorded = op.types.get(idx).and_then(|t| dtype_of_type(t)).map(|d| d.0);
    match (recorded, kernel_dtype) {
        (Some(Dtype::Fp32), Some(Dtype::Tf32)) => Dtype::Tf32,
        (Some(d), _) => d,
        (None, Some(d)) => d,
        (None, None) => {
            note.push("dtype not recorded: fp32 assumed".into());
            Dtype::Fp32
        }
    }
}

/// Maps an op with recorded `Input Dims` to a kernel op: (op, dtype, times, notes).
fn map_dims(op: &CpuOp, kind: OpKind, kernel_dtype: Option<Dtype>) -> Option<(Op, Dtype, f64, Vec<String>)> {
    let name = op.name.strip_prefix("aten::").unwrap_or(&op.name);
    let mut note = vec![];
    let gemm = |b: u64, m: u64, n: u64, k: u64, bias: bool| positive(&[b, m, n, k]).then_some(Op::Gemm { b, m, n, k, bias });
    match kind {
        OpKind::Gemm => {
            let (op_, idx) = match name {
                "mm" => {
                    let (a, b) = (tensor(op, 0)?, tensor(op, 1)?);
                    (gemm(1, a[0], *b.get(1)?, *a.get(1)?, false)?, 0)
                }
                "addmm" | "_addmm_activation" => {
                    let (a, b) = (tensor(op, 1)?, tensor(op, 2)?);
                    (gemm(1, a[0], *b.get(1)?, *a.get(1)?, true)?, 1)
                }
                "bmm" => {
                    let (a, b) = (tensor(op, 0)?, tensor(op, 1)?);
                    if a.len() != 3 || b.len() != 3 {
                        return None;
                    }
                    (gemm(a[0], a[1], b[2], a[2], false)?, 0)
                }
                "baddbmm" => {
                    let (a, b) = (tensor(op, 1)?, tensor(op, 2)?);
                    if a.len() != 3 || b.len() != 3 {
                        return None;
                    }
                    (gemm(a[0], a[1], b[2], a[2], true)?, 1)
                }
                "linear" => {
                    let (x, w) = (tensor(op, 0)?, tensor(op, 1)?);
                    let k = *x.last()?;
                    let bias = tensor(op, 2).is_some();
                    (gemm(1, numel(x) / k.max(1), w[0], k, bias)?, 0)
                }
                "matmul" => {
                    let (a, b) = (tensor(op, 0)?, tensor(op, 1)?);
                    if a.len() < 2 || b.len() < 2 {
                        return None;
                    }
                    let (m, k, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 1]);
                    if b.len() == 2 {
                        (gemm(1, numel(a) / k.max(1), n, k, false)?, 0)
                    } else {
                        (gemm(numel(&a[..a.len() - 2]), m, n, k, false)?, 0)
                    }
                }
                _ => return None,
            };
            let dtype = op_dtype(op, idx, kernel_dtype, &mut note);
            Some((op_, dtype, 1.0, note))
        }
        OpKind::Conv | OpKind::ConvBackward => {
            let backward = kind == OpKind::ConvBackward;
            let (x, w) = if backward { (tensor(op, 1)?, tensor(op, 2)?) } else { (tensor(op, 0)?, tensor(op, 1)?) };
            if x.len() != 4 || w.len() != 4 || !positive(x) || !positive(w) {
                return None;
            }
            let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
            let (k, cg, r, s) = (w[0], w[1], w[2], w[3]);
            if cg != c {
                return None; // grouped / depthwise: not a kernel op we model
            }
            // Stride and padding: recorded (`Concrete Inputs`), else solved from the
            // output size (backward knows it), else stride 1 and "same" padding.
            let (si, pi) = match name {
                "cudnn_convolution" | "cudnn_convolution_relu" | "cudnn_convolution_add_relu" => (3, 2),
                "convolution_backward" | "convolution_backward_overrideable" => (4, 5),
                _ => (3, 4),
            };
            let (stride, pad) = match (concrete_int(op, si), concrete_int(op, pi)) {
                (Some(st), Some(p)) => (st.max(1), p),
                _ => {
                    let solved = backward
                        .then(|| tensor(op, 0))
                        .flatten()
                        .filter(|g| g.len() == 4)
                        .and_then(|g| {
                            // The smallest stride, then the padding nearest "same", for
                            // which (h + 2·pad − r) / stride + 1 gives the recorded output.
                            (1..=8u64).find_map(|st| {
                                let mut pads: Vec<u64> = (0..=r / 2).collect();
                                pads.sort_by_key(|&p| (r / 2).abs_diff(p));
                                pads.into_iter().find(|&p| h + 2 * p >= r && (h + 2 * p - r) / st + 1 == g[2]).map(|p| (st, p))
                            })
                        });
                    match solved {
                        Some(sp) => sp,
                        None => {
                            note.push("stride/padding not recorded: stride 1, same padding assumed".into());
                            (1, r / 2)
                        }
                    }
                }
            };
            if h + 2 * pad < r || wd + 2 * pad < s {
                return None;
            }
            let dtype = op_dtype(op, if backward { 1 } else { 0 }, kernel_dtype, &mut note);
            if backward {
                note.push("backward = data grad + weight grad ≈ 2 × forward".into());
            }
            Some((Op::Conv2d { n, c, h, w: wd, k, r, s, stride, pad }, dtype, if backward { 2.0 } else { 1.0 }, note))
        }
        OpKind::Attention => {
            if name.ends_with("_backward") {
                return None;
            }
            let (q, kk) = (tensor(op, 0)?, tensor(op, 1)?);
            if q.len() != 4 || kk.len() != 4 {
                return None;
            }
            // SDPA takes [b, h, s, d]; the flash/efficient forward kernels [b, s, h, d].
            let bshd = name.starts_with("_flash_attention") || name.starts_with("_efficient_attention");
            let (b, hq, sq, d) = if bshd { (q[0], q[2], q[1], q[3]) } else { (q[0], q[1], q[2], q[3]) };
            let (hkv, skv) = if bshd { (kk[2], kk[1]) } else { (kk[1], kk[2]) };
            let causal_idx = match name {
                "scaled_dot_product_attention" => 5,
                "_scaled_dot_product_flash_attention" => 4,
                "_scaled_dot_product_efficient_attention" | "_scaled_dot_product_cudnn_attention" => 6,
                "_flash_attention_forward" => 8,
                _ => 7,
            };
            let causal = concrete_bool(op, causal_idx).unwrap_or_else(|| {
                note.push("causal flag not recorded: non-causal assumed".into());
                false
            });
            if !positive(&[b, hq, hkv, sq, skv, d]) || hq % hkv != 0 || sq > skv {
                return None;
            }
            let dtype = op_dtype(op, 0, kernel_dtype, &mut note);
            Some((Op::Attention { b, hq, hkv, sq, skv, d, causal }, dtype, 1.0, note))
        }
        OpKind::Softmax => {
            if !matches!(name, "_softmax" | "softmax" | "_log_softmax" | "log_softmax") {
                return None;
            }
            let x = tensor(op, 0)?;
            let cols = *x.last()?;
            note.push("softmax over the last dimension".into());
            let dtype = op_dtype(op, 0, kernel_dtype, &mut note);
            positive(&[cols, numel(x)]).then(|| (Op::Softmax { rows: numel(x) / cols, cols }, dtype, 1.0, note))
        }
        OpKind::Norm => {
            let x = tensor(op, 0)?;
            let (rms, cols) = match name {
                "native_layer_norm" | "layer_norm" => (false, tensor(op, 2).map(numel).unwrap_or(*x.last()?)),
                "rms_norm" | "_fused_rms_norm" => (true, tensor(op, 2).map(numel).unwrap_or(*x.last()?)),
                _ => return None,
            };
            if cols == 0 || !numel(x).is_multiple_of(cols) {
                return None;
            }
            let rows = numel(x) / cols;
            let dtype = op_dtype(op, 0, kernel_dtype, &mut note);
            let o = if rms { Op::Rmsnorm { rows, cols } } else { Op::Layernorm { rows, cols } };
            positive(&[rows]).then_some((o, dtype, 1.0, note))
        }
        OpKind::Embedding => {
            if name != "embedding" {
                return None;
            }
            let (w, idx) = (tensor(op, 0)?, tensor(op, 1)?);
            if w.len() != 2 {
                return None;
            }
            let dtype = op_dtype(op, 0, kernel_dtype, &mut note);
            positive(&[w[0], w[1], numel(idx)]).then(|| (Op::Embedding { tokens: numel(idx), dim: w[1], vocab: w[0] }, dtype, 1.0, note))
        }
        OpKind::Elementwise(func, arity) => {
            if arity == 0 {
                return None;
            }
            let tensors: Vec<(usize, &[u64])> = op.dims.iter().enumerate().filter_map(|(i, d)| d.tensor().map(|t| (i, t))).collect();
            let (big, n) = tensors.iter().map(|(i, t)| (*i, numel(t))).max_by_key(|x| x.1)?;
            // copy_(dst, src): dst is written, not read.
            let skip = usize::from(name == "copy_");
            let inputs = tensors.iter().skip(skip).filter(|(_, t)| numel(t) == n).count().clamp(1, 3) as u64;
            let (dtype, weight) = match op.types.get(big).and_then(|t| dtype_of_type(t)) {
                Some(x) => x,
                None => {
                    note.push("dtype not recorded: fp32 assumed".into());
                    (Dtype::Fp32, 1)
                }
            };
            (n > 0).then(|| (Op::Elementwise { func: func.to_string(), numel: n * weight, inputs }, dtype, 1.0, note))
        }
        OpKind::Reduction | OpKind::Optimizer | OpKind::Collective => None,
    }
}

/// Kept kernels: how they move to another GPU.
fn scale_of(e: &GpuEvent, category: Category) -> Scale {
    let l = e.name.to_ascii_lowercase();
    match e.kind {
        GpuKind::Memcpy if l.contains("htod") || l.contains("dtoh") => {
            if l.contains("pageable") {
                Scale::Host
            } else {
                Scale::Pcie
            }
        }
        GpuKind::Memcpy | GpuKind::Memset => Scale::Dram,
        GpuKind::Kernel => {
            let matrix = ["gemm", "fprop", "dgrad", "wgrad", "flash", "fmha", "scudnn", "hcudnn", "xmma", "cutlass", "winograd"]
                .iter()
                .any(|p| l.contains(p))
                && !["gemv", "splitkreduce", "epilogue", "fbgemm"].iter().any(|p| l.contains(p));
            if category == Category::Collective {
                Scale::Interconnect
            } else if matrix && matches!(category, Category::Gemm | Category::Conv | Category::Attention) {
                Scale::Compute(dtype_of_name(&e.name).unwrap_or(Dtype::Fp32))
            } else {
                Scale::Dram
            }
        }
    }
}

/// The helper kernels of a GEMM op group and the recorded launch of its GEMM kernel.
struct GemmHelpers {
    launch: Launch,
    /// (event, what it is, the element-wise pass that predicts it).
    helpers: Vec<(usize, Helper, Op)>,
}

/// For a GEMM op whose kernels are one tiled GEMM kernel (`lead`) and cuBLAS helpers: the
/// lead's launch and each helper as an element-wise pass over the b × m × n output.
/// cuBLAS writes split-k partial sums in fp32, one m × n slab per split, and its helper
/// reads them all (`inputs` = the split, grid.z of the GEMM kernel) and writes the result
/// once; the bias epilogue of an unsplit GEMM reads the output once (the broadcast bias
/// row is negligible beside it). None when the group is anything else.
fn gemm_helpers(trace: &KinetoTrace, members: &[usize], lead: usize, op: &Op) -> Option<GemmHelpers> {
    let Op::Gemm { b, m, n, .. } = *op else { return None };
    let name = &trace.gpu[lead].name;
    let (bm, bn) = tile_of_name(name)?;
    let mut helpers = vec![];
    for &i in members {
        if i == lead {
            continue;
        }
        helpers.push((i, Helper::of_name(&trace.gpu[i].name)?));
    }
    if helpers.is_empty() {
        return None;
    }
    // The tile's family name: the kernel name up to its layout suffix (`_nn`, `_tn` …).
    let tile = name.rsplit_once('_').map(|(t, _)| t).filter(|t| t.contains(&format!("{bm}x{bn}")))?.to_string();
    let split = if b == 1 { trace.gpu[lead].grid[2].max(1) } else { 1 };
    let numel = b.checked_mul(m)?.checked_mul(n)?;
    let helpers = helpers
        .into_iter()
        .map(|(i, h)| (i, h, Op::Elementwise { func: "add".into(), numel, inputs: split.min(crate::kernel::op::MAX_INPUTS) }))
        .collect();
    Some(GemmHelpers { launch: Launch { tile, split }, helpers })
}

/// Classifies every GPU event of the trace (same order as `trace.gpu`).
pub fn classify(trace: &KinetoTrace) -> Vec<Mapped> {
    let n = trace.gpu.len();
    // The innermost known op of each event.
    let known: Vec<Option<(usize, OpKind)>> = trace
        .gpu
        .iter()
        .map(|e| trace.op_stack(e).find_map(|(i, o)| op_kind(&o.name).map(|k| (i, k))))
        .collect();
    // Op groups: kernels launched by the same known op instance.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, k) in known.iter().enumerate() {
        if let (Some((op, _)), GpuKind::Kernel) = (k, trace.gpu[i].kind) {
            groups.entry(*op).or_default().push(i);
        }
    }
    let mut out: Vec<Option<Mapped>> = vec![None; n];
    for (op_idx, members) in &groups {
        let op = &trace.cpu_ops[*op_idx];
        let Some(kind) = op_kind(&op.name) else { continue };
        let cat = kind.category();
        // The lead: the first kernel whose own name fits the op's category.
        let lead = members.iter().copied().find(|&i| category_of_name(&trace.gpu[i].name) == cat).unwrap_or(members[0]);
        let kdt = members.iter().find_map(|&i| dtype_of_name(&trace.gpu[i].name));
        let Some((mut o, dtype, times, note)) = map_dims(op, kind, kdt) else { continue };
        // A GEMM op of one matrix kernel and cuBLAS helper kernels: the trace records
        // which kernels ran, so each is predicted as what it is (see `gemm_helpers`).
        let helpers = if kind == OpKind::Gemm { gemm_helpers(trace, members, lead, &o) } else { None };
        let launch = helpers.as_ref().map(|h| h.launch.clone());
        let mut lead_members = members.clone();
        if let Some(h) = &helpers {
            if let Op::Gemm { bias, .. } = &mut o {
                // The bias is added by the epilogue kernel, not inside the GEMM kernel.
                *bias &= !h.helpers.iter().any(|(_, x, _)| *x == Helper::Epilogue);
            }
            lead_members.retain(|j| !h.helpers.iter().any(|(i, x, _)| i == j && *x == Helper::Epilogue));
        }
        for &i in members {
            let helper = helpers.as_ref().and_then(|h| h.helpers.iter().find(|(j, ..)| *j == i));
            out[i] = Some(Mapped {
                category: cat,
                op_name: op.name.clone(),
                work: if i == lead {
                    Work::Op { op: o.clone(), dtype, times, source: Source::InputDims, members: lead_members.clone(), launch: launch.clone() }
                } else if let Some((_, helper, hop)) = helper {
                    // Split-k partial sums are fp32 whatever the operands.
                    let split = launch.as_ref().map_or(1, |l| l.split);
                    Work::Helper { lead, helper: *helper, op: hop.clone(), dtype: if split > 1 { Dtype::Fp32 } else { dtype } }
                } else {
                    Work::Member { lead }
                },
                note: note.join("; "),
            });
        }
    }
    for (i, e) in trace.gpu.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let op_name = known[i].map(|(o, _)| trace.cpu_ops[o].name.clone()).unwrap_or_default();
        let category = match e.kind {
            GpuKind::Memcpy => Category::Memcpy,
            GpuKind::Memset => Category::Memset,
            GpuKind::Kernel => {
                let by_name = category_of_name(&e.name);
                match known[i] {
                    _ if by_name == Category::Collective => by_name,
                    Some((_, k)) => k.category(),
                    None => by_name,
                }
            }
        };
        let l = e.name.to_ascii_lowercase();
        let work = match e.kind {
            GpuKind::Memcpy if l.contains("dtod") && e.bytes.is_some_and(|b| b >= 4.0) => Work::Op {
                op: Op::Elementwise { func: "copy".into(), numel: (e.bytes.unwrap_or(0.0) / 4.0) as u64, inputs: 1 },
                dtype: Dtype::Fp32,
                times: 1.0,
                source: Source::Bytes,
                members: vec![i],
                launch: None,
            },
            GpuKind::Kernel => {
                let tile = tile_of_name(&e.name).filter(|_| matches!(category, Category::Gemm | Category::Conv));
                let ew = match known[i] {
                    Some((_, OpKind::Elementwise(func, arity))) if arity > 0 => {
                        let dt = if e.name.contains("c10::Half") {
                            Some(Dtype::Fp16)
                        } else if e.name.contains("c10::BFloat16") {
                            Some(Dtype::Bf16)
                        } else if e.name.contains("float") && !e.name.contains("double") {
                            Some(Dtype::Fp32)
                        } else {
                            None
                        };
                        elementwise_numel(e).zip(dt).map(|(numel, dtype)| (func, arity, numel, dtype))
                    }
                    _ => None,
                };
                if let Some((bm, bn)) = tile {
                    Work::TileGrid {
                        b: e.grid[2],
                        m: e.grid[0] * bm,
                        n: e.grid[1] * bn,
                        dtype: dtype_of_name(&e.name).unwrap_or(Dtype::Fp32),
                    }
                } else if let Some((func, arity, numel, dtype)) = ew {
                    Work::Op {
                        op: Op::Elementwise { func: func.into(), numel, inputs: arity },
                        dtype,
                        times: 1.0,
                        source: Source::Grid,
                        members: vec![i],
                        launch: None,
                    }
                } else {
                    let why = if e.name.contains("nccl") {
                        "NCCL kernel time includes waiting for the other ranks".to_string()
                    } else {
                        "no shape for this kernel".to_string()
                    };
                    Work::Kept { scale: scale_of(e, category), why }
                }
            }
            _ => Work::Kept {
                scale: scale_of(e, category),
                why: match e.kind {
                    GpuKind::Memset => "memset".into(),
                    _ => "host↔device copy".into(),
                },
            },
        };
        let note = match &work {
            Work::Op { source: Source::Grid, .. } => "elements from grid × elements per block; operands from the op's arity".into(),
            Work::TileGrid { .. } => "m, n from tile × grid; k inferred from the recorded time".into(),
            _ => String::new(),
        };
        out[i] = Some(Mapped { category, op_name, work, note });
    }
    // Every event was classified above; an unclassified one would keep its time.
    out.into_iter()
        .map(|m| {
            m.unwrap_or(Mapped {
                category: Category::Other,
                op_name: String::new(),
                work: Work::Kept { scale: Scale::Dram, why: "unclassified".into() },
                note: String::new(),
            })
        })
        .collect()
}

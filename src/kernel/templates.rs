//! Kernel templates as the vendor libraries ship them, read from `kernels/*.toml`.
//!
//! The cost models pick among these the way cuBLAS/cuDNN/FlashAttention would, so the
//! tile, CTA count and waves of a prediction are ones a real library could have launched.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MathPath {
    /// CUDA-core FMA (SGEMM, HGEMM without tensor cores).
    Ffma,
    /// Tensor-core MMA.
    Tensor,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmTile {
    /// Family name as the library prints it, without the layout suffix
    /// (`ampere_sgemm_128x64`, `sm80_xmma_gemm_f16f16_f16f32_f32_128x128x32_stage4`).
    pub name: String,
    /// Architectures (ISA file stems) whose library ships this tile.
    pub archs: Vec<String>,
    /// Operand dtypes it serves.
    pub dtypes: Vec<String>,
    /// Only these chips of the architectures (empty = all), e.g. tcgen05 tiles on GB100
    /// but not on the GB202 of the RTX 50 series.
    #[serde(default)]
    pub chips: Vec<String>,
    pub path: MathPath,
    pub bm: u32,
    pub bn: u32,
    pub bk: u32,
    pub threads: u32,
    /// Software pipeline depth (shared-memory buffers).
    pub stages: u32,
    /// Registers per thread, when known from a real launch.
    #[serde(default)]
    pub regs_per_thread: Option<u32>,
    /// Shared memory per CTA in bytes; when absent, stages × (bm + bn) × bk × dtype bytes.
    #[serde(default)]
    pub smem_bytes: Option<u32>,
    /// Architectures whose strided-batched GEMM heuristic uses this tile: for b > 1 the
    /// library chooses only among these (when the architecture lists any).
    #[serde(default)]
    pub batched_archs: Vec<String>,
    /// "Sliced" kernels split k across warps inside the CTA (`_sliced1x4`).
    #[serde(default)]
    pub k_sliced: u32,
    /// A mixed-input kernel for weight-only quantised weights (Marlin): chosen only for
    /// those, and they only among such tiles where the architecture has any.
    #[serde(default)]
    pub weight_only: bool,
    /// A persistent kernel (one CTA per SM looping over tiles, split-k reduced in the same
    /// kernel): the CTA's fixed costs are paid once, and split-k launches no second kernel.
    #[serde(default)]
    pub persistent: bool,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttentionTile {
    pub name: String,
    pub archs: Vec<String>,
    /// `fa2`, `fa3` (prefill) or `splitkv_decode`.
    pub kind: String,
    /// Query rows per CTA.
    pub br: u32,
    /// Key/value rows per inner step.
    pub bc: u32,
    pub threads: u32,
    /// Largest head dim the tile supports.
    pub max_head_dim: u32,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConvAlgo {
    pub name: String,
    pub archs: Vec<String>,
    /// `implicit_gemm`, `winograd` or `fft`.
    pub algo: String,
    /// Filter sizes it applies to (`[3]` for 3×3 Winograd); empty = any.
    #[serde(default)]
    pub filter_sizes: Vec<u32>,
    /// Only for stride 1.
    #[serde(default)]
    pub stride_one_only: bool,
    /// Winograd output tile (m in F(m×m, r×r)); 0 for other algorithms.
    #[serde(default)]
    pub winograd_m: u32,
    /// Transforms done inside the GEMM kernel (no transformed tensors in DRAM), paid for
    /// in issue slots instead.
    #[serde(default)]
    pub fused: bool,
    /// Fused Winograd: the blocks of output tiles one CTA covers, as [images, tile rows,
    /// tile columns], one per kernel variant the library ships. A CTA computes its whole
    /// block even where the block overhangs the image, so small images waste work; the
    /// library runs the variant that wastes least. Empty = tiles packed with no waste.
    #[serde(default)]
    pub cta_tiles: Vec<[u32; 3]>,
    /// Implicit GEMM: the output pixels (GEMM rows) one CTA computes, from the kernel
    /// names (`scudnn_128x64`: 128 pixels × 64 filters); its kernels are not k-sliced.
    /// 0 = any GEMM tile.
    #[serde(default)]
    pub cta_m: u32,
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmTemplates {
    #[serde(default)]
    pub tile: Vec<GemmTile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttentionTemplates {
    #[serde(default)]
    pub tile: Vec<AttentionTile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConvTemplates {
    #[serde(default)]
    pub algo: Vec<ConvAlgo>,
}

/// Host-side costs of launching work, from `kernels/launch.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LaunchModel {
    /// One eager PyTorch call timed with CUDA events: Python, dispatcher, launch (µs).
    pub eager_op_us: f64,
    /// Each further kernel the same call launches (µs).
    pub extra_launch_us: f64,
    /// Host cost of one call by op kind beyond `eager_op_us`: module calls (nn.Softmax,
    /// nn.LayerNorm), and cuBLAS/cuDNN heuristics and descriptors.
    #[serde(default)]
    pub op_extra_us: std::collections::BTreeMap<String, f64>,
    /// `eager_op_us` of another vendor's runtime (HIP dispatch on ROCm differs from
    /// CUDA's), by the profile's `vendor`.
    #[serde(default)]
    pub vendor_eager_op_us: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    pub sources: std::collections::BTreeMap<String, String>,
}

impl LaunchModel {
    /// Host cost of one eager call of this op kind on a vendor's runtime, µs. A cuDNN
    /// convolution with no figure of its own pays what a cuBLAS call pays (both set up
    /// descriptors and consult heuristics); anything else unlisted pays the plain cost.
    pub fn host_us(&self, vendor: &str, op: &str) -> f64 {
        let base = self.vendor_eager_op_us.get(vendor).copied().unwrap_or(self.eager_op_us);
        let extra = match (self.op_extra_us.get(op), op) {
            (Some(v), _) => *v,
            (None, "conv2d" | "linear") => self.op_extra_us.get("gemm").copied().unwrap_or(0.0),
            (None, _) => 0.0,
        };
        base + extra
    }
}

impl Default for LaunchModel {
    fn default() -> Self {
        LaunchModel { eager_op_us: 20.0, extra_launch_us: 5.0, op_extra_us: Default::default(), vendor_eager_op_us: Default::default(), sources: Default::default() }
    }
}

/// How a library implements one memory-bound op (`kernels/memory_bound.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryBoundImpl {
    pub op: String,
    pub implementation: String,
    /// Elements per load instruction of one thread.
    pub vector_elems: u32,
    /// Independent loads a thread keeps in flight (per input tensor for element-wise).
    pub loads_in_flight: u32,
    /// Passes over the input (reads of it).
    pub passes: u32,
    /// Rows longer than this take `long_row_passes` passes instead (a row no longer fits
    /// one warp's registers).
    #[serde(default)]
    pub long_row_cols: Option<u64>,
    #[serde(default)]
    pub long_row_passes: Option<u32>,
    /// `row`: a pass re-reads the row just read (an L2 hit while the rows in flight fit
    /// in L2); `tensor`: each pass is its own kernel over the whole tensor (an L2 hit only
    /// when the tensor fits).
    #[serde(default = "default_reread")]
    pub reread: String,
    /// Kernels one call launches.
    #[serde(default = "one")]
    pub launches: u32,
    /// Threads per block (the largest, for kernels that size blocks to the row).
    #[serde(default = "default_block")]
    pub block_threads: u32,
    /// One block per row, sized to the row (up to `block_threads`).
    #[serde(default)]
    pub block_per_row: bool,
    /// Integer (index) instructions per element.
    pub int_ops_per_elem: f64,
    /// SM cycles of one loop iteration's dependent instruction chain that cannot overlap
    /// its own loads (index arithmetic the addresses wait for, the math and the store after
    /// the data arrives): a thread's next loads wait for them, so they add to the memory
    /// latency each iteration pays.
    /// Fitted (see `validate::fit::KERNEL_PARAMS`); its provenance is `dependent_cycles_source`.
    #[serde(default)]
    pub dependent_cycles: f64,
    #[serde(default)]
    pub dependent_cycles_source: Option<String>,
    #[serde(default)]
    pub source: String,
}

fn default_reread() -> String {
    "row".into()
}

fn one() -> u32 {
    1
}

fn default_block() -> u32 {
    128
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MemoryBoundTemplates {
    #[serde(default)]
    pub op: Vec<MemoryBoundImpl>,
}

//! Convolution as cuDNN runs it: implicit GEMM for any filter, Winograd for 3×3 stride 1
//! where the library ships it. cuDNN in benchmark mode times its algorithms and keeps the
//! fastest, so the model does the same over the algorithms `kernels/conv.toml` lists.

use super::gemm::{self, GemmProblem};
use super::memory_bound;
use super::op::conv_out;
use super::templates::ConvAlgo;
use super::{Dtype, KernelEstimate, Op};
use crate::error::{Error, Result};
use crate::hw::{Gpu, Templates};

pub fn estimate(gpu: &Gpu, templates: &Templates, op: &Op, dtype: Dtype, l2_warm: bool) -> Result<KernelEstimate> {
    let Op::Conv2d { n, c, h, w, k, r, s, stride, pad } = *op else {
        unreachable!("conv::estimate called with {op:?}")
    };
    let (p, q) = conv_out(h, w, r, s, stride, pad);
    let arch = &gpu.profile.architecture;
    let eff = &gpu.isa.efficiency;
    let algos: Vec<_> = templates.conv.algo.iter().filter(|a| a.archs.iter().any(|x| x == arch)).collect();
    let mut best: Option<KernelEstimate> = None;
    // Timed as the benchmark sees them: no launch finishes faster than an empty kernel, so
    // a multi-kernel algorithm pays that floor per launch.
    let floor_ms = gpu.isa.efficiency.kernel_floor_us / 1000.0;
    let timed = |e: &KernelEstimate| e.kernel_ms.max(floor_ms * e.launches as f64);
    let mut consider = |e: KernelEstimate| {
        if best.as_ref().is_none_or(|b| timed(&e) < timed(b)) {
            best = Some(e);
        }
    };
    // Implicit GEMM is always available. cuDNN's forward kernels never split k (every conv
    // kernel in the NeuSight traces is one grid over output pixels × filters) and take a
    // fixed number of output pixels per CTA (`ConvAlgo::cta_m`), so a deep reduction over
    // few pixels runs serially in few, long CTAs.
    let cta_m = algos.iter().filter(|a| a.algo == "implicit_gemm").map(|a| a.cta_m).find(|&m| m > 0).unwrap_or(0);
    let mut e = gemm::estimate(gpu, templates, GemmProblem { issue_share: eff.conv_issue, bm_along_n: false, split_k: false, cta_m, unbatched: false, ..GemmProblem::new(1, n * p * q, k, c * r * s, false, dtype) }, l2_warm)?;
    // The im2col gather re-reads each input pixel r·s times, mostly from L1/L2.
    e.tile = Some(format!("implicit_gemm:{}", e.tile.unwrap_or_default()));
    consider(e);
    for algo in algos.iter().filter(|a| a.algo == "winograd") {
        let applies = (algo.filter_sizes.is_empty() || (algo.filter_sizes.contains(&(r as u32)) && r == s))
            && (!algo.stride_one_only || stride == 1)
            && algo.winograd_m > 0;
        if !applies {
            continue;
        }
        let m = algo.winograd_m as u64;
        let alpha = m + r - 1;
        let tiles = padded_tiles(n, p.div_ceil(m), q.div_ceil(m), &algo.cta_tiles);
        let issue = eff.winograd_issue;
        // A transform pass streams one tensor in and one out, like a copy.
        let pass = |numel: u64| memory_bound::estimate(gpu, templates, &Op::Elementwise { func: "copy".into(), numel, inputs: 1 }, dtype, l2_warm);
        // cuDNN transforms the filters on every call (its own launch, recorded in the traces:
        // 2 launches per fused call, 4 per non-fused): k·c filters of r·s in, alpha² out.
        // With few output tiles and many channels it is a large share of the call.
        let filter_pass = || pass((alpha * alpha * k * c).max(k * c * r * s));
        let mut e = if algo.fused {
            // Input and output transforms run in the kernel: per (tile, channel) the input
            // transform is ~2·alpha² adds shared by every output channel, per (tile, filter)
            // the output transform ~2·alpha·m adds shared by every input channel, against
            // alpha² multiply-adds per (tile, channel, filter). The input transform is shared
            // only by the filters of one CTA tile, at least 32 wide, even when k is smaller.
            //
            // One CTA computes all alpha² products of its block of tiles × filters, because
            // the output transform needs every one of them: a GEMM over tiles × k whose
            // reduction runs over channels × alpha², channels padded to a step of 16 (cuDNN does
            // not document it; of 8, 16 and 32, 16 fits the fit rows best, by the median
            // |ln(pred/meas)| `phantom-gpu fit` prints for `winograd_issue`).
            // It is cuDNN's own kernel, so any SIMT tile the architecture ships is a
            // candidate (not only the tiles cuBLAS picks for strided-batched calls).
            let mults = (alpha * alpha) as f64;
            let transform = 2.0 * mults / k.max(32) as f64 + 2.0 * (alpha * m) as f64 / c as f64;
            let share = issue * mults / (mults + transform);
            let mut e = gemm::estimate(gpu, templates, GemmProblem { issue_share: share, bm_along_n: false, split_k: false, unbatched: false, ..GemmProblem::new(1, tiles, k, c.next_multiple_of(16) * alpha * alpha, false, dtype) }, l2_warm)?;
            then(&mut e, filter_pass()?);
            e
        } else {
            let mut e = gemm::estimate(gpu, templates, GemmProblem { issue_share: issue, bm_along_n: false, ..GemmProblem::new(alpha * alpha, tiles, k, c, false, dtype) }, l2_warm)?;
            // Input, output and filter transforms as their own kernels: read the input, write
            // the transformed tiles, and the reverse for the output.
            then(&mut e, pass((alpha * alpha * tiles * c).max(n * c * h * w))?);
            then(&mut e, pass((alpha * alpha * tiles * k).max(n * k * p * q))?);
            then(&mut e, filter_pass()?);
            e
        };
        e.flops = op.flops();
        e.tile = Some(format!("{}:{}", algo.name, e.tile.unwrap_or_default()));
        consider(e);
    }
    let mut e = best.ok_or_else(|| Error::Unsupported { gpu: gpu.key().into(), what: "conv2d".into(), why: "no algorithm".into() })?;
    e.flops = op.flops();
    Ok(e)
}

/// cuDNN's forward algorithm families, as the model groups its templates: for reporting
/// how often the model picks the algorithm cuDNN's benchmark mode picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    ImplicitGemm,
    WinogradFused,
    WinogradNonfused,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::ImplicitGemm => "implicit_gemm",
            Family::WinogradFused => "winograd_fused",
            Family::WinogradNonfused => "winograd_nonfused",
        }
    }

    /// The family of a template in `kernels/conv.toml`; `None` for ones the model does not
    /// time (FFT).
    pub fn of(algo: &ConvAlgo) -> Option<Family> {
        match (algo.algo.as_str(), algo.fused) {
            ("implicit_gemm", _) => Some(Family::ImplicitGemm),
            ("winograd", true) => Some(Family::WinogradFused),
            ("winograd", false) => Some(Family::WinogradNonfused),
            _ => None,
        }
    }

    /// The family of the algorithm a prediction chose, from its `tile` label
    /// (`<algorithm>:<GEMM tile>`).
    pub fn of_tile(templates: &Templates, tile: &str) -> Option<Family> {
        if tile.starts_with("implicit_gemm:") {
            return Some(Family::ImplicitGemm);
        }
        // Template names may hold ':' themselves.
        templates.conv.algo.iter().find(|a| tile.strip_prefix(a.name.as_str()).is_some_and(|rest| rest.starts_with(':'))).and_then(Family::of)
    }

    /// The family of the main kernel a trace recorded for one cuDNN call (its `kernel=` and
    /// `n_kernels=` tags), by the naming rules in the header of `kernels/conv.toml`;
    /// `None` for algorithms the model does not time (FFT, explicit GEMM) or names it does
    /// not know.
    pub fn of_kernel(kernel: &str, launches: u32) -> Option<Family> {
        if kernel.contains("winograd") {
            Some(Family::WinogradFused)
        } else if kernel.contains("gcgemm") || kernel.contains("fft") || kernel.contains("explicit_convolve") {
            None
        } else if kernel.contains("scudnn") || kernel.contains("implicit_convolve") || kernel.contains("precomputed_convolve") || kernel.contains("fprop") {
            Some(Family::ImplicitGemm)
        } else if kernel.contains("_sgemm_") && launches == 4 {
            Some(Family::WinogradNonfused)
        } else {
            None
        }
    }
}

/// The output tiles a fused Winograd kernel computes for `n` images of `rows × cols`
/// tiles: whole CTA blocks (`ConvAlgo::cta_tiles`) of the variant that wastes least.
fn padded_tiles(n: u64, rows: u64, cols: u64, blocks: &[[u32; 3]]) -> u64 {
    blocks
        .iter()
        .map(|&[bn, br, bc]| {
            let (bn, br, bc) = (bn as u64, br as u64, bc as u64);
            n.div_ceil(bn) * rows.div_ceil(br) * cols.div_ceil(bc) * bn * br * bc
        })
        .min()
        .unwrap_or(n * rows * cols)
}

/// Appends a transform kernel, launched after `e`, to the call's estimate.
fn then(e: &mut KernelEstimate, pass: KernelEstimate) {
    e.kernel_ms += pass.kernel_ms;
    e.bytes += pass.bytes;
    e.launches += 1;
}

#[cfg(test)]
mod tests {
    use super::{padded_tiles, Family};

    #[test]
    fn trace_kernel_names_name_their_cudnn_algorithm() {
        let f = |name, launches| Family::of_kernel(name, launches);
        assert_eq!(f("cudnn_infer_volta_scudnn_winograd_128x128_ldg1_ldg4_relu_tile148t_nt_v1", 2), Some(Family::WinogradFused));
        assert_eq!(f("cudnn_infer_ampere_scudnn_128x64_relu_xregs_large_nn_v1", 2), Some(Family::ImplicitGemm));
        assert_eq!(f("implicit_convolve_sgemm", 1), Some(Family::ImplicitGemm));
        assert_eq!(f("volta_sgemm_64x64_nn", 4), Some(Family::WinogradNonfused));
        // An SGEMM with two launches is explicit GEMM (im2col), which the model does not time.
        assert_eq!(f("maxwell_sgemm_32x128_nn", 2), None);
        assert_eq!(f("ampere_gcgemm_64x64_nt", 4), None);
    }

    #[test]
    fn winograd_ctas_cover_whole_blocks_of_the_variant_that_wastes_least() {
        // A 5×5 output is 3×3 F(2×2) tiles: one 1×4×8 block (32 tiles) per image.
        assert_eq!(padded_tiles(1, 3, 3, &[[1, 4, 8]]), 32);
        assert_eq!(padded_tiles(4, 3, 3, &[[1, 4, 8]]), 128);
        // Four such images fit one 4×4×2 block per two tile columns: 64 tiles, not 128.
        assert_eq!(padded_tiles(4, 3, 3, &[[1, 4, 8], [4, 4, 2]]), 64);
        // Without variants the tiles pack with no waste.
        assert_eq!(padded_tiles(4, 3, 3, &[]), 36);
    }
}

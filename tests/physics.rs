//! Physical sanity of the cost models, over every GPU the simulator knows.

use phantom_gpu::hw::Registry;
use phantom_gpu::kernel::{self, Context, Dtype, Op, Timing};

fn reg() -> Registry {
    Registry::builtin().expect("built-in data loads")
}

fn gemm(m: u64, n: u64, k: u64) -> Op {
    Op::Gemm { b: 1, m, n, k, bias: false }
}

/// The DRAM ceiling: the spec, or a measured figure where one ran above it (H100 PCIe).
fn dram_peak(gpu: &phantom_gpu::hw::Gpu) -> f64 {
    let m = &gpu.profile.memory;
    m.dram_bandwidth_gbs.max(m.dram_bandwidth_measured_gbs.unwrap_or(0.0))
}

const SIZES: &[u64] = &[1, 7, 64, 128, 300, 1024, 4096, 16384];

#[test]
fn no_prediction_beats_peak_flops_or_dram_bandwidth() {
    let reg = reg();
    for gpu in reg.gpus() {
        let boost = gpu.profile.compute.boost_clock_mhz * 1e6;
        for dtype in [Dtype::Fp32, Dtype::Fp16, Dtype::Bf16, Dtype::Tf32, Dtype::Fp8, Dtype::Int8] {
            let peak_rate = if dtype == Dtype::Fp32 {
                // CDNA also runs FP32 on its matrix cores.
                gpu.rates.ffma_flop_per_clk.max(gpu.tensor_flop_per_clk("fp32").unwrap_or(0.0))
            } else {
                match gpu.tensor_flop_per_clk(dtype.name()) {
                    Some(r) => r,
                    None => continue,
                }
            };
            let peak_tflops = peak_rate * gpu.sms() * boost / 1e12;
            for &m in SIZES {
                for &n in SIZES {
                    for &k in &[64u64, 4096, 65536] {
                        let p = kernel::predict(gpu, &reg.templates, &gemm(m, n, k), dtype, Timing::Kernel).unwrap();
                        assert!(p.predicted_ms.is_finite() && p.predicted_ms > 0.0);
                        assert!(p.tflops <= peak_tflops * 1.0001, "{} {dtype} {m}x{n}x{k}: {} > peak {}", gpu.key(), p.tflops, peak_tflops);
                        assert!(p.gbs <= dram_peak(gpu) * 1.0001, "{} gemm {m}x{n}x{k}: {} GB/s", gpu.key(), p.gbs);
                    }
                }
            }
        }
        for numel in [1u64, 1000, 1 << 20, 1 << 28] {
            let op = Op::Elementwise { func: "add".into(), numel, inputs: 2 };
            let p = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp16, Timing::Kernel).unwrap();
            assert!(p.gbs <= dram_peak(gpu) * 1.0001, "{}: {} GB/s", gpu.key(), p.gbs);
        }
    }
}

#[test]
fn gemm_time_never_falls_when_a_dimension_doubles() {
    let reg = reg();
    for gpu in reg.gpus() {
        for dtype in [Dtype::Fp32, Dtype::Fp16] {
            if dtype == Dtype::Fp16 && gpu.tensor_flop_per_clk("fp16").is_none() {
                continue;
            }
            for &m in SIZES {
                for &n in &[64u64, 1000, 4096] {
                    for &k in &[64u64, 1000, 4096] {
                        let t = |op: Op| kernel::predict(gpu, &reg.templates, &op, dtype, Timing::Kernel).unwrap().predicted_ms;
                        let base = t(gemm(m, n, k));
                        for (name, bigger) in [("m", gemm(2 * m, n, k)), ("n", gemm(m, 2 * n, k)), ("k", gemm(m, n, 2 * k))] {
                            let b = t(bigger);
                            assert!(b >= base * 0.999, "{} {dtype} {m}x{n}x{k}: doubling {name} {base} -> {b}", gpu.key());
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn wave_quantisation_is_visible() {
    // One CTA more than a full wave costs a second wave.
    let reg = reg();
    let gpu = reg.gpu("a100-sxm4-80gb").unwrap();
    let tile = reg
        .templates
        .gemm
        .tile
        .iter()
        .find(|t| t.archs.iter().any(|a| a == "ampere") && t.dtypes.iter().any(|d| d == "fp16"))
        .unwrap();
    let c = phantom_gpu::kernel::gemm::ctas_per_sm(gpu, tile, Dtype::Fp16);
    let full = gpu.profile.compute.sm_count as u64 * c;
    let k = 8192;
    // Four rows of tiles, so the wave is compute-bound (one row of tiles over a long k
    // streams its weight from DRAM and hides the waves). A tile's first dimension runs
    // along n (cuBLAS's M for a row-major call); one more column of tiles than a full
    // wave holds needs a second wave.
    let rows = 4;
    assert_eq!(full % rows, 0);
    let m = rows * tile.bn as u64;
    let one_wave = phantom_gpu::kernel::gemm::estimate_with_tile(gpu, &reg.templates, tile, m, full / rows * tile.bm as u64, k, Dtype::Fp16).unwrap();
    let two_waves = phantom_gpu::kernel::gemm::estimate_with_tile(gpu, &reg.templates, tile, m, (full / rows + 1) * tile.bm as u64, k, Dtype::Fp16).unwrap();
    assert_eq!(one_wave.bound, phantom_gpu::kernel::Bound::Tensor);
    assert_eq!(one_wave.waves, 1);
    assert_eq!(two_waves.waves, 2);
    assert!(two_waves.kernel_ms > one_wave.kernel_ms * 1.3, "{} vs {}", two_waves.kernel_ms, one_wave.kernel_ms);
}

#[test]
fn edge_tiles_move_only_their_rows_inside_the_matrix() {
    // A tile's loads and stores are predicated on the matrix bounds: one CTA holding a
    // 36x5 corner of its 128x128 tile (a batched attention-sized bmm) computes the whole
    // tile but loads and stores only what lies inside, so it is faster than the same CTA
    // over a full tile, and never faster than the math of the whole tile.
    let reg = reg();
    let gpu = reg.gpu("a100-pcie-40gb").unwrap();
    let tile = reg.templates.gemm.tile.iter().find(|t| t.name == "ampere_sgemm_128x128").unwrap();
    let k = 4096;
    let corner = phantom_gpu::kernel::gemm::estimate_with_tile(gpu, &reg.templates, tile, 36, 5, k, Dtype::Fp32).unwrap();
    let full = phantom_gpu::kernel::gemm::estimate_with_tile(gpu, &reg.templates, tile, tile.bn as u64, tile.bm as u64, k, Dtype::Fp32).unwrap();
    assert_eq!((corner.ctas, full.ctas), (1, 1));
    assert!(corner.kernel_ms < full.kernel_ms, "{} vs {}", corner.kernel_ms, full.kernel_ms);
    let tile_math_s = 2.0 * (tile.bm * tile.bn) as f64 * k as f64 / (gpu.rates.ffma_flop_per_clk * corner.clock_mhz * 1e6);
    assert!(corner.kernel_ms / 1e3 >= tile_math_s, "{} ms beats the tile's math {} s", corner.kernel_ms, tile_math_s);
}

#[test]
fn gemm_grid_is_laid_out_as_cublas_lays_it() {
    // Regression: PyTorch's row-major C[m,n] is cuBLAS's column-major Cᵀ, so the tile's
    // first dimension runs along n. NeuSight recorded this P4 torch.bmm (b=859, m=22,
    // n=808, k=204) as maxwell_sgemm_128x64_nn with grid 7x1x859 = ⌈808/128⌉·⌈22/64⌉·b.
    let reg = reg();
    let gpu = reg.gpu("p4").unwrap();
    let op = Op::Gemm { b: 859, m: 22, n: 808, k: 204, bias: false };
    let p = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp32, Timing::Kernel).unwrap();
    assert_eq!(p.tile.as_deref(), Some("maxwell_sgemm_128x64"));
    assert_eq!(p.ctas, 7 * 859);
}

#[test]
fn predictions_are_deterministic() {
    let reg = reg();
    let gpu = reg.gpu("t4").unwrap();
    let op = Op::Conv2d { n: 8, c: 64, h: 56, w: 56, k: 64, r: 3, s: 3, stride: 1, pad: 1 };
    let a = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp32, Timing::Op).unwrap();
    let b = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp32, Timing::Op).unwrap();
    assert_eq!(a.predicted_ms.to_bits(), b.predicted_ms.to_bits());
}

#[test]
fn op_timing_adds_host_cost_kernel_timing_does_not() {
    let reg = reg();
    let gpu = reg.gpu("v100-pcie-32gb").unwrap();
    let op = Op::Softmax { rows: 64, cols: 64 };
    let k = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp32, Timing::Kernel).unwrap();
    let o = kernel::predict(gpu, &reg.templates, &op, Dtype::Fp32, Timing::Op).unwrap();
    assert_eq!(k.host_ms, 0.0);
    assert!(o.predicted_ms > k.predicted_ms + 0.005);
}

#[test]
fn clock_falls_under_power_limit_for_tensor_work() {
    // An L40S (350 W, 142 SMs) cannot hold its boost clock under dense FP16 tensor work;
    // an idle-ish memory-bound kernel keeps it.
    use phantom_gpu::sim::clock::{sustained_mhz, Activity};
    let reg = reg();
    let g = reg.gpu("l40s").unwrap();
    let boost = g.profile.compute.boost_clock_mhz;
    assert!(sustained_mhz(g, Activity::Tensor, 1.0) < boost * 0.95);
    assert_eq!(sustained_mhz(g, Activity::Memory, 1.0), boost);
}

#[test]
fn host_gaps_let_a_power_limited_gpu_clock_higher() {
    // A 70 W T4 cannot hold its boost clock under a full FFMA grid run back to back; the
    // same kernel called in an eager loop idles while the host prepares the next call, so
    // the averaged power allows a higher clock, never above boost.
    use phantom_gpu::sim::clock::{sustained_mhz, Activity};
    let reg = reg();
    let g = reg.gpu("t4").unwrap();
    let boost = g.profile.compute.boost_clock_mhz;
    let busy = sustained_mhz(g, Activity::Ffma, 1.0);
    let half = sustained_mhz(&g.with_duty(0.5), Activity::Ffma, 1.0);
    assert!(busy < boost && half > busy && half <= boost, "busy {busy}, half duty {half}, boost {boost}");
    // The same data in L2 both ways, so only the host gaps differ.
    let gemm = Op::Gemm { b: 1, m: 1024, n: 1024, k: 256, bias: false };
    let in_loop = Context { timing: Timing::Op, l2_warm: true };
    let back_to_back = Context { timing: Timing::Kernel, l2_warm: true };
    let a = kernel::predict_in(g, &reg.templates, &gemm, Dtype::Fp32, in_loop).unwrap();
    let b = kernel::predict_in(g, &reg.templates, &gemm, Dtype::Fp32, back_to_back).unwrap();
    assert!(a.clock_mhz > b.clock_mhz && a.kernel_ms < b.kernel_ms, "{a:?} vs {b:?}");
    // A GPU that holds boost under load (V100 PCIe) is unchanged.
    let v = reg.gpu("v100-pcie-32gb").unwrap();
    let a = kernel::predict_in(v, &reg.templates, &gemm, Dtype::Fp32, in_loop).unwrap();
    let b = kernel::predict_in(v, &reg.templates, &gemm, Dtype::Fp32, back_to_back).unwrap();
    assert_eq!(a.kernel_ms, b.kernel_ms);
}

#[test]
fn an_eager_call_pays_host_cost_for_the_launches_it_makes() {
    // Regression: the duty-cycle re-estimate may pick another algorithm (a one-kernel
    // implicit GEMM instead of a two-kernel Winograd) and the host cost followed the first
    // estimate's launch count.
    let reg = reg();
    let l = &reg.templates.launch;
    let mut checked = 0;
    for gpu in ["t4", "p4"] {
        let g = reg.gpu(gpu).unwrap();
        for n in [1, 4, 16, 64] {
            for c in [3, 32, 256, 1024] {
                for hw in [5, 9, 14, 28, 56] {
                    for k in [16, 128, 1024] {
                        let op = Op::Conv2d { n, c, h: hw, w: hw, k, r: 3, s: 3, stride: 1, pad: 1 };
                        let p = kernel::predict(g, &reg.templates, &op, Dtype::Fp32, Timing::Op).unwrap();
                        let expected = (l.host_us(&g.profile.vendor, "conv2d") + (p.launches - 1) as f64 * l.extra_launch_us) / 1000.0;
                        assert!((p.host_ms - expected).abs() < 1e-12, "{gpu} {op:?}: host {} ms for {} launches, expected {expected}", p.host_ms, p.launches);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 480);
}

#[test]
fn every_profile_peak_matches_its_isa_rates() {
    // ISA per-SM rates × SMs × boost clock reproduce the vendor's peak: within 12% for
    // FP32; for tensor peaks, which Hopper/Blackwell boards quote at a lower tensor clock
    // than their boost clock (H100 NVL: 1545 of 1785 MHz), from -12% to +20%.
    let reg = reg();
    for g in reg.gpus() {
        let clk = g.profile.compute.boost_clock_mhz * 1e6;
        if let Some(peak) = g.profile.peaks.fp32_tflops {
            let ours = g.rates.ffma_flop_per_clk * g.sms() * clk / 1e12;
            assert!((ours / peak - 1.0).abs() < 0.12, "{} fp32: ours {ours:.1} vs vendor {peak}", g.key());
        }
        if let (Some(peak), Some(r)) = (g.profile.peaks.fp16_tensor_tflops, g.tensor_flop_per_clk("fp16")) {
            let ours = r * g.sms() * clk / 1e12;
            assert!(ours / peak > 0.88 && ours / peak < 1.2, "{} fp16 tensor: ours {ours:.1} vs vendor {peak}", g.key());
        }
    }
}

#[test]
fn a_plain_gemm_call_runs_at_the_rate_of_cublas_unbatched_kernels() {
    // A plain GEMM call (nn.Linear, b = 1) runs cuBLAS kernels whose rate the NeuSight
    // traces time apart from bmm's strided-batched ones (`unbatched_issue`).
    let reg = reg();
    let base = reg.gpu("a100-pcie-40gb").unwrap();
    let with_rate = |v: f64| {
        let mut g = base.clone();
        std::sync::Arc::make_mut(&mut g.isa).efficiency.unbatched_issue = v;
        g
    };
    let ms = |g: &phantom_gpu::hw::Gpu, op: &Op, dtype: Dtype| {
        kernel::predict_in(g, &reg.templates, op, dtype, Context { timing: Timing::Kernel, l2_warm: false }).unwrap().kernel_ms
    };
    let (full, half) = (with_rate(1.0), with_rate(0.5));
    for plain in [gemm(4096, 4096, 4096), Op::Gemm { b: 1, m: 4096, n: 4096, k: 4096, bias: true }] {
        let ratio = ms(&half, &plain, Dtype::Fp32) / ms(&full, &plain, Dtype::Fp32);
        assert!(ratio > 1.8 && ratio < 2.05, "a math-bound plain GEMM at half the rate takes {ratio}x");
        // Tensor-core GEMMs are not the SIMT kernels.
        assert_eq!(ms(&half, &plain, Dtype::Fp16), ms(&full, &plain, Dtype::Fp16));
    }
    // A batched GEMM runs the strided-batched kernels, a convolution cuDNN's.
    let batched = Op::Gemm { b: 16, m: 1024, n: 1024, k: 1024, bias: false };
    assert_eq!(ms(&half, &batched, Dtype::Fp32), ms(&full, &batched, Dtype::Fp32));
    let conv = Op::Conv2d { n: 32, c: 256, h: 28, w: 28, k: 256, r: 3, s: 3, stride: 1, pad: 1 };
    assert_eq!(ms(&half, &conv, Dtype::Fp32), ms(&full, &conv, Dtype::Fp32));
}

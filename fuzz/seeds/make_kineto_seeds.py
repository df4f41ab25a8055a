"""Writes the seed traces of the `kineto` fuzz target (fuzz/seeds/kineto/): small
hand-written PyTorch profiler traces in the layout torch.profiler writes. Run with
`python3 fuzz/seeds/make_kineto_seeds.py` after changing it."""
import gzip
import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kineto")
os.makedirs(OUT, exist_ok=True)


def x(cat, name, pid, tid, ts, dur, **args):
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur, "args": args}


def rt(ts, corr):
    return x("cuda_runtime", "cudaLaunchKernel", 100, 100, ts, 4, correlation=corr)


def k(name, ts, dur, corr, grid=(4, 1, 1), block=(128, 1, 1), stream=7):
    return x("kernel", name, 0, stream, ts, dur, device=0, stream=stream, correlation=corr, grid=list(grid), block=list(block))


def op(name, ts, dur, dims, types, concrete=None):
    a = {"Input Dims": dims, "Input type": types}
    if concrete is not None:
        a["Concrete Inputs"] = concrete
    return x("cpu_op", name, 100, 100, ts, dur, **a)


def save(name, device, events, gz=False, extra=None):
    doc = {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": device, "numSms": 108}], "traceEvents": events}
    doc.update(extra or {})
    text = json.dumps(doc, separators=(",", ":")).encode()
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(gzip.compress(text, mtime=0) if gz else text)


# A transformer layer in fp16 on an A100: linear (addmm), flash attention, softmax,
# layer norm, embedding, element-wise ops, a reduction; one profiler step.
f16 = "c10::Half"
ev = [
    x("user_annotation", "ProfilerStep#1", 100, 100, 1000, 5000),
    op("aten::embedding", 1005, 20, [[32000, 512], [4, 128], [], [], []], [f16, "long int", "Scalar", "Scalar", "Scalar"]),
    rt(1010, 1), k("void at::native::indexSelectLargeIndex<c10::Half, long, unsigned int, 2, 2, -2, true>", 1100, 5, 1),
    op("aten::layer_norm", 1030, 20, [[4, 128, 512], [], [512], [512], [], []], [f16, "", f16, f16, "Scalar", "Scalar"]),
    rt(1035, 2), k("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::Half, float>", 1110, 6, 2),
    op("aten::linear", 1060, 40, [[4, 128, 512], [1536, 512], [1536]], [f16, f16, f16]),
    op("aten::addmm", 1065, 30, [[1536], [512, 512], [512, 1536], [], []], [f16, f16, f16, "Scalar", "Scalar"]),
    rt(1070, 3), k("ampere_fp16_s16816gemm_fp16_128x128_ldg8_f2f_stages_32x5_tn", 1120, 30, 3, grid=(12, 4, 1), block=(256, 1, 1)),
    op("aten::_scaled_dot_product_flash_attention", 1110, 40, [[4, 8, 128, 64], [4, 8, 128, 64], [4, 8, 128, 64], [], [], [], []],
       [f16, f16, f16, "Scalar", "Scalar", "Scalar", ""], ["", "", "", "0.", "True", "False", ""]),
    rt(1115, 4), k("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4, false, false, cutlass::half_t>, false, true, false, false, true, true, false>(Flash_fwd_params)", 1160, 25, 4, grid=(1, 4, 8)),
    op("aten::softmax", 1160, 20, [[4, 8, 128, 128], [], []], [f16, "Scalar", ""]),
    rt(1165, 5), k("void (anonymous namespace)::softmax_warp_forward<c10::Half, c10::Half, float, 7, false, false>", 1190, 8, 5),
    op("aten::add", 1200, 10, [[4, 128, 512], [4, 128, 512], []], [f16, f16, "Scalar"]),
    rt(1203, 6), k("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::Half>, at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<c10::Half>, at::detail::Array<char*, 3>)", 1200, 3, 6),
    op("aten::gelu", 1220, 10, [[4, 128, 2048], []], [f16, ""], ["", "'tanh'"]),
    rt(1223, 7), k("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl(at::TensorIteratorBase&, at::native::GeluType)::{lambda()#2}::operator()() const::{lambda()#4}::operator()() const::{lambda(c10::Half)#1}, at::detail::Array<char*, 2> >", 1210, 4, 7),
    op("aten::sum", 1240, 10, [[4, 128, 512], [], [], []], [f16, "", "Scalar", ""]),
    rt(1243, 8), k("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<c10::Half, at::native::func_wrapper_t<c10::Half, at::native::sum_functor<c10::Half, float, c10::Half>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, unsigned int, c10::Half, 4> >", 1220, 5, 8),
    x("gpu_memcpy", "Memcpy HtoD (Pageable -> Device)", 0, 7, 1300, 12, device=0, stream=7, correlation=9, bytes=92928),
    x("cuda_runtime", "cudaMemcpyAsync", 100, 100, 1290, 20, correlation=9),
    x("gpu_memset", "Memset (Device)", 0, 20, 1320, 4, device=0, stream=20, correlation=10, bytes=20736),
    x("cuda_runtime", "cudaMemsetAsync", 100, 100, 1315, 3, correlation=10),
]
save("transformer_a100.json", "NVIDIA A100-SXM4-80GB", ev, extra={"distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 1}})

# Training on a V100 in fp32, kernels linked by ac2g flow events only (no correlation
# on the kernels): convolution forward and backward, batch norm, pooling, an Adam step, an
# NCCL all-reduce; gzip-compressed.
ev = [
    x("user_annotation", "ProfilerStep#3", 100, 100, 1000, 9000),
    op("aten::conv2d", 1010, 50, [[8, 3, 32, 32], [16, 3, 3, 3], [16], [], [], [], []], ["float"] * 3 + [""] * 4, ["", "", "", "[1, 1]", "[1, 1]", "[1, 1]", "1"]),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1020, 4, correlation=21),
    {**k("sm70_xmma_fprop_implicit_gemm_f32f32_f32f32_f32_nchwkcrs_nchw_tilesize64x64x8_stage1_warpsize2x2x1_g1_ffma_aligna4_alignc4", 1100, 40, 21, grid=(8, 1, 1)), "args": {"device": 0, "stream": 7, "grid": [8, 1, 1], "block": [128, 1, 1]}},
    op("aten::batch_norm", 1070, 30, [[8, 16, 32, 32], [16], [16], [16], [16], [], [], [], []], ["float"] * 5 + ["Scalar"] * 4),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1075, 4, correlation=22),
    {**k("void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1>", 1150, 10, 22), "args": {"device": 0, "stream": 7}},
    op("aten::max_pool2d", 1110, 20, [[8, 16, 32, 32], [], [], [], [], []], ["float", "", "", "", "", "Scalar"]),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1115, 4, correlation=23),
    {**k("void at::native::(anonymous namespace)::max_pool_forward_nchw<float, float>", 1170, 6, 23), "args": {"device": 0, "stream": 7}},
    op("aten::convolution_backward", 1200, 100, [[8, 16, 32, 32], [8, 3, 32, 32], [16, 3, 3, 3], [], [], [], [], [], [], [], []], ["float"] * 3 + [""] * 8),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1210, 4, correlation=24),
    {**k("sm70_xmma_dgrad_implicit_gemm_f32f32_f32f32_f32_nhwckrsc_nchw_tilesize64x64x8", 1300, 40, 24, grid=(8, 16, 1)), "args": {"device": 0, "stream": 7}},
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1230, 4, correlation=25),
    {**k("sm70_xmma_wgrad_implicit_gemm_f32f32_f32f32_f32_nhwckrsc_nchw_tilesize64x64x8", 1341, 30, 25, grid=(1, 5, 1)), "args": {"device": 0, "stream": 7}},
    op("aten::_fused_adam_", 1400, 50, [[[16, 3, 3, 3], [16]], [[16, 3, 3, 3], [16]], [[16, 3, 3, 3], [16]]], ["TensorList", "TensorList", "TensorList"]),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1410, 4, correlation=26),
    {**k("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::TensorListMetadata<4>, at::native::(anonymous namespace)::FusedAdamMathFunctor<float, 4>>", 1450, 10, 26), "args": {"device": 0, "stream": 7}},
    op("nccl:all_reduce", 1500, 40, [[[464]]], ["TensorList"]),
    x("cuda_runtime", "cudaLaunchKernel", 100, 100, 1505, 4, correlation=27),
    {**k("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevComm*, unsigned long, ncclWork*)", 1550, 20, 27, stream=30), "args": {"device": 0, "stream": 30}},
]
for corr, ts_h, ts_d, tid in [(21, 1020, 1100, 7), (22, 1075, 1150, 7), (23, 1115, 1170, 7), (24, 1210, 1300, 7), (25, 1230, 1341, 7), (26, 1410, 1450, 7), (27, 1505, 1550, 30)]:
    ev.append({"ph": "s", "id": corr, "pid": 100, "tid": 100, "ts": ts_h, "cat": "ac2g", "name": "ac2g"})
    ev.append({"ph": "f", "id": corr, "pid": 0, "tid": tid, "ts": ts_d, "cat": "ac2g", "name": "ac2g", "bp": "e"})
save("cnn_train_v100.json.gz", "Tesla V100-SXM2-16GB", ev, gz=True, extra={"distributedInfo": {"world_size": 2}})

# A bare array of events, strings for numbers, an unknown GPU and a kernel without a
# launching op.
ev = [
    {"ph": "X", "cat": "Kernel", "name": "my_custom_kernel", "pid": "0", "tid": "stream 7", "ts": "100.5", "dur": "3", "args": {"device": "0", "grid": [1, 1, 1]}},
    {"ph": "X", "cat": "kernel", "name": "void cutlass::Kernel<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x4_tn_align8>(Params)", "pid": 0, "tid": 7, "ts": 104, "dur": 10, "args": {"device": 0, "stream": 7, "correlation": 5}},
    {"ph": "M", "name": "process_name", "pid": 0, "args": {"name": "gpu"}},
]
with open(os.path.join(OUT, "bare_array.json"), "w") as f:
    json.dump(ev, f)
print("wrote", sorted(os.listdir(OUT)))

"""Writes the ONNX seed models of the `onnx` fuzz target (fuzz/seeds/onnx/*.onnx).

Small hand-written graphs, each exercising a few op families of the importer: run with
`python3 fuzz/seeds/make_onnx_seeds.py` (needs the `onnx` package) after changing it.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx")


def w(name, shape):
    """A float weight without data, as in a weight-stripped file (keeps the seeds small)."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(shape)
    return t


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def save(name, nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, os.path.join(OUT, name + ".onnx"))


def vi(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


os.makedirs(OUT, exist_ok=True)
N = helper.make_node

# An MLP: Gemm, Relu, Dropout, Softmax; symbolic batch.
save("mlp", [
    N("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
    N("Relu", ["h"], ["r"]),
    N("Dropout", ["r"], ["d"]),
    N("Gemm", ["d", "w2", "b2"], ["z"], transB=1),
    N("Softmax", ["z"], ["y"], axis=1),
], [vi("x", ["N", 64])], [vi("y", ["N", 10])], [w("w1", [32, 64]), w("b1", [32]), w("w2", [10, 32]), w("b2", [10])])

# A small CNN: Conv, BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool,
# Flatten, Gemm; a strided and a dilated convolution, padding, a grouped convolution.
save("cnn", [
    N("Conv", ["x", "c1w", "c1b"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
    N("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn"]),
    N("Relu", ["bn"], ["r"]),
    N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
    N("Conv", ["p", "c2w"], ["c2"], kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 2, 2, 2], group=2),
    N("AveragePool", ["c2"], ["a"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
    N("GlobalAveragePool", ["a"], ["g"]),
    N("Flatten", ["g"], ["f"], axis=1),
    N("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
], [vi("x", ["batch", 3, 32, 32])], [vi("y", ["batch", 10])],
    [w("c1w", [16, 3, 3, 3]), w("c1b", [16]), w("s", [16]), w("bb", [16]), w("m", [16]), w("v", [16]),
     w("c2w", [16, 8, 3, 3]), w("fw", [10, 16]), w("fb", [10])])

# A transformer attention block as exporters write it: MatMul, Add, the
# Shape → Gather → Unsqueeze → Concat → Reshape arithmetic, Transpose, Div, Softmax,
# LayerNormalization, Split, Slice, Gather of an embedding.
save("attention", [
    N("Gather", ["emb", "ids"], ["x"]),
    N("LayerNormalization", ["x", "ln_s", "ln_b"], ["xn"], axis=-1),
    N("MatMul", ["xn", "wqkv"], ["qkv0"]),
    N("Add", ["qkv0", "bqkv"], ["qkv"]),
    N("Split", ["qkv", "split"], ["q", "k", "v"], axis=2),
    N("Shape", ["x"], ["shp"]),
    N("Gather", ["shp", "zero"], ["bsz"], axis=0),
    N("Gather", ["shp", "one"], ["seq"], axis=0),
    N("Unsqueeze", ["bsz", "axes0"], ["bsz1"]),
    N("Unsqueeze", ["seq", "axes0"], ["seq1"]),
    N("Concat", ["bsz1", "seq1", "heads", "hdim"], ["newshape"], axis=0),
    N("Reshape", ["q", "newshape"], ["qh"]),
    N("Reshape", ["k", "newshape"], ["kh"]),
    N("Reshape", ["v", "newshape"], ["vh"]),
    N("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),
    N("Transpose", ["kh"], ["kt"], perm=[0, 2, 3, 1]),
    N("Transpose", ["vh"], ["vt"], perm=[0, 2, 1, 3]),
    N("MatMul", ["qt", "kt"], ["s0"]),
    N("Div", ["s0", "scale"], ["s"]),
    N("Softmax", ["s"], ["p"], axis=-1),
    N("MatMul", ["p", "vt"], ["o"]),
    N("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
    N("Reshape", ["ot", "flat"], ["of"]),
    N("Slice", ["of", "st", "en", "ax"], ["sl"]),
    N("ReduceMean", ["sl", "rax"], ["y"], keepdims=1),
], [vi("ids", ["B", 16], TensorProto.INT64)], [vi("y", ["B", 1, 64])],
    [w("emb", [100, 64]), w("ln_s", [64]), w("ln_b", [64]), w("wqkv", [64, 192]), w("bqkv", [192]),
     ints("split", [64, 64, 64]), ints("zero", 0), ints("one", 1), ints("axes0", [0]), ints("heads", [4]),
     ints("hdim", [16]), numpy_helper.from_array(np.array(4.0, dtype=np.float32), "scale"),
     ints("flat", [0, 0, 64]), ints("st", [0]), ints("en", [8]), ints("ax", [1]), ints("rax", [1])])

# Weight-stripped: weights made by ConstantOfShape; Constant, Cast, Range, Expand, Tile,
# Concat, Pad, Resize, Squeeze, Unsqueeze, ReduceSum, ArgMax.
save("stripped", [
    N("Constant", [], ["wshape"], value=numpy_helper.from_array(np.array([8, 4, 3, 3], dtype=np.int64))),
    N("ConstantOfShape", ["wshape"], ["cw"], value=numpy_helper.from_array(np.array([0.0], dtype=np.float32))),
    N("Conv", ["x", "cw"], ["c"], kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
    N("Pad", ["c", "pads"], ["cp"], mode="constant"),
    N("Resize", ["cp", "", "scales"], ["up"], mode="nearest"),
    N("Range", ["r0", "r1", "r2"], ["rng"]),
    N("Cast", ["rng"], ["rngf"], to=TensorProto.FLOAT),
    N("Expand", ["rngf", "eshape"], ["ex"]),
    N("Tile", ["ex", "reps"], ["tl"]),
    N("Unsqueeze", ["tl", "uax"], ["tu"]),
    N("Squeeze", ["tu", "uax"], ["ts"]),
    N("ReduceSum", ["up", "rax"], ["rs"], keepdims=0),
    N("ArgMax", ["rs"], ["am"], axis=1),
    N("Concat", ["rs", "rs"], ["y"], axis=1),
], [vi("x", [1, 4, 8, 8])], [vi("y", [1, 40, 20]), vi("am", [1, 20]), vi("ts", [2, 4])],
    [ints("pads", [0, 0, 1, 1, 0, 0, 1, 1]), numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales"),
     ints("r0", 0), ints("r1", 4), ints("r2", 1), ints("eshape", [2, 4]), ints("reps", [1, 1]), ints("uax", [0]),
     ints("rax", [1])])

# Normalisations, pools and reductions of other kinds; opset 11 attribute forms
# (Split, Squeeze, Unsqueeze, ReduceSum axes as attributes).
save("norms_opset11", [
    N("InstanceNormalization", ["x", "s", "b"], ["i"]),
    N("LRN", ["i"], ["l"], size=3),
    N("LpPool", ["l"], ["lp"], kernel_shape=[2, 2]),
    N("GlobalMaxPool", ["lp"], ["gm"]),
    N("Squeeze", ["gm"], ["sq"], axes=[2, 3]),
    N("Unsqueeze", ["sq"], ["us"], axes=[1]),
    N("ReduceSum", ["us"], ["rs"], axes=[1], keepdims=0),
    N("ReduceMax", ["rs"], ["rm"], axes=[1], keepdims=1),
    N("Split", ["rs"], ["a", "b2"], axis=1, split=[2, 2]),
    N("LogSoftmax", ["a"], ["y"], axis=1),
    N("Hardmax", ["b2"], ["h"], axis=1),
    N("Identity", ["rm"], ["z"]),
], [vi("x", [2, 4, 8, 8])], [vi("y", [2, 2]), vi("h", [2, 2]), vi("z", [2, 1])],
    [w("s", [4]), w("b", [4])], opset=11)
print("wrote", sorted(os.listdir(OUT)))

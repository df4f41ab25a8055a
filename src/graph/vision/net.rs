//! Layer helpers shared by the vision builders: one method per framework op, writing one
//! graph node each, with NCHW shapes for feature maps and `[batch, tokens, width]` for
//! token sequences.
//!
//! Weights are looked up by name, so a sub-network written several times into the same
//! graph (the UNet of each diffusion step) shares one set of parameters: node names get
//! `node_prefix`, weight names `weight_prefix`.

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphOp, TensorId};
use std::collections::HashMap;

pub(crate) struct Net {
    pub g: Graph,
    weights: HashMap<String, TensorId>,
    /// Prepended to node (and activation) names.
    pub node_prefix: String,
    /// Prepended to weight names.
    pub weight_prefix: String,
}

/// `Error::Usage` unless the batch is positive and `image` a positive multiple of `multiple`
/// no smaller than `min`.
pub(crate) fn check_input(model: &str, batch: u64, image: u64, multiple: u64, min: u64) -> Result<()> {
    if batch == 0 {
        return Err(Error::Usage(format!("{model}: batch size must be at least 1")));
    }
    let multiple = multiple.max(1);
    let min = min.max(multiple);
    if image < min || !image.is_multiple_of(multiple) {
        let rule = if multiple > 1 { format!("a multiple of {multiple}, at least {min}") } else { format!("at least {min}") };
        return Err(Error::Usage(format!("{model}: image size {image} is not supported (it must be {rule})")));
    }
    Ok(())
}

fn numel(shape: &[u64]) -> u64 {
    shape.iter().product()
}

impl Net {
    pub fn new(name: &str, family: &str) -> Net {
        Net { g: Graph::new(name, family), weights: HashMap::new(), node_prefix: String::new(), weight_prefix: String::new() }
    }

    pub fn finish(self) -> Result<Graph> {
        self.g.check()?;
        Ok(self.g)
    }

    pub fn shape(&self, t: TensorId) -> Vec<u64> {
        self.g.shape(t).to_vec()
    }

    /// A parameter, created once per name.
    pub fn weight(&mut self, name: &str, shape: Vec<u64>) -> TensorId {
        let full = format!("{}{name}", self.weight_prefix);
        if let Some(&id) = self.weights.get(&full) {
            debug_assert_eq!(self.g.shape(id), shape.as_slice(), "weight {full} reused with another shape");
            return id;
        }
        let id = self.g.weight(full.clone(), shape);
        self.weights.insert(full, id);
        id
    }

    pub fn input(&mut self, name: &str, shape: Vec<u64>, index: bool) -> TensorId {
        let full = format!("{}{name}", self.node_prefix);
        self.g.input(full, shape, index)
    }

    pub fn node(&mut self, name: &str, op: GraphOp, ins: &[TensorId], out: Vec<u64>) -> TensorId {
        let full = format!("{}{name}", self.node_prefix);
        self.g.node(full, op, ins, out)
    }

    // ---- convolutional layers ----

    /// `nn.Conv2d` with a square `r`×`r` kernel.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(&mut self, name: &str, x: TensorId, k: u64, r: u64, stride: u64, pad: u64, groups: u64, bias: bool) -> TensorId {
        let s = self.shape(x);
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        debug_assert!(c.is_multiple_of(groups) && k.is_multiple_of(groups), "{name}: channels {c}→{k} not divisible by {groups} groups");
        debug_assert!(h + 2 * pad >= r && w + 2 * pad >= r, "{name}: {h}×{w} map too small for a {r}×{r} kernel");
        let (p, q) = crate::kernel::op::conv_out(h, w, r, r, stride, pad);
        let wt = self.weight(&format!("{name}.weight"), vec![k, c / groups, r, r]);
        let mut ins = vec![x, wt];
        if bias {
            ins.push(self.weight(&format!("{name}.bias"), vec![k]));
        }
        let op = GraphOp::Conv2d { n, c, h, w, k, r, s: r, stride, pad, groups, bias };
        self.node(name, op, &ins, vec![n, k, p, q])
    }

    /// `nn.BatchNorm2d` (affine; the running statistics are buffers, not parameters).
    pub fn bn(&mut self, name: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let c = s[1];
        let w = self.weight(&format!("{name}.weight"), vec![c]);
        let b = self.weight(&format!("{name}.bias"), vec![c]);
        self.node(name, GraphOp::BatchNorm { numel: numel(&s), channels: c }, &[x, w, b], s)
    }

    /// `FrozenBatchNorm2d` (DETR, RT-DETR backbones): weight, bias and statistics are
    /// buffers, so no parameters; its forward is `scale = w * (rv + eps).rsqrt();
    /// bias = b - rm * scale; x * scale + bias` — five kernels over the channels, two over
    /// the map. (`pow_scalar` stands in for `rsqrt`.)
    pub fn frozen_bn(&mut self, name: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let c = s[1];
        let e = |net: &mut Net, n: &str, f: &str, ins: &[TensorId], inputs: u64| {
            net.node(&format!("{name}.{n}"), GraphOp::Elementwise { func: f.into(), numel: c, inputs }, ins, vec![c])
        };
        let v = e(self, "var_eps", "add_scalar", &[], 1);
        let r = e(self, "rsqrt", "pow_scalar", &[v], 1);
        let scale = e(self, "scale", "mul", &[r], 2);
        let ms = e(self, "mean_scale", "mul", &[scale], 2);
        let shift = e(self, "shift", "sub", &[ms], 2);
        let y = self.ew(&format!("{name}.mul"), "mul", &[x, scale]);
        self.ew(&format!("{name}.add"), "add", &[y, shift])
    }

    /// `nn.GroupNorm` over NCHW (or `[batch, channels, …]`) maps.
    pub fn group_norm(&mut self, name: &str, x: TensorId, groups: u64) -> TensorId {
        let s = self.shape(x);
        let c = s[1];
        let w = self.weight(&format!("{name}.weight"), vec![c]);
        let b = self.weight(&format!("{name}.bias"), vec![c]);
        let rows = s[0] * groups;
        let op = GraphOp::GroupNorm { rows, cols: numel(&s) / rows };
        self.node(name, op, &[x, w, b], s)
    }

    /// `nn.LayerNorm` over the last dimension.
    pub fn layer_norm(&mut self, name: &str, x: TensorId) -> TensorId {
        self.layer_norm_shared(name, name, x)
    }

    /// A layer norm node `name` using the module `module`'s weights (a module called more
    /// than once).
    pub fn layer_norm_shared(&mut self, name: &str, module: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let cols = *s.last().unwrap();
        let w = self.weight(&format!("{module}.weight"), vec![cols]);
        let b = self.weight(&format!("{module}.bias"), vec![cols]);
        self.node(name, GraphOp::LayerNorm { rows: numel(&s) / cols, cols }, &[x, w, b], s)
    }

    /// A pointwise op over the shape of `ins[0]`, reading every tensor in `ins`.
    pub fn ew(&mut self, name: &str, func: &str, ins: &[TensorId]) -> TensorId {
        let s = self.shape(ins[0]);
        let op = GraphOp::Elementwise { func: func.into(), numel: numel(&s), inputs: ins.len() as u64 };
        self.node(name, op, ins, s)
    }

    /// A pointwise op whose other operands are constants or buffers outside the graph
    /// (anchors, strides, masks): `inputs` operands are read, only `x` is a tensor here.
    pub fn ew_const(&mut self, name: &str, func: &str, x: TensorId, inputs: u64) -> TensorId {
        let s = self.shape(x);
        let op = GraphOp::Elementwise { func: func.into(), numel: numel(&s), inputs };
        self.node(name, op, &[x], s)
    }

    pub fn silu(&mut self, name: &str, x: TensorId) -> TensorId {
        self.ew(name, "silu", &[x])
    }

    pub fn relu(&mut self, name: &str, x: TensorId) -> TensorId {
        self.ew(name, "relu", &[x])
    }

    pub fn add(&mut self, name: &str, a: TensorId, b: TensorId) -> TensorId {
        self.ew(name, "add", &[a, b])
    }

    /// `torch.cat` along `dim`.
    pub fn cat(&mut self, name: &str, ins: &[TensorId], dim: usize) -> TensorId {
        let mut s = self.shape(ins[0]);
        s[dim] = ins.iter().map(|&t| self.g.shape(t)[dim]).sum();
        self.node(name, GraphOp::Copy { numel: numel(&s) }, ins, s)
    }

    /// A materialising copy to `shape` (permute + reshape, `.contiguous()`, gather).
    pub fn copy(&mut self, name: &str, ins: &[TensorId], shape: Vec<u64>) -> TensorId {
        self.node(name, GraphOp::Copy { numel: numel(&shape) }, ins, shape)
    }

    /// A view (reshape, flatten, split, chunk): no kernel.
    pub fn view(&mut self, name: &str, x: TensorId, shape: Vec<u64>) -> TensorId {
        debug_assert!(numel(&shape) <= numel(self.g.shape(x)), "{name}: view larger than its source");
        self.node(name, GraphOp::View, &[x], shape)
    }

    /// A broadcasting view (`expand`): no kernel, may be larger than its source.
    pub fn expand(&mut self, name: &str, x: TensorId, shape: Vec<u64>) -> TensorId {
        self.node(name, GraphOp::View, &[x], shape)
    }

    /// Nearest-neighbour `F.interpolate(scale_factor)`.
    pub fn upsample(&mut self, name: &str, x: TensorId, factor: u64) -> TensorId {
        let s = self.shape(x);
        self.copy(name, &[x], vec![s[0], s[1], s[2] * factor, s[3] * factor])
    }

    /// Max or average pooling with a square window (`ceil` as `ceil_mode=True`).
    pub fn pool(&mut self, name: &str, x: TensorId, k: u64, stride: u64, pad: u64, ceil: bool) -> TensorId {
        let s = self.shape(x);
        let out = |d: u64| {
            let span = d + 2 * pad - k;
            if ceil {
                span.div_ceil(stride) + 1
            } else {
                span / stride + 1
            }
        };
        let o = vec![s[0], s[1], out(s[2]), out(s[3])];
        self.node(name, GraphOp::Pool { numel_in: numel(&s), numel_out: numel(&o) }, &[x], o)
    }

    /// Global average pooling to `[n, c, 1, 1]`.
    pub fn global_pool(&mut self, name: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let o = vec![s[0], s[1], 1, 1];
        self.node(name, GraphOp::Pool { numel_in: numel(&s), numel_out: s[0] * s[1] }, &[x], o)
    }

    /// A reduction (max, sum, argmax, top-k) to `out`.
    pub fn reduce(&mut self, name: &str, x: TensorId, out: Vec<u64>) -> TensorId {
        let s = self.shape(x);
        self.node(name, GraphOp::Reduce { numel_in: numel(&s), numel_out: numel(&out) }, &[x], out)
    }

    // ---- token layers ----

    /// `nn.Linear(k, n)` over every row of `x` (`[…, k]` → `[…, n]`).
    pub fn linear(&mut self, name: &str, x: TensorId, n: u64, bias: bool) -> TensorId {
        self.linear_shared(name, name, x, n, bias)
    }

    /// A linear node `name` using the module `module`'s weights.
    pub fn linear_shared(&mut self, name: &str, module: &str, x: TensorId, n: u64, bias: bool) -> TensorId {
        let mut s = self.shape(x);
        let k = *s.last().unwrap();
        let m = numel(&s) / k;
        let w = self.weight(&format!("{module}.weight"), vec![n, k]);
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.weight(&format!("{module}.bias"), vec![n]));
        }
        *s.last_mut().unwrap() = n;
        self.node(name, GraphOp::MatMul { b: 1, m, n, k, bias }, &ins, s)
    }

    /// Softmax over the last dimension.
    pub fn softmax(&mut self, name: &str, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let cols = *s.last().unwrap();
        self.node(name, GraphOp::Softmax { rows: numel(&s) / cols, cols }, &[x], s)
    }

    /// Batched matmul of two activations: `b` products of (m×k)·(k×n), output `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn bmm(&mut self, name: &str, a: TensorId, bt: TensorId, b: u64, m: u64, n: u64, k: u64, out: Vec<u64>) -> TensorId {
        debug_assert_eq!(b * m * n, numel(&out));
        self.node(name, GraphOp::MatMul { b, m, n, k, bias: false }, &[a, bt], out)
    }

    /// Scaled dot-product attention: `q` is `[b, sq, heads·d]`, `k`/`v` are `[b, skv, heads·d]`;
    /// the output has the shape of `q`.
    pub fn sdpa(&mut self, name: &str, q: TensorId, k: TensorId, v: TensorId, heads: u64) -> TensorId {
        let qs = self.shape(q);
        let ks = self.shape(k);
        let (b, sq, width) = (qs[0], qs[1], qs[2]);
        let op = GraphOp::Attention { b, hq: heads, hkv: heads, sq, skv: ks[1], d: width / heads, causal: false };
        self.node(name, op, &[q, k, v], qs)
    }
}

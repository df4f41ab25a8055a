//! Detection transformers: DETR (facebookresearch/detr, ResNet-50) and RT-DETR
//! (lyuwenyu/RT-DETR, `rtdetr_r50vd`), as their reference PyTorch code runs in eval mode.
//!
//! Both use `nn.MultiheadAttention` with its default `need_weights=True` and distinct
//! query/key/value tensors, which PyTorch runs as the unfused math path: three input
//! projections, scaled `bmm`, softmax, `bmm`, a transpose copy, the output projection and
//! the head-averaged attention weights. The graphs spell that path out instead of a fused
//! `Attention` node. Constant buffers (frozen batch-norm statistics, RT-DETR's anchors and
//! position table) are not graph tensors; the kernels that read them say so in `inputs`.

use super::net::{check_input, Net};
use super::resnet::{resnet_vd_body, torchvision_body, NormKind};
use crate::error::{Error, Result};
use crate::graph::{Graph, TensorId};

/// `nn.MultiheadAttention(e, heads)` forward with `need_weights=True`. Token tensors are
/// `[batch, tokens, e]` (DETR is sequence-first; the layout does not change the work).
/// `padding` adds the key-padding mask handling (bool → float mask, expanded per head).
fn mha(net: &mut Net, p: &str, q: TensorId, k: TensorId, v: TensorId, heads: u64, padding: Option<TensorId>) -> TensorId {
    let qs = net.shape(q);
    let (b, sq, e) = (qs[0], qs[1], qs[2]);
    let skv = net.shape(k)[1];
    let d = e / heads;
    let q = net.linear(&format!("{p}.q_proj"), q, e, true);
    let k = net.linear(&format!("{p}.k_proj"), k, e, true);
    let v = net.linear(&format!("{p}.v_proj"), v, e, true);
    let mask = padding.map(|m| {
        let f = net.ew(&format!("{p}.mask_zeros"), "mul_scalar", &[m]);
        let f = net.ew(&format!("{p}.mask_fill"), "where", &[f, m]);
        net.copy(&format!("{p}.mask_expand"), &[f], vec![b * heads, 1, skv])
    });
    let q = net.ew(&format!("{p}.q_scale"), "mul_scalar", &[q]);
    let mut ins_scores = vec![q, k];
    ins_scores.extend(mask);
    let scores = net.node(
        &format!("{p}.scores"),
        crate::graph::GraphOp::MatMul { b: b * heads, m: sq, n: skv, k: d, bias: mask.is_some() },
        &ins_scores,
        vec![b * heads, sq, skv],
    );
    let probs = net.softmax(&format!("{p}.softmax"), scores);
    let o = net.bmm(&format!("{p}.av"), probs, v, b * heads, sq, d, skv, vec![b * heads, sq, d]);
    let o = net.copy(&format!("{p}.transpose"), &[o], vec![b, sq, e]);
    let o = net.linear(&format!("{p}.out_proj"), o, e, true);
    let _weights = net.reduce(&format!("{p}.weights_mean"), probs, vec![b, sq, skv]);
    o
}

/// A post-norm encoder/decoder feed-forward block: `norm(x + linear2(act(linear1(x))))`.
fn ffn(net: &mut Net, p: &str, x: TensorId, ffn: u64, act: &str, norm: &str) -> TensorId {
    let e = *net.shape(x).last().unwrap();
    let h = net.linear(&format!("{p}.linear1"), x, ffn, true);
    let h = net.ew(&format!("{p}.activation"), act, &[h]);
    let h = net.linear(&format!("{p}.linear2"), h, e, true);
    let y = net.add(&format!("{p}.add_ffn"), x, h);
    net.layer_norm(&format!("{p}.{norm}"), y)
}

/// DETR's `MLP`: `layers` linears with ReLU between.
fn mlp(net: &mut Net, p: &str, x: TensorId, hidden: u64, out: u64, layers: usize) -> TensorId {
    mlp_shared(net, p, p, x, hidden, out, layers)
}

/// An `MLP` call `p` using module `module`'s weights.
fn mlp_shared(net: &mut Net, p: &str, module: &str, mut x: TensorId, hidden: u64, out: u64, layers: usize) -> TensorId {
    for i in 0..layers {
        let n = if i + 1 == layers { out } else { hidden };
        x = net.linear_shared(&format!("{p}.layers.{i}"), &format!("{module}.layers.{i}"), x, n, true);
        if i + 1 < layers {
            x = net.relu(&format!("{p}.relu.{i}"), x);
        }
    }
    x
}

/// DETR-R50 as `facebookresearch/detr` (`detr_resnet50`): ResNet-50 with frozen batch
/// norm, a 1×1 projection to 256, sine positions, 6 post-norm encoder and 6 decoder
/// layers (8 heads, FFN 2048), 100 queries, class (91+1) and box heads on every decoder
/// layer (auxiliary outputs). Input `height`×`width` (COCO evaluation resizes the short
/// side to 800 and caps the long side at 1333), each at least 32.
pub fn detr_r50_hw(batch: u64, height: u64, width: u64) -> Result<Graph> {
    let name = "detr-r50";
    check_input(name, batch, height, 1, 32)?;
    check_input(name, batch, width, 1, 32)?;
    let mut net = Net::new(name, "detr");
    let img = net.input("samples.tensors", vec![batch, 3, height, width], false);
    let pad_mask = net.input("samples.mask", vec![batch, height, width], false);
    let [_, _, _, f] = torchvision_body(&mut net, "backbone.0.body.", img, NormKind::Frozen);
    let fs = net.shape(f);
    let (h, w) = (fs[2], fs[3]);
    let s = h * w;
    // Mask: F.interpolate(m[None].float(), size).to(bool)[0].
    let m = net.ew("backbone.mask.float", "copy", &[pad_mask]);
    let m = net.copy("backbone.mask.interpolate", &[m], vec![batch, h, w]);
    let mask = net.ew("backbone.mask.bool", "copy", &[m]);
    // PositionEmbeddingSine(128, normalize=True); `exp` stands in for sin and cos.
    let pe = "backbone.1";
    let not_mask = net.ew(&format!("{pe}.not_mask"), "sub_scalar", &[mask]);
    let mut embeds = Vec::new();
    for axis in ["y", "x"] {
        let c = net.ew(&format!("{pe}.{axis}_cumsum"), "cumsum", &[not_mask]);
        let last = net.copy(&format!("{pe}.{axis}_last"), &[c], if axis == "y" { vec![batch, 1, w] } else { vec![batch, h, 1] });
        let last = net.ew(&format!("{pe}.{axis}_eps"), "add_scalar", &[last]);
        let c = net.ew(&format!("{pe}.{axis}_normalize"), "div", &[c, last]);
        let c = net.ew(&format!("{pe}.{axis}_scale"), "mul_scalar", &[c]);
        let c = net.view(&format!("{pe}.{axis}_unsqueeze"), c, vec![batch, h, w, 1]);
        let t = net.node(
            &format!("{pe}.{axis}_div_dim_t"),
            crate::graph::GraphOp::Elementwise { func: "div".into(), numel: batch * s * 128, inputs: 2 },
            &[c],
            vec![batch, h, w, 128],
        );
        let half = net.view(&format!("{pe}.{axis}_even"), t, vec![batch, h, w, 64]);
        let sin = net.ew(&format!("{pe}.{axis}_sin"), "exp", &[half]);
        let half = net.view(&format!("{pe}.{axis}_odd"), t, vec![batch, h, w, 64]);
        let cos = net.ew(&format!("{pe}.{axis}_cos"), "exp", &[half]);
        embeds.push(net.copy(&format!("{pe}.{axis}_stack"), &[sin, cos], vec![batch, h, w, 128]));
    }
    let pos = net.cat(&format!("{pe}.cat"), &embeds, 3);
    let pos = net.view(&format!("{pe}.permute"), pos, vec![batch, s, 256]);
    let f = net.conv("input_proj", f, 256, 1, 1, 0, 1, true);
    let src = net.view("transformer.flatten", f, vec![batch, s, 256]);
    let key_mask = net.view("transformer.mask_flatten", mask, vec![batch, s]);
    let query_embed = net.weight("query_embed.weight", vec![100, 256]);
    let query_pos = net.copy("transformer.query_repeat", &[query_embed], vec![batch, 100, 256]);
    let tgt = net.ew("transformer.tgt_zeros", "mul_scalar", &[query_pos]);

    let mut x = src;
    for l in 0..6 {
        let p = format!("transformer.encoder.layers.{l}");
        let q = net.add(&format!("{p}.with_pos"), x, pos);
        let a = mha(&mut net, &format!("{p}.self_attn"), q, q, x, 8, Some(key_mask));
        let y = net.add(&format!("{p}.add_attn"), x, a);
        let y = net.layer_norm(&format!("{p}.norm1"), y);
        x = ffn(&mut net, &p, y, 2048, "relu", "norm2");
    }
    let memory = x;
    let mut t = tgt;
    let mut inter = Vec::new();
    for l in 0..6 {
        let p = format!("transformer.decoder.layers.{l}");
        let q = net.add(&format!("{p}.with_query_pos"), t, query_pos);
        let a = mha(&mut net, &format!("{p}.self_attn"), q, q, t, 8, None);
        let y = net.add(&format!("{p}.add_self_attn"), t, a);
        let y = net.layer_norm(&format!("{p}.norm1"), y);
        let q = net.add(&format!("{p}.cross_query_pos"), y, query_pos);
        let k = net.add(&format!("{p}.cross_key_pos"), memory, pos);
        let a = mha(&mut net, &format!("{p}.multihead_attn"), q, k, memory, 8, Some(key_mask));
        let y = net.add(&format!("{p}.add_cross_attn"), y, a);
        let y = net.layer_norm(&format!("{p}.norm2"), y);
        t = ffn(&mut net, &p, y, 2048, "relu", "norm3");
        // return_intermediate: the shared decoder norm on every layer's output (the last
        // one normed again after the loop).
        inter.push(net.layer_norm_shared(&format!("transformer.decoder.norm.{l}"), "transformer.decoder.norm", t));
    }
    let last = net.layer_norm_shared("transformer.decoder.norm.final", "transformer.decoder.norm", t);
    inter[5] = last;
    let hs = net.copy("transformer.decoder.stack", &inter, vec![6, batch, 100, 256]);
    let logits = net.linear("class_embed", hs, 92, true);
    let boxes = mlp(&mut net, "bbox_embed", hs, 256, 4, 3);
    let boxes = net.ew("bbox_sigmoid", "sigmoid", &[boxes]);
    net.g.outputs.extend([logits, boxes]);
    net.finish()
}

/// DETR-R50 at `image` on the short side and 5/3 of it on the long side (800 → 800×1333,
/// the COCO evaluation maximum).
pub fn detr_r50(batch: u64, image: u64) -> Result<Graph> {
    if image == 0 {
        return Err(Error::Usage("detr-r50: image size must be positive".into()));
    }
    detr_r50_hw(batch, image, image * 1333 / 800)
}

/// RT-DETR's `ConvNormLayer` with trainable batch norm (hybrid encoder).
fn conv_norm(net: &mut Net, p: &str, x: TensorId, k: u64, r: u64, stride: u64, act: bool) -> TensorId {
    let y = net.conv(&format!("{p}.conv"), x, k, r, stride, (r - 1) / 2, 1, false);
    let y = net.bn(&format!("{p}.norm"), y);
    if act {
        net.silu(&format!("{p}.act"), y)
    } else {
        y
    }
}

/// `CSPRepLayer(512, 256, 3 blocks, expansion 1.0, SiLU)` with its `RepVggBlock`s in the
/// deployed form (`convert_to_deploy`: the 3×3 and 1×1 branches merged into one 3×3
/// convolution with bias), which is the network the published parameter count describes.
fn csp_rep(net: &mut Net, p: &str, x: TensorId) -> TensorId {
    let a = conv_norm(net, &format!("{p}.conv1"), x, 256, 1, 1, true);
    let mut a = a;
    for i in 0..3 {
        let y = net.conv(&format!("{p}.bottlenecks.{i}.conv"), a, 256, 3, 1, 1, 1, true);
        a = net.silu(&format!("{p}.bottlenecks.{i}.act"), y);
    }
    let b = conv_norm(net, &format!("{p}.conv2"), x, 256, 1, 1, true);
    net.add(&format!("{p}.add"), a, b)
}

/// RT-DETR-R50 (`rtdetr_r50vd`, COCO, 80 classes) on `image`×`image` (640 as released;
/// other multiples of 32 as if `eval_spatial_size` were set to them, so the anchors and
/// the AIFI position table stay precomputed buffers). ResNet-50-vd backbone with frozen
/// norm; hybrid encoder (one AIFI layer on the stride-32 map, CCFM with four CSPRep
/// layers); 300 queries picked by top-k from the encoder's proposals; 6 decoder layers of
/// self-attention, multi-scale deformable cross-attention (3 levels × 4 points × 8 heads,
/// written as its projections, the pure-PyTorch `grid_sample` core as gathers, and the
/// weighted sum) and FFN 1024. The denoising embedding exists (and counts as parameters)
/// but runs only in training.
pub fn rt_detr_r50(batch: u64, image: u64) -> Result<Graph> {
    let name = "rt-detr-r50";
    check_input(name, batch, image, 32, 32)?;
    let mut net = Net::new(name, "rt-detr");
    let img = net.input("images", vec![batch, 3, image, image], false);
    let [_, s8, s16, s32] = resnet_vd_body(&mut net, "backbone.", img);
    // ---- hybrid encoder ----
    let mut proj = Vec::new();
    for (i, &f) in [s8, s16, s32].iter().enumerate() {
        let y = net.conv(&format!("encoder.input_proj.{i}.0"), f, 256, 1, 1, 0, 1, false);
        proj.push(net.bn(&format!("encoder.input_proj.{i}.1"), y));
    }
    let s = net.shape(proj[2]);
    let (h5, w5) = (s[2], s[3]);
    let p = "encoder.encoder.0.layers.0";
    let src = net.view(&format!("{p}.flatten"), proj[2], vec![batch, h5 * w5, 256]);
    let q = net.ew_const(&format!("{p}.with_pos"), "add", src, 2);
    let a = mha(&mut net, &format!("{p}.self_attn"), q, q, src, 8, None);
    let y = net.add(&format!("{p}.add_attn"), src, a);
    let y = net.layer_norm(&format!("{p}.norm1"), y);
    let mem = ffn(&mut net, p, y, 1024, "gelu", "norm2");
    proj[2] = net.copy("encoder.memory_reshape", &[mem], vec![batch, 256, h5, w5]);
    // CCFM top-down
    let mut high = proj[2];
    let mut inner = vec![proj[2]];
    for (j, low) in [(0usize, proj[1]), (1, proj[0])] {
        high = conv_norm(&mut net, &format!("encoder.lateral_convs.{j}"), high, 256, 1, 1, true);
        inner[0] = high;
        let up = net.upsample(&format!("encoder.upsample.{j}"), high, 2);
        let cat = net.cat(&format!("encoder.fpn_cat.{j}"), &[up, low], 1);
        high = csp_rep(&mut net, &format!("encoder.fpn_blocks.{j}"), cat);
        inner.insert(0, high);
    }
    // bottom-up
    let mut outs = vec![inner[0]];
    for j in 0..2 {
        let low = *outs.last().unwrap();
        let d = conv_norm(&mut net, &format!("encoder.downsample_convs.{j}"), low, 256, 3, 2, true);
        let cat = net.cat(&format!("encoder.pan_cat.{j}"), &[d, inner[j + 1]], 1);
        outs.push(csp_rep(&mut net, &format!("encoder.pan_blocks.{j}"), cat));
    }
    // ---- decoder ----
    let mut levels = Vec::new();
    let mut shapes = Vec::new();
    for (i, &f) in outs.iter().enumerate() {
        let y = net.conv(&format!("decoder.input_proj.{i}.conv"), f, 256, 1, 1, 0, 1, false);
        let y = net.bn(&format!("decoder.input_proj.{i}.norm"), y);
        let s = net.shape(y);
        shapes.push((s[2], s[3]));
        levels.push(net.view(&format!("decoder.flatten.{i}"), y, vec![batch, s[2] * s[3], 256]));
    }
    let anchors: u64 = shapes.iter().map(|(h, w)| h * w).sum();
    let memory = net.cat("decoder.feat_flatten", &levels, 1);
    let queries = 300.min(anchors);
    let memory = net.ew_const("decoder.valid_mask", "mul", memory, 2);
    let om = net.linear("decoder.enc_output.0", memory, 256, true);
    let om = net.layer_norm("decoder.enc_output.1", om);
    let enc_class = net.linear("decoder.enc_score_head", om, 80, true);
    let enc_coord = mlp(&mut net, "decoder.enc_bbox_head", om, 256, 4, 3);
    let enc_coord = net.ew_const("decoder.add_anchors", "add", enc_coord, 2);
    let best = net.reduce("decoder.class_max", enc_class, vec![batch, anchors]);
    let topk = net.reduce("decoder.topk", best, vec![batch, queries]);
    let ref_unact = net.copy("decoder.gather_ref", &[enc_coord, topk], vec![batch, queries, 4]);
    let _enc_bboxes = net.ew("decoder.enc_topk_sigmoid", "sigmoid", &[ref_unact]);
    let _enc_logits = net.copy("decoder.gather_logits", &[enc_class, topk], vec![batch, queries, 80]);
    let mut tgt = net.copy("decoder.gather_target", &[om, topk], vec![batch, queries, 256]);
    let _denoising = net.weight("decoder.denoising_class_embed.weight", vec![81, 256]);
    let mut refp = net.ew("decoder.decoder.ref_sigmoid", "sigmoid", &[ref_unact]);
    let (heads, n_levels, points) = (8u64, shapes.len() as u64, 4u64);
    let mut logits = tgt;
    for l in 0..6 {
        let p = format!("decoder.decoder.layers.{l}");
        // query_pos_head is one module that every layer calls.
        let qp = mlp_shared(&mut net, &format!("{p}.query_pos_head"), "decoder.query_pos_head", refp, 512, 256, 2);
        let q = net.add(&format!("{p}.with_pos"), tgt, qp);
        let a = mha(&mut net, &format!("{p}.self_attn"), q, q, tgt, 8, None);
        let y = net.add(&format!("{p}.add_self_attn"), tgt, a);
        let y = net.layer_norm(&format!("{p}.norm1"), y);
        // MSDeformableAttention
        let c = format!("{p}.cross_attn");
        let q = net.add(&format!("{c}.with_pos"), y, qp);
        let value = net.linear(&format!("{c}.value_proj"), memory, 256, true);
        let off = net.linear(&format!("{c}.sampling_offsets"), q, heads * n_levels * points * 2, true);
        let aw = net.linear(&format!("{c}.attention_weights"), q, heads * n_levels * points, true);
        let aw = net.view(&format!("{c}.aw_view"), aw, vec![batch, queries, heads, n_levels * points]);
        let aw = net.softmax(&format!("{c}.aw_softmax"), aw);
        let loc = net.ew(&format!("{c}.offset_div"), "div_scalar", &[off]);
        let loc = net.ew_const(&format!("{c}.offset_mul_wh"), "mul", loc, 2);
        let loc = net.ew(&format!("{c}.offset_half"), "mul_scalar", &[loc]);
        let loc = net.ew_const(&format!("{c}.add_ref"), "add", loc, 2);
        let grid = net.ew(&format!("{c}.grid_scale"), "mul_scalar", &[loc]);
        let grid = net.ew(&format!("{c}.grid_shift"), "sub_scalar", &[grid]);
        let hd = 256 / heads;
        let mut sampled = Vec::new();
        for (lv, &(h, w)) in shapes.iter().enumerate() {
            let v = net.copy(&format!("{c}.value_level.{lv}"), &[value], vec![batch * heads, hd, h, w]);
            let g = net.copy(&format!("{c}.grid_level.{lv}"), &[grid], vec![batch * heads, queries, points, 2]);
            sampled.push(net.copy(&format!("{c}.grid_sample.{lv}"), &[v, g], vec![batch * heads, hd, queries, points]));
        }
        let aw = net.copy(&format!("{c}.aw_permute"), &[aw], vec![batch * heads, 1, queries, n_levels * points]);
        let st = net.copy(&format!("{c}.stack"), &sampled, vec![batch * heads, hd, queries, n_levels * points]);
        let wsum = net.ew(&format!("{c}.weight"), "mul", &[st, aw]);
        let o = net.reduce(&format!("{c}.sum"), wsum, vec![batch * heads, hd, queries]);
        let o = net.view(&format!("{c}.permute"), o, vec![batch, queries, 256]);
        let o = net.linear(&format!("{c}.output_proj"), o, 256, true);
        let y = net.add(&format!("{p}.add_cross_attn"), y, o);
        let y = net.layer_norm(&format!("{p}.norm2"), y);
        let h = net.linear(&format!("{p}.linear1"), y, 1024, true);
        let h = net.relu(&format!("{p}.activation"), h);
        let h = net.linear(&format!("{p}.linear2"), h, 256, true);
        let y = net.add(&format!("{p}.add_ffn"), y, h);
        tgt = net.layer_norm(&format!("{p}.norm3"), y);
        // inter_ref_bbox = sigmoid(bbox_head[l](output) + inverse_sigmoid(ref))
        let bb = mlp(&mut net, &format!("decoder.dec_bbox_head.{l}"), tgt, 256, 4, 3);
        let inv = format!("{p}.inverse_sigmoid");
        let x = net.ew(&format!("{inv}.clip"), "where", &[refp]);
        let x1 = net.ew(&format!("{inv}.clip_low"), "where", &[x]);
        let x2 = net.ew(&format!("{inv}.one_minus"), "sub_scalar", &[x]);
        let x2 = net.ew(&format!("{inv}.clip_high"), "where", &[x2]);
        let r = net.ew(&format!("{inv}.div"), "div", &[x1, x2]);
        let r = net.ew(&format!("{inv}.log"), "exp", &[r]);
        let s = net.add(&format!("{p}.add_ref"), bb, r);
        refp = net.ew(&format!("{p}.ref_sigmoid"), "sigmoid", &[s]);
        if l == 5 {
            logits = net.linear(&format!("decoder.dec_score_head.{l}"), tgt, 80, true);
        } else {
            // In eval only the last layer's score head runs; the others are parameters.
            net.weight(&format!("decoder.dec_score_head.{l}.weight"), vec![80, 256]);
            net.weight(&format!("decoder.dec_score_head.{l}.bias"), vec![80]);
        }
    }
    net.g.outputs.extend([logits, refp]);
    net.finish()
}

//! Applies `Fixes` to a graph written by `transformer::build`: small, named edits that
//! keep node order valid (new nodes go right after what they read) and drop tensors
//! nothing references any more.

use super::Fixes;
use crate::error::{Error, Result};
use crate::graph::transformer::{StackKind, TransformerConfig, Workload};
use crate::graph::{Graph, GraphOp, Node, Role, TensorId};

pub(super) fn apply(g: &mut Graph, cfg: &TransformerConfig, f: &Fixes, wl: Workload) -> Result<()> {
    if !f.extra_biases.is_empty() {
        extra_biases(g, &f.extra_biases);
    }
    if f.parallel_second_norm {
        for l in 0..cfg.layers {
            second_norm(g, &format!("layers.{l}"))?;
        }
    }
    if f.position_offset > 0 {
        position_offset(g, f.position_offset)?;
    }
    if let Some(proj) = f.embed_proj {
        embed_proj(g, proj, cfg.hidden)?;
    }
    if f.no_embed_norm {
        bypass(g, "embed_norm")?;
    }
    if f.shared_embedding {
        let enc = tensor(g, "encoder.embed_tokens.weight")?;
        let dec = tensor(g, "decoder.embed_tokens.weight")?;
        replace_input(g, dec, enc, 0);
    }
    if let Some(buckets) = f.relative_buckets {
        let stacks: &[&str] = if cfg.kind == StackKind::EncoderDecoder { &["encoder.", "decoder."] } else { &[""] };
        for prefix in stacks {
            relative_bias(g, prefix, buckets)?;
        }
        g.warnings.push("relative position bias: the table lookup is modelled once per stack; adding it to the attention scores of every layer is not".into());
    }
    if f.no_pooler_nsp {
        for name in ["cls.seq_relationship", "pooler.act", "pooler.dense", "pooler.first_token"] {
            let i = node(g, name)?;
            g.nodes.remove(i);
        }
    }
    if f.no_pooler {
        bypass(g, "pooler.act")?;
        bypass(g, "pooler.dense")?;
    }
    if f.no_patch_bias {
        let i = node(g, "patch_embed")?;
        g.nodes[i].inputs.truncate(2);
        if let GraphOp::Conv2d { bias, .. } = &mut g.nodes[i].op {
            *bias = false;
        }
    }
    if f.embed_pre_norm {
        let at = node(g, "add_pos")?;
        let x = g.nodes[at].outputs[0];
        norm_after(g, at, x, "pre_layrnorm", cfg.hidden, |_| true);
    }
    if let (Some(cap), Some(moe)) = (f.expert_capacity, cfg.moe) {
        let tokens = cfg.tokens(wl.seq_len);
        let routed = (wl.batch * tokens * moe.top_k).div_ceil(moe.experts);
        // The router keeps the first `capacity` tokens each expert gets in each sequence
        // (cumsum over the sequence); the rest skip the expert.
        let kept = routed.min(wl.batch * cap);
        if kept < routed {
            expert_rows(g, routed, kept);
            g.warnings.push(format!("expert capacity {cap}: each expert runs {kept} of the {routed} tokens routed to it"));
        }
    }
    if let Some(w) = f.sliding_window {
        if wl.seq_len + wl.past > w {
            g.warnings.push(format!("sliding window of {w} tokens is not modelled: attention reads all {} keys", wl.seq_len + wl.past));
        }
    }
    gc(g);
    Ok(())
}

fn missing(g: &Graph, what: &str) -> Error {
    Error::Usage(format!("model '{}': the HuggingFace frontend expected '{what}' in the built graph", g.name))
}

fn node(g: &Graph, name: &str) -> Result<usize> {
    g.nodes.iter().position(|n| n.name == name).ok_or_else(|| missing(g, name))
}

fn tensor(g: &Graph, name: &str) -> Result<TensorId> {
    g.tensors.iter().position(|t| t.name == name).ok_or_else(|| missing(g, name))
}

/// Makes nodes from index `start` on read `to` where they read `from`.
fn replace_input(g: &mut Graph, from: TensorId, to: TensorId, start: usize) {
    for n in &mut g.nodes[start..] {
        for i in &mut n.inputs {
            if *i == from {
                *i = to;
            }
        }
    }
    for o in &mut g.outputs {
        if *o == from {
            *o = to;
        }
    }
}

/// Inserts a node at `at`; returns its output.
fn insert(g: &mut Graph, at: usize, name: String, op: GraphOp, inputs: Vec<TensorId>, shape: Vec<u64>) -> TensorId {
    let out = g.activation(name.clone(), shape);
    g.nodes.insert(at, Node { name, op, inputs, outputs: vec![out] });
    out
}

/// Removes a one-in-one-out node; whatever read its output reads its input.
fn bypass(g: &mut Graph, name: &str) -> Result<()> {
    let i = node(g, name)?;
    let n = g.nodes.remove(i);
    replace_input(g, n.outputs[0], n.inputs[0], i);
    Ok(())
}

/// A bias on every weight-reading MatMul whose name ends with one of `suffixes`.
fn extra_biases(g: &mut Graph, suffixes: &[String]) {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        let GraphOp::MatMul { n: width, bias: false, .. } = n.op else { continue };
        if !suffixes.iter().any(|s| n.name.ends_with(s.as_str())) || n.inputs.len() != 2 || g.tensors[n.inputs[1]].role != Role::Weight {
            continue;
        }
        let b = g.weight(format!("{}.bias", n.name), vec![width]);
        let n = &mut g.nodes[i];
        n.inputs.push(b);
        if let GraphOp::MatMul { bias, .. } = &mut n.op {
            *bias = true;
        }
    }
}

/// A LayerNorm over `x` inserted after node `at`; nodes after it that read `x` and pass
/// `reads` read the norm instead.
fn norm_after(g: &mut Graph, at: usize, x: TensorId, name: &str, hidden: u64, reads: impl Fn(&str) -> bool) -> TensorId {
    let shape = g.shape(x).to_vec();
    let rows = shape.iter().product::<u64>() / hidden;
    let w = g.weight(format!("{name}.weight"), vec![hidden]);
    let b = g.weight(format!("{name}.bias"), vec![hidden]);
    let y = insert(g, at + 1, name.to_string(), GraphOp::LayerNorm { rows, cols: hidden }, vec![x, w, b], shape);
    for n in &mut g.nodes[at + 2..] {
        if reads(&n.name) {
            for i in &mut n.inputs {
                if *i == x {
                    *i = y;
                }
            }
        }
    }
    y
}

/// GPT-NeoX's parallel block: the MLP reads its own norm of the layer input
/// (`post_attention_layernorm`), not the attention's.
fn second_norm(g: &mut Graph, p: &str) -> Result<()> {
    let at = node(g, &format!("{p}.attn_norm"))?;
    let (x, n1) = (g.nodes[at].inputs[0], g.nodes[at].outputs[0]);
    let hidden = *g.shape(x).last().unwrap_or(&1);
    let mlp = format!("{p}.mlp.");
    let y = norm_after(g, at, x, &format!("{p}.mlp_norm"), hidden, |_| false);
    for n in &mut g.nodes[at + 2..] {
        if n.name.starts_with(&mlp) {
            for i in &mut n.inputs {
                if *i == n1 {
                    *i = y;
                }
            }
        }
    }
    Ok(())
}

/// OPT's learned positions start at row `offset` (the table has that many extra rows).
fn position_offset(g: &mut Graph, offset: u64) -> Result<()> {
    let t = tensor(g, "embed_positions.weight")?;
    g.tensors[t].shape[0] += offset;
    let i = node(g, "embed_positions")?;
    if let GraphOp::Embedding { vocab, .. } = &mut g.nodes[i].op {
        *vocab += offset;
    }
    Ok(())
}

/// OPT with `word_embed_proj_dim` ≠ hidden: the token embedding (and the head) is `proj`
/// wide, `project_in` maps it to the hidden size and `project_out` back before the head.
fn embed_proj(g: &mut Graph, proj: u64, hidden: u64) -> Result<()> {
    let table = tensor(g, "embed_tokens.weight")?;
    g.tensors[table].shape[1] = proj;
    let e = node(g, "embed_tokens")?;
    let tokens = match &mut g.nodes[e].op {
        GraphOp::Embedding { tokens, dim, .. } => {
            *dim = proj;
            *tokens
        }
        _ => return Err(missing(g, "embed_tokens embedding")),
    };
    let x = g.nodes[e].outputs[0];
    let mut shape = g.shape(x).to_vec();
    *shape.last_mut().expect("activation has a shape") = proj;
    g.tensors[x].shape = shape.clone();
    *shape.last_mut().expect("activation has a shape") = hidden;
    let w = g.weight("project_in.weight", vec![hidden, proj]);
    let y = insert(g, e + 1, "project_in".into(), GraphOp::MatMul { b: 1, m: tokens, n: hidden, k: proj, bias: false }, vec![x, w], shape);
    replace_input(g, x, y, e + 2);

    let h = node(g, "lm_head")?;
    let xin = g.nodes[h].inputs[0];
    let mut shape = g.shape(xin).to_vec();
    *shape.last_mut().expect("activation has a shape") = proj;
    let rows = shape.iter().product::<u64>() / proj;
    let w = g.weight("project_out.weight", vec![proj, hidden]);
    let y = insert(g, h, "project_out".into(), GraphOp::MatMul { b: 1, m: rows, n: proj, k: hidden, bias: false }, vec![xin, w], shape);
    let head = &mut g.nodes[h + 1];
    head.inputs[0] = y;
    if let GraphOp::MatMul { k, .. } = &mut head.op {
        *k = proj;
    }
    if let Ok(t) = tensor(g, "lm_head.weight") {
        g.tensors[t].shape[1] = proj;
    }
    Ok(())
}

/// T5's relative attention bias of one stack: a `buckets`×heads table in its first layer,
/// looked up once for every (query, key) pair.
fn relative_bias(g: &mut Graph, prefix: &str, buckets: u64) -> Result<()> {
    let sdpa = node(g, &format!("{prefix}layers.0.attn.sdpa"))?;
    let GraphOp::Attention { hq, sq, skv, .. } = g.nodes[sdpa].op else { return Err(missing(g, "layers.0.attn.sdpa attention")) };
    let ids = tensor(g, &format!("{prefix}input_ids"))?;
    let at = g.nodes.iter().position(|n| n.name.starts_with(&format!("{prefix}layers.0."))).unwrap_or(sdpa);
    let w = g.weight(format!("{prefix}layers.0.attn.relative_attention_bias.weight"), vec![buckets, hq]);
    insert(g, at, format!("{prefix}relative_position_bias"), GraphOp::Embedding { tokens: sq * skv, dim: hq, vocab: buckets }, vec![ids, w], vec![1, hq, sq, skv]);
    Ok(())
}

/// Switch expert capacity: every expert node runs `kept` rows instead of `routed`.
fn expert_rows(g: &mut Graph, routed: u64, kept: u64) {
    let scale = |x: u64| x / routed * kept;
    for n in &mut g.nodes {
        if !n.name.contains(".experts.") {
            continue;
        }
        match &mut n.op {
            GraphOp::MatMul { m, .. } if *m == routed => *m = kept,
            GraphOp::Copy { numel } | GraphOp::Elementwise { numel, .. } if *numel % routed == 0 => *numel = scale(*numel),
            GraphOp::SiluMul { tokens, .. } if *tokens == routed => *tokens = kept,
            _ => {}
        }
        for &o in &n.outputs {
            let s = &mut g.tensors[o].shape;
            if s.len() == 3 && s[1] == routed {
                s[1] = kept;
            }
        }
    }
}

/// Drops weights and activations that no node reads or writes and no output names, and
/// renumbers the rest.
fn gc(g: &mut Graph) {
    let mut used = vec![false; g.tensors.len()];
    for n in &g.nodes {
        for &i in n.inputs.iter().chain(&n.outputs) {
            used[i] = true;
        }
    }
    for &o in &g.outputs {
        used[o] = true;
    }
    for (i, t) in g.tensors.iter().enumerate() {
        if t.role == Role::Input {
            used[i] = true;
        }
    }
    if used.iter().all(|&u| u) {
        return;
    }
    let mut map = vec![usize::MAX; g.tensors.len()];
    let mut next = 0;
    for (i, &u) in used.iter().enumerate() {
        if u {
            map[i] = next;
            next += 1;
        }
    }
    let mut i = 0;
    g.tensors.retain(|_| {
        i += 1;
        used[i - 1]
    });
    for n in &mut g.nodes {
        for t in n.inputs.iter_mut().chain(n.outputs.iter_mut()) {
            *t = map[*t];
        }
    }
    for o in &mut g.outputs {
        *o = map[*o];
    }
}

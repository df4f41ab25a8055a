//! Transformer models from their published architecture: one config type that the zoo
//! and HuggingFace `config.json` both fill, and one builder that writes the operator graph
//! the way the HuggingFace eager implementation runs it (one node per framework op).

use super::{Graph, GraphOp, TensorId};
use crate::error::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    LayerNorm,
    RmsNorm,
}

/// The MLP's activation, as the framework runs it eagerly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `nn.GELU` / `F.gelu`: one kernel.
    Gelu,
    /// GPT-2's `gelu_new` (tanh approximation written out in Python): eight kernels.
    GeluTanhPython,
    Relu,
    /// `act(gate) * up` with SiLU (Llama, Mistral, Qwen2, Mixtral).
    SiluGated,
    /// `act(gate) * up` with GELU (T5 v1.1 "gated-gelu").
    GeluGated,
    /// `x * sigmoid(1.702 x)` (CLIP).
    QuickGelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A learned position table added to the token embeddings (GPT-2, BERT, OPT, ViT).
    Learned,
    /// Rotary embeddings applied to q and k in every layer; `fraction` of the head dim
    /// rotates (Phi-2: 0.4).
    Rotary,
    /// T5's relative attention bias (a small table, computed once per stack).
    RelativeBias,
}

/// What sits on top of the last hidden state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Head {
    /// Logits over the vocabulary for every position.
    LmHead,
    /// BERT pre-training: transform (dense + act + norm) then vocabulary logits, plus NSP.
    MaskedLm,
    /// Pooler on the first token then a classifier with `n` labels.
    Classifier(u64),
    /// A classifier with `n` labels straight on the first (class) token (ViT, DeiT).
    ClassToken(u64),
    /// Hidden states (or pooled image/text embeddings) only.
    None,
}

/// Image input of a vision transformer: `channels`×`image`×`image` cut into `patch`² patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PatchEmbed {
    pub image: u64,
    pub patch: u64,
    pub channels: u64,
    /// Extra learned tokens before the patches (class token; DeiT adds a distillation token).
    pub extra_tokens: u64,
}

/// Sparse mixture-of-experts MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Moe {
    pub experts: u64,
    /// Experts each token is sent to (Switch: 1, Mixtral: 2).
    pub top_k: u64,
    /// Every `every`-th layer is sparse (Switch: 2, Mixtral: 1).
    pub every: u64,
    /// Tokens per sequence each expert takes at most (Switch's `expert_capacity`); the
    /// rest skip the expert. `None`: no cap (Mixtral).
    pub capacity: Option<u64>,
}

/// Largest sizes `TransformerConfig::check` accepts (see `check_sizes`).
pub const MAX_LAYERS: u64 = 1 << 10;
pub const MAX_WIDTH: u64 = 1 << 17;
pub const MAX_HEADS: u64 = 1 << 12;
pub const MAX_FFN: u64 = 1 << 20;
pub const MAX_VOCAB: u64 = 1 << 24;
pub const MAX_POSITIONS: u64 = 1 << 30;
pub const MAX_EXPERTS: u64 = 1 << 12;
pub const MAX_IMAGE: u64 = 1 << 14;
pub const MAX_PATCHES: u64 = 1 << 20;

/// A transformer's published architecture. Encoder-decoder models set `decoder_layers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformerConfig {
    /// `decoder` (causal LM), `encoder` (BERT, ViT) or `encoder_decoder` (T5, Switch).
    pub kind: StackKind,
    pub layers: u64,
    pub decoder_layers: u64,
    pub hidden: u64,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub ffn: u64,
    pub vocab: u64,
    pub max_positions: u64,
    /// BERT's token-type table (2); 0 for none.
    pub type_vocab: u64,
    pub norm: Norm,
    pub activation: Activation,
    pub positions: Positions,
    /// Fraction of the head dim that rotates (1.0 for Llama, 0.4 for Phi-2).
    pub rotary_fraction: f64,
    /// Biases on the q/k/v/o and MLP projections.
    pub linear_bias: bool,
    /// One fused q|k|v projection (GPT-2, GPT-NeoX, Phi) instead of three.
    pub fused_qkv: bool,
    /// Attention and MLP read the same normed input and add in parallel (GPT-NeoX, Phi-2).
    pub parallel_block: bool,
    /// Norm after the residual add (BERT, original transformer) instead of before.
    pub post_norm: bool,
    /// LM head shares the embedding matrix (no extra parameters).
    pub tied_embeddings: bool,
    /// The LM head has a bias (Phi-2).
    pub head_bias: bool,
    pub head: Head,
    pub moe: Option<Moe>,
    pub patch: Option<PatchEmbed>,
    /// Dropout layers exist (they run only in training).
    pub dropout: bool,
    /// Tensor-parallel degree (Megatron): heads, FFN and vocabulary split over `tp` GPUs,
    /// an all-reduce after each row-parallel projection and the embedding. 1: no split.
    pub tp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    Decoder,
    Encoder,
    EncoderDecoder,
}

impl TransformerConfig {
    /// A pre-norm decoder-only LM with the common defaults; callers override fields.
    pub fn decoder(layers: u64, hidden: u64, heads: u64, ffn: u64, vocab: u64, max_positions: u64) -> TransformerConfig {
        TransformerConfig {
            kind: StackKind::Decoder,
            layers,
            decoder_layers: 0,
            hidden,
            heads,
            kv_heads: heads,
            head_dim: hidden / heads,
            ffn,
            vocab,
            max_positions,
            type_vocab: 0,
            norm: Norm::LayerNorm,
            activation: Activation::Gelu,
            positions: Positions::Learned,
            rotary_fraction: 1.0,
            linear_bias: true,
            fused_qkv: false,
            parallel_block: false,
            post_norm: false,
            tied_embeddings: false,
            head_bias: false,
            head: Head::LmHead,
            moe: None,
            patch: None,
            dropout: true,
            tp: 1,
        }
    }

    /// A Llama-style model: RMSNorm, SiLU-gated MLP, rotary, no biases, untied head.
    pub fn llama(layers: u64, hidden: u64, heads: u64, kv_heads: u64, ffn: u64, vocab: u64, max_positions: u64) -> TransformerConfig {
        TransformerConfig {
            kv_heads,
            norm: Norm::RmsNorm,
            activation: Activation::SiluGated,
            positions: Positions::Rotary,
            linear_bias: false,
            dropout: false,
            ..TransformerConfig::decoder(layers, hidden, heads, ffn, vocab, max_positions)
        }
    }

    /// Checks that the sizes are consistent; frontends call it on what they read.
    pub fn check(&self, what: &str) -> Result<()> {
        let bad = |msg: String| Err(Error::Usage(format!("{what}: {msg}")));
        for (name, v) in [("layers", self.layers), ("hidden", self.hidden), ("heads", self.heads), ("kv_heads", self.kv_heads), ("head_dim", self.head_dim), ("ffn", self.ffn)] {
            if v == 0 {
                return bad(format!("{name} must be positive"));
            }
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!("{} attention heads are not a multiple of {} key/value heads", self.heads, self.kv_heads));
        }
        if self.patch.is_none() && self.vocab == 0 {
            return bad("vocabulary size must be positive".into());
        }
        if self.tp == 0 || !self.heads.is_multiple_of(self.tp) || !self.ffn.is_multiple_of(self.tp) || (!self.kv_heads.is_multiple_of(self.tp) && !self.tp.is_multiple_of(self.kv_heads)) {
            return bad(format!("tensor parallelism {} must divide the {} heads, the {} key/value heads (or be a multiple of them) and the FFN width {}", self.tp, self.heads, self.kv_heads, self.ffn));
        }
        if self.kind == StackKind::EncoderDecoder && self.decoder_layers == 0 {
            return bad("an encoder-decoder model needs decoder layers".into());
        }
        if let Some(m) = self.moe {
            if m.experts == 0 || m.top_k == 0 || m.top_k > m.experts || m.every == 0 {
                return bad(format!("mixture of experts {}×top-{} every {} layers is not valid", m.experts, m.top_k, m.every));
            }
        }
        self.check_sizes().map_err(|msg| Error::Usage(format!("{what}: {msg}")))
    }

    /// Sizes beyond any real model are errors (a corrupt or hostile config would otherwise
    /// overflow the element counts or build a graph without end). The limits are far above
    /// published models: ~130 layers, width 25k, FFN 100k, vocabulary 260k, 2048 experts.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        let mut sizes = vec![
            ("layers", self.layers, MAX_LAYERS),
            ("decoder layers", self.decoder_layers, MAX_LAYERS),
            ("hidden size", self.hidden, MAX_WIDTH),
            ("attention heads", self.heads, MAX_HEADS),
            ("head dim", self.head_dim, MAX_HEADS),
            ("FFN width", self.ffn, MAX_FFN),
            ("vocabulary size", self.vocab, MAX_VOCAB),
            ("token types", self.type_vocab, MAX_VOCAB),
            ("max positions", self.max_positions, MAX_POSITIONS),
        ];
        if let Head::Classifier(n) = self.head {
            sizes.push(("classifier labels", n, MAX_VOCAB));
        }
        if let Some(m) = self.moe {
            sizes.push(("experts", m.experts, MAX_EXPERTS));
            // The graph holds one MLP per expert per sparse layer.
            let sparse = (self.layers + self.decoder_layers).div_ceil(m.every);
            sizes.push(("expert MLPs (experts × sparse layers)", sparse.saturating_mul(m.experts), MAX_EXPERTS * 16));
        }
        if let Some(p) = self.patch {
            sizes.push(("image size", p.image, MAX_IMAGE));
            sizes.push(("image channels", p.channels, MAX_HEADS));
            if let Some(side) = p.image.checked_div(p.patch) {
                sizes.push(("patches per image", side.saturating_mul(side), MAX_PATCHES));
            }
        }
        for (name, v, max) in sizes {
            if v > max {
                return Err(format!("{name} {v} is beyond any real model (at most {max})"));
            }
        }
        if !(0.0..=1.0).contains(&self.rotary_fraction) {
            return Err(format!("the rotary fraction of the head dim must be from 0 to 1, got {}", crate::error::show_num(self.rotary_fraction)));
        }
        let empty = [
            ("learned position embeddings need a positive number of positions (max_position_embeddings)", self.positions == Positions::Learned && self.patch.is_none() && self.max_positions == 0),
            ("a classifier without labels", self.head == Head::Classifier(0)),
            ("images without channels", self.patch.is_some_and(|p| p.channels == 0)),
        ];
        if let Some((what, _)) = empty.iter().find(|(_, bad)| *bad) {
            return Err(what.to_string());
        }
        Ok(())
    }

    /// One GPU's share under tensor parallelism: its heads, FFN columns and vocabulary
    /// rows (key/value heads are replicated when there are fewer than GPUs).
    pub fn shard(&self) -> TransformerConfig {
        let tp = self.tp.max(1);
        TransformerConfig { heads: self.heads / tp, kv_heads: (self.kv_heads / tp).max(1), ffn: self.ffn / tp, vocab: self.vocab.div_ceil(tp), ..self.clone() }
    }

    /// Tokens per sequence the model sees for a requested `seq_len` (vision models: the
    /// patch count plus extra tokens, whatever was asked).
    pub fn tokens(&self, seq_len: u64) -> u64 {
        match self.patch {
            Some(p) => (p.image / p.patch).pow(2) + p.extra_tokens,
            None => seq_len,
        }
    }
}

/// One forward step's workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub batch: u64,
    /// New tokens per sequence this step (the prompt in prefill, 1 in decode).
    pub seq_len: u64,
    /// Tokens already in the KV cache (0 for prefill / encoders).
    pub past: u64,
}

/// Most sequences (or images) in one step.
pub const MAX_BATCH: u64 = 1 << 24;

impl Workload {
    /// A step no GPU could run (a huge batch or sequence from a trace row or a flag) is an
    /// error rather than sizes that overflow.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.batch > MAX_BATCH {
            return Err(Error::Usage(format!("{what}: batch size {} is beyond any GPU (at most {MAX_BATCH})", self.batch)));
        }
        if self.seq_len as u128 + self.past as u128 > MAX_POSITIONS as u128 {
            return Err(Error::Usage(format!("{what}: sequence of {} + {} tokens is beyond any model (at most {MAX_POSITIONS})", self.seq_len, self.past)));
        }
        Ok(())
    }
}

/// Builds the operator graph of one forward step.
pub fn build(name: &str, family: &str, cfg: &TransformerConfig, wl: Workload) -> Result<Graph> {
    cfg.check(name)?;
    if wl.batch == 0 || wl.seq_len == 0 {
        return Err(Error::Usage(format!("{name}: batch size and sequence length must be at least 1")));
    }
    wl.check(name)?;
    let tokens = cfg.tokens(wl.seq_len);
    if cfg.patch.is_none() && cfg.max_positions > 0 && wl.seq_len + wl.past > cfg.max_positions {
        return Err(Error::Usage(format!(
            "{name}: sequence of {} tokens is longer than the model allows ({} positions)",
            wl.seq_len + wl.past,
            cfg.max_positions
        )));
    }
    // The largest tensors of the step, before any is built: none may exceed what a GPU
    // could hold (so that no size the builder forms overflows). FlashAttention never
    // holds the scores: they only have to be countable.
    let (b, sq, skv) = (wl.batch as u128, tokens as u128, tokens as u128 + wl.past as u128);
    let max = crate::kernel::op::MAX_ELEMENTS as u128;
    for (what, n, max) in [
        ("attention scores", b * cfg.heads as u128 * sq * skv, 1 << 62),
        ("logits", b * sq * cfg.vocab.max(cfg.hidden) as u128, max),
        ("MLP activations", b * sq * cfg.ffn as u128 * 2, max),
        ("key/value cache", b * skv * cfg.kv_heads as u128 * cfg.head_dim as u128, max),
    ] {
        if n > max {
            return Err(Error::Usage(format!(
                "{name}: batch {} × {} tokens: the {what} would have {n} elements, beyond any GPU (at most {max})",
                wl.batch,
                wl.seq_len + wl.past
            )));
        }
    }
    let mut g = Graph::new(name, family);
    let local = cfg.shard();
    let cfg = &local;
    let mut b = Builder { g: &mut g, cfg, batch: wl.batch };
    match cfg.kind {
        StackKind::Decoder => {
            let x = b.embed("", tokens)?;
            let x = b.stack("layers", x, cfg.layers, tokens, wl.past, true, None);
            b.head(x, tokens);
        }
        StackKind::Encoder => {
            let x = b.embed("", tokens)?;
            let x = b.stack("layers", x, cfg.layers, tokens, 0, false, None);
            b.head(x, tokens);
        }
        StackKind::EncoderDecoder => {
            let enc = b.embed("encoder.", tokens)?;
            let enc = b.stack("encoder.layers", enc, cfg.layers, tokens, 0, false, None);
            let y = b.embed("decoder.", tokens)?;
            let y = b.stack("decoder.layers", y, cfg.decoder_layers, tokens, wl.past, true, Some((enc, tokens)));
            b.head(y, tokens);
        }
    }
    g.check()?;
    Ok(g)
}

struct Builder<'a> {
    g: &'a mut Graph,
    cfg: &'a TransformerConfig,
    batch: u64,
}

impl Builder<'_> {
    fn h(&self) -> u64 {
        self.cfg.hidden
    }

    fn act_shape(&self, tokens: u64, width: u64) -> Vec<u64> {
        vec![self.batch, tokens, width]
    }

    /// `x · W (+ b)` over every token.
    fn linear(&mut self, name: &str, x: TensorId, tokens: u64, k: u64, n: u64, bias: bool) -> TensorId {
        let w = self.g.weight(format!("{name}.weight"), vec![n, k]);
        let mut ins = vec![x, w];
        if bias {
            ins.push(self.g.weight(format!("{name}.bias"), vec![n]));
        }
        let shape = self.act_shape(tokens, n);
        self.g.node(name, GraphOp::MatMul { b: 1, m: self.batch * tokens, n, k, bias }, &ins, shape)
    }

    fn elementwise(&mut self, name: &str, func: &str, ins: &[TensorId]) -> TensorId {
        let shape = self.g.shape(ins[0]).to_vec();
        let numel = shape.iter().product();
        let inputs = ins.len() as u64;
        self.g.node(name, GraphOp::Elementwise { func: func.into(), numel, inputs }, ins, shape)
    }

    /// Sums the partial results of a row-parallel layer across the tensor-parallel group.
    fn tp_all_reduce(&mut self, name: &str, x: TensorId) -> TensorId {
        if self.cfg.tp <= 1 {
            return x;
        }
        let shape = self.g.shape(x).to_vec();
        let numel = shape.iter().product();
        self.g.node(name, GraphOp::AllReduce { numel }, &[x], shape)
    }

    fn dropout(&mut self, name: &str, x: TensorId) -> TensorId {
        if self.cfg.dropout {
            self.elementwise(name, "dropout", &[x])
        } else {
            x
        }
    }

    fn norm(&mut self, name: &str, x: TensorId, tokens: u64) -> TensorId {
        let h = self.h();
        let w = self.g.weight(format!("{name}.weight"), vec![h]);
        let mut ins = vec![x, w];
        let rows = self.batch * tokens;
        let op = match self.cfg.norm {
            Norm::LayerNorm => {
                ins.push(self.g.weight(format!("{name}.bias"), vec![h]));
                GraphOp::LayerNorm { rows, cols: h }
            }
            Norm::RmsNorm => GraphOp::RmsNorm { rows, cols: h },
        };
        let shape = self.act_shape(tokens, h);
        self.g.node(name, op, &ins, shape)
    }

    fn embed(&mut self, prefix: &str, tokens: u64) -> Result<TensorId> {
        let (cfg, h, batch) = (self.cfg, self.h(), self.batch);
        if let Some(p) = cfg.patch {
            let img = self.g.input(format!("{prefix}pixel_values"), vec![batch, p.channels, p.image, p.image], false);
            let w = self.g.weight(format!("{prefix}patch_embed.weight"), vec![h, p.channels, p.patch, p.patch]);
            let bias = self.g.weight(format!("{prefix}patch_embed.bias"), vec![h]);
            let grid = p.image / p.patch;
            let conv = GraphOp::Conv2d { n: batch, c: p.channels, h: p.image, w: p.image, k: h, r: p.patch, s: p.patch, stride: p.patch, pad: 0, groups: 1, bias: true };
            let x = self.g.node(format!("{prefix}patch_embed"), conv, &[img, w, bias], vec![batch, h, grid, grid]);
            let x = self.g.node(format!("{prefix}patch_embed.flatten"), GraphOp::View, &[x], vec![batch, grid * grid, h]);
            let cls = self.g.weight(format!("{prefix}cls_token"), vec![p.extra_tokens, h]);
            let x = self.g.node(format!("{prefix}cat_cls"), GraphOp::Copy { numel: batch * tokens * h }, &[x, cls], self.act_shape(tokens, h));
            let pos = self.g.weight(format!("{prefix}position_embeddings"), vec![tokens, h]);
            let x = self.elementwise(&format!("{prefix}add_pos"), "add", &[x, pos]);
            return Ok(self.dropout(&format!("{prefix}embed_dropout"), x));
        }
        let ids = self.g.input(format!("{prefix}input_ids"), vec![batch, tokens], true);
        let table = self.g.weight(format!("{prefix}embed_tokens.weight"), vec![cfg.vocab, h]);
        let mut x = self.g.node(format!("{prefix}embed_tokens"), GraphOp::Embedding { tokens: batch * tokens, dim: h, vocab: cfg.vocab }, &[ids, table], self.act_shape(tokens, h));
        x = self.tp_all_reduce(&format!("{prefix}embed_tokens.all_reduce"), x);
        if cfg.positions == Positions::Learned {
            let table = self.g.weight(format!("{prefix}embed_positions.weight"), vec![cfg.max_positions, h]);
            let pos = self.g.node(format!("{prefix}embed_positions"), GraphOp::Embedding { tokens, dim: h, vocab: cfg.max_positions }, &[ids, table], vec![1, tokens, h]);
            x = self.elementwise(&format!("{prefix}add_positions"), "add", &[x, pos]);
        }
        if cfg.type_vocab > 0 {
            let table = self.g.weight(format!("{prefix}token_type_embeddings.weight"), vec![cfg.type_vocab, h]);
            let tt = self.g.node(format!("{prefix}token_type_embeddings"), GraphOp::Embedding { tokens: batch * tokens, dim: h, vocab: cfg.type_vocab }, &[ids, table], self.act_shape(tokens, h));
            x = self.elementwise(&format!("{prefix}add_token_types"), "add", &[x, tt]);
        }
        if cfg.post_norm {
            x = self.norm(&format!("{prefix}embed_norm"), x, tokens);
        }
        Ok(self.dropout(&format!("{prefix}embed_dropout"), x))
    }

    #[allow(clippy::too_many_arguments)]
    fn stack(&mut self, prefix: &str, mut x: TensorId, layers: u64, tokens: u64, past: u64, causal: bool, cross: Option<(TensorId, u64)>) -> TensorId {
        for l in 0..layers {
            let p = format!("{prefix}.{l}");
            x = self.layer(&p, l, x, tokens, past, causal, cross);
        }
        if !self.cfg.post_norm {
            x = self.norm(&format!("{prefix}.final_norm"), x, tokens);
        }
        x
    }

    #[allow(clippy::too_many_arguments)]
    fn layer(&mut self, p: &str, index: u64, x: TensorId, tokens: u64, past: u64, causal: bool, cross: Option<(TensorId, u64)>) -> TensorId {
        let cfg = self.cfg;
        if cfg.post_norm {
            let a = self.attention(&format!("{p}.attn"), x, None, tokens, past, causal);
            let x = self.elementwise(&format!("{p}.attn_residual"), "add", &[a, x]);
            let mut x = self.norm(&format!("{p}.attn_norm"), x, tokens);
            if let Some(enc) = cross {
                let a = self.attention(&format!("{p}.cross_attn"), x, Some(enc), tokens, 0, false);
                let y = self.elementwise(&format!("{p}.cross_residual"), "add", &[a, x]);
                x = self.norm(&format!("{p}.cross_norm"), y, tokens);
            }
            let m = self.mlp(&format!("{p}.mlp"), index, x, tokens);
            let x = self.elementwise(&format!("{p}.mlp_residual"), "add", &[m, x]);
            return self.norm(&format!("{p}.mlp_norm"), x, tokens);
        }
        let n1 = self.norm(&format!("{p}.attn_norm"), x, tokens);
        let a = self.attention(&format!("{p}.attn"), n1, None, tokens, past, causal);
        if cfg.parallel_block {
            let m = self.mlp(&format!("{p}.mlp"), index, n1, tokens);
            let s = self.elementwise(&format!("{p}.parallel_sum"), "add", &[a, m]);
            return self.elementwise(&format!("{p}.residual"), "add", &[s, x]);
        }
        let mut x = self.elementwise(&format!("{p}.attn_residual"), "add", &[a, x]);
        if let Some(enc) = cross {
            let n = self.norm(&format!("{p}.cross_norm"), x, tokens);
            let a = self.attention(&format!("{p}.cross_attn"), n, Some(enc), tokens, 0, false);
            x = self.elementwise(&format!("{p}.cross_residual"), "add", &[a, x]);
        }
        let n2 = self.norm(&format!("{p}.mlp_norm"), x, tokens);
        let m = self.mlp(&format!("{p}.mlp"), index, n2, tokens);
        self.elementwise(&format!("{p}.mlp_residual"), "add", &[m, x])
    }

    /// Self-attention (or cross-attention over `memory`), projections included.
    fn attention(&mut self, p: &str, x: TensorId, memory: Option<(TensorId, u64)>, tokens: u64, past: u64, causal: bool) -> TensorId {
        let cfg = self.cfg;
        let (h, d) = (self.h(), cfg.head_dim);
        let (q_w, kv_w) = (cfg.heads * d, cfg.kv_heads * d);
        let bias = cfg.linear_bias;
        let (q, k, v);
        match memory {
            Some((mem, mem_tokens)) => {
                q = self.linear(&format!("{p}.q_proj"), x, tokens, h, q_w, bias);
                k = self.linear(&format!("{p}.k_proj"), mem, mem_tokens, h, kv_w, bias);
                v = self.linear(&format!("{p}.v_proj"), mem, mem_tokens, h, kv_w, bias);
            }
            None if cfg.fused_qkv => {
                let qkv = self.linear(&format!("{p}.qkv_proj"), x, tokens, h, q_w + 2 * kv_w, bias);
                q = self.g.node(format!("{p}.split_q"), GraphOp::View, &[qkv], self.act_shape(tokens, q_w));
                k = self.g.node(format!("{p}.split_k"), GraphOp::View, &[qkv], self.act_shape(tokens, kv_w));
                v = self.g.node(format!("{p}.split_v"), GraphOp::View, &[qkv], self.act_shape(tokens, kv_w));
            }
            None => {
                q = self.linear(&format!("{p}.q_proj"), x, tokens, h, q_w, bias);
                k = self.linear(&format!("{p}.k_proj"), x, tokens, h, kv_w, bias);
                v = self.linear(&format!("{p}.v_proj"), x, tokens, h, kv_w, bias);
            }
        }
        let (q, k) = if cfg.positions == Positions::Rotary && memory.is_none() {
            let rot_d = ((d as f64 * cfg.rotary_fraction).round() as u64).max(2);
            let out = self.g.activation(format!("{p}.rope.q"), self.g.shape(q).to_vec());
            let out_k = self.g.activation(format!("{p}.rope.k"), self.g.shape(k).to_vec());
            self.g.node_multi(format!("{p}.rope"), GraphOp::Rope { tokens: self.batch * tokens, hq: cfg.heads, hkv: cfg.kv_heads, d: rot_d }, &[q, k], vec![out, out_k]);
            (out, out_k)
        } else {
            (q, k)
        };
        let skv = memory.map_or(tokens + past, |(_, t)| t);
        let mut ins = vec![q, k, v];
        if past > 0 {
            // The KV cache of earlier tokens: read by attention, written this step.
            ins.push(self.g.input(format!("{p}.kv_cache"), vec![2, self.batch, cfg.kv_heads, past, d], false));
        }
        let op = GraphOp::Attention { b: self.batch, hq: cfg.heads, hkv: cfg.kv_heads, sq: tokens, skv, d, causal };
        let shape = self.act_shape(tokens, q_w);
        let a = self.g.node(format!("{p}.sdpa"), op, &ins, shape);
        let o = self.linear(&format!("{p}.o_proj"), a, tokens, q_w, h, bias);
        let o = self.tp_all_reduce(&format!("{p}.o_proj.all_reduce"), o);
        self.dropout(&format!("{p}.dropout"), o)
    }

    fn mlp(&mut self, p: &str, index: u64, x: TensorId, tokens: u64) -> TensorId {
        let cfg = self.cfg;
        if let Some(moe) = cfg.moe {
            if (index + 1).is_multiple_of(moe.every) {
                return self.moe(p, moe, x, tokens);
            }
        }
        self.dense_mlp(p, x, tokens, self.batch * tokens)
    }

    /// The feed-forward block over `rows` tokens (all of them, or one expert's share).
    fn dense_mlp(&mut self, p: &str, x: TensorId, tokens: u64, rows: u64) -> TensorId {
        let cfg = self.cfg;
        let (h, f, bias) = (self.h(), cfg.ffn, cfg.linear_bias);
        let scale = rows as f64 / (self.batch * tokens) as f64;
        let lin = |b: &mut Self, name: &str, x: TensorId, k: u64, n: u64| {
            let w = b.g.weight(format!("{name}.weight"), vec![n, k]);
            let mut ins = vec![x, w];
            if bias {
                ins.push(b.g.weight(format!("{name}.bias"), vec![n]));
            }
            let shape = vec![1, rows, n];
            b.g.node(name, GraphOp::MatMul { b: 1, m: rows, n, k, bias }, &ins, shape)
        };
        let _ = scale;
        let y = match cfg.activation {
            Activation::SiluGated | Activation::GeluGated => {
                let gate = lin(self, &format!("{p}.gate_proj"), x, h, f);
                let up = lin(self, &format!("{p}.up_proj"), x, h, f);
                if cfg.activation == Activation::SiluGated {
                    self.g.node(format!("{p}.silu_mul"), GraphOp::SiluMul { tokens: rows, cols: f }, &[gate, up], vec![1, rows, f])
                } else {
                    let a = self.elementwise(&format!("{p}.gelu"), "gelu", &[gate]);
                    self.elementwise(&format!("{p}.gate_mul"), "mul", &[a, up])
                }
            }
            act => {
                let up = lin(self, &format!("{p}.up_proj"), x, h, f);
                self.activation(&format!("{p}.act"), act, up)
            }
        };
        let y = if cfg.dropout && cfg.kind == StackKind::EncoderDecoder { self.dropout(&format!("{p}.act_dropout"), y) } else { y };
        let down = lin(self, &format!("{p}.down_proj"), y, f, h);
        let down = self.tp_all_reduce(&format!("{p}.down_proj.all_reduce"), down);
        self.dropout(&format!("{p}.dropout"), down)
    }

    /// The eager kernels of an activation function.
    fn activation(&mut self, p: &str, act: Activation, x: TensorId) -> TensorId {
        match act {
            Activation::Gelu => self.elementwise(p, "gelu", &[x]),
            Activation::Relu => self.elementwise(p, "relu", &[x]),
            Activation::QuickGelu => {
                let s = self.elementwise(&format!("{p}.scale"), "mul_scalar", &[x]);
                let s = self.elementwise(&format!("{p}.sigmoid"), "sigmoid", &[s]);
                self.elementwise(&format!("{p}.mul"), "mul", &[x, s])
            }
            Activation::GeluTanhPython => {
                // 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
                let half = self.elementwise(&format!("{p}.half"), "mul_scalar", &[x]);
                let cube = self.elementwise(&format!("{p}.cube"), "pow_scalar", &[x]);
                let c = self.elementwise(&format!("{p}.coef"), "mul_scalar", &[cube]);
                let s = self.elementwise(&format!("{p}.sum"), "add", &[x, c]);
                let s = self.elementwise(&format!("{p}.scale"), "mul_scalar", &[s]);
                let t = self.elementwise(&format!("{p}.tanh"), "tanh", &[s]);
                let t = self.elementwise(&format!("{p}.one_plus"), "add_scalar", &[t]);
                self.elementwise(&format!("{p}.mul"), "mul", &[half, t])
            }
            Activation::SiluGated | Activation::GeluGated => unreachable!("gated activations are built in dense_mlp"),
        }
    }

    /// A sparse MoE block: router, top-k, each expert's MLP over its share of the tokens
    /// (uniform routing), and the weighted combine.
    fn moe(&mut self, p: &str, moe: Moe, x: TensorId, tokens: u64) -> TensorId {
        let h = self.h();
        let rows = self.batch * tokens;
        let logits = self.linear(&format!("{p}.router"), x, tokens, h, moe.experts, false);
        let probs = self.g.node(format!("{p}.router_softmax"), GraphOp::Softmax { rows, cols: moe.experts }, &[logits], self.act_shape(tokens, moe.experts));
        let _top = self.g.node(format!("{p}.router_topk"), GraphOp::Reduce { numel_in: rows * moe.experts, numel_out: rows * moe.top_k }, &[probs], vec![rows, moe.top_k]);
        let mut per_expert = (rows * moe.top_k).div_ceil(moe.experts);
        if let Some(cap) = moe.capacity {
            per_expert = per_expert.min(cap * self.batch);
        }
        let mut outs = Vec::new();
        for e in 0..moe.experts {
            let xin = self.g.node(format!("{p}.experts.{e}.gather"), GraphOp::Copy { numel: per_expert * h }, &[x], vec![1, per_expert, h]);
            outs.push(self.dense_mlp(&format!("{p}.experts.{e}"), xin, tokens, per_expert));
        }
        let mut ins = outs;
        ins.push(probs);
        let shape = self.act_shape(tokens, h);
        self.g.node(format!("{p}.combine"), GraphOp::Copy { numel: rows * moe.top_k * h }, &ins, shape)
    }

    fn head(&mut self, x: TensorId, tokens: u64) {
        let cfg = self.cfg;
        let h = self.h();
        let out = match cfg.head {
            Head::None => x,
            Head::LmHead => {
                let w = if cfg.tied_embeddings {
                    self.g.tensors.iter().position(|t| t.name.ends_with("embed_tokens.weight")).expect("embedding exists")
                } else {
                    self.g.weight("lm_head.weight", vec![cfg.vocab, h])
                };
                let mut ins = vec![x, w];
                if cfg.head_bias {
                    ins.push(self.g.weight("lm_head.bias", vec![cfg.vocab]));
                }
                let shape = self.act_shape(tokens, cfg.vocab);
                self.g.node("lm_head", GraphOp::MatMul { b: 1, m: self.batch * tokens, n: cfg.vocab, k: h, bias: cfg.head_bias }, &ins, shape)
            }
            Head::MaskedLm => {
                let t = self.linear("cls.transform.dense", x, tokens, h, h, true);
                let t = self.activation("cls.transform.act", Activation::Gelu, t);
                let t = self.norm("cls.transform.norm", t, tokens);
                let w = self.g.tensors.iter().position(|t| t.name.ends_with("embed_tokens.weight")).expect("embedding exists");
                let bias = self.g.weight("cls.decoder.bias", vec![cfg.vocab]);
                let shape = self.act_shape(tokens, cfg.vocab);
                let logits = self.g.node("cls.decoder", GraphOp::MatMul { b: 1, m: self.batch * tokens, n: cfg.vocab, k: h, bias: true }, &[t, w, bias], shape);
                let pooled = self.pooler(x);
                let _nsp = self.linear_rows("cls.seq_relationship", pooled, h, 2);
                logits
            }
            Head::Classifier(n) => {
                let pooled = self.pooler(x);
                self.linear_rows("classifier", pooled, h, n)
            }
            Head::ClassToken(n) => {
                let first = self.g.node("class_token", GraphOp::View, &[x], vec![self.batch, h]);
                self.linear_rows("head", first, h, n)
            }
        };
        self.g.outputs.push(out);
    }

    /// BERT's pooler: dense + tanh on the first token of each sequence.
    fn pooler(&mut self, x: TensorId) -> TensorId {
        let h = self.h();
        let first = self.g.node("pooler.first_token", GraphOp::View, &[x], vec![self.batch, h]);
        let d = self.linear_rows("pooler.dense", first, h, h);
        self.elementwise("pooler.act", "tanh", &[d])
    }

    /// A Linear over one row per sequence.
    fn linear_rows(&mut self, name: &str, x: TensorId, k: u64, n: u64) -> TensorId {
        let w = self.g.weight(format!("{name}.weight"), vec![n, k]);
        let bias = self.g.weight(format!("{name}.bias"), vec![n]);
        self.g.node(name, GraphOp::MatMul { b: 1, m: self.batch, n, k, bias: true }, &[x, w, bias], vec![self.batch, n])
    }
}

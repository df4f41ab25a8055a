//! HuggingFace `config.json` → `TransformerConfig` → operator graph.
//!
//! `load` reads a `config.json` (a file, or a folder holding one), `parse` reads its text,
//! `resolve` turns a file, a folder or a model id (`meta-llama/Llama-2-7b-hf`, found in the
//! local HuggingFace cache, or fetched with the `hf-hub` feature) into the file's path.
//!
//! Each supported `model_type` maps onto the shared `TransformerConfig` the way the
//! HuggingFace implementation builds the model (the transformers 4.38 modelling code: which
//! projections are fused, which carry biases, the activation as it runs eagerly, the
//! family's default for `tie_word_embeddings`). What the shared builder cannot express yet
//! is written down in `Fixes` and applied to the built graph: T5's shared embedding and
//! relative-position tables, OPT's embedding projections and position offset, GPT-NeoX's
//! second norm in a parallel block, biases on only some projections (Qwen2), heads without
//! BERT's pooler, CLIP's two towers and projections, Switch's expert capacity. Every such
//! fix keeps the graph valid (`Graph::check`) and the parameter count exact.

mod hub;
mod patch;

pub use hub::{cache_dir, resolve, Hub};

use super::transformer::{self, Activation, Head, Moe, Norm, PatchEmbed, Positions, StackKind, TransformerConfig, Workload};
use super::Graph;
use crate::error::{Error, Result};
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;

/// The `model_type`s this frontend reads.
pub const SUPPORTED: &[&str] = &["bert", "clip", "gpt2", "gpt_neox", "llama", "mistral", "mixtral", "opt", "phi", "qwen2", "switch_transformers", "t5", "vit"];

/// A model read from a `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HfModel {
    /// The model id where known (from the cache layout), else the file or folder name.
    pub name: String,
    /// `model_type` as written in the file.
    pub model_type: String,
    /// The implementation the graph follows: `llama` (Llama, Mistral, Mixtral, Qwen2),
    /// `gpt2`, `gpt_neox`, `opt`, `bert`, `phi`, `t5` (T5, Switch), `vit`, `clip`.
    pub family: String,
    /// `architectures[0]`, which decides the head.
    pub architecture: Option<String>,
    /// `torch_dtype` as written (the precision the weights were saved in).
    pub torch_dtype: Option<String>,
    /// Where the config came from (a path, or the `origin` given to `parse`).
    pub source: String,
    /// One tower, or two for CLIP (text, then vision).
    pub towers: Vec<Tower>,
    /// CLIP's joint embedding width (`projection_dim`).
    pub projection_dim: Option<u64>,
    /// Things read but not modelled exactly; copied into every built graph's warnings.
    pub warnings: Vec<String>,
}

/// One transformer stack (with its embeddings and head).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tower {
    /// Name prefix in the graph: empty for single-tower models, `text_model.` / `vision_model.` for CLIP.
    pub prefix: String,
    pub config: TransformerConfig,
    /// What the shared builder lacks, applied after it ran.
    pub fixes: Fixes,
}

/// Differences between the HuggingFace implementation and what `transformer::build`
/// writes, applied to the built graph. All default to "none".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fixes {
    /// Projections (matched by name suffix, e.g. `.attn.q_proj`) that get a bias although
    /// `linear_bias` is off (Qwen2: q, k, v only; Llama `attention_bias`, `mlp_bias`).
    pub extra_biases: Vec<String>,
    /// A parallel block with two norms (GPT-NeoX), not one (Phi-2).
    pub parallel_second_norm: bool,
    /// Rows added to the learned position table (OPT: 2).
    pub position_offset: u64,
    /// OPT's `word_embed_proj_dim` when it differs from the hidden size: the embedding
    /// (and tied head) has this width, with `project_in` / `project_out` around the stack.
    pub embed_proj: Option<u64>,
    /// No norm after the embeddings although the model is post-norm (OPT-350m).
    pub no_embed_norm: bool,
    /// Encoder and decoder share one embedding table (T5, Switch).
    pub shared_embedding: bool,
    /// T5 relative attention bias: buckets of the table in each stack's first layer.
    pub relative_buckets: Option<u64>,
    /// BERT masked-LM / causal-LM heads: no pooler and no next-sentence classifier.
    pub no_pooler_nsp: bool,
    /// A classifier straight on the first token, without BERT's pooler (ViT).
    pub no_pooler: bool,
    /// The patch convolution has no bias (CLIP).
    pub no_patch_bias: bool,
    /// A LayerNorm after the patch and position embeddings (CLIP's `pre_layrnorm`).
    pub embed_pre_norm: bool,
    /// Switch Transformers: tokens each expert takes per sequence (`expert_capacity`).
    pub expert_capacity: Option<u64>,
    /// Mistral/Qwen2 sliding-window attention (warned about when the keys exceed it).
    pub sliding_window: Option<u64>,
}

impl HfModel {
    /// The first (for CLIP: the text) tower's config. Panics on a model without towers,
    /// which `parse` never returns.
    pub fn config(&self) -> &TransformerConfig {
        &self.towers[0].config
    }

    /// Longest sequence (prompt plus KV cache) the model accepts: the learned position
    /// table's size, `max_position_embeddings` for rotary models, the patch count for
    /// vision models, the text tower's limit for CLIP; 0 for no limit (T5's relative
    /// positions).
    pub fn max_positions(&self) -> u64 {
        let c = self.config();
        match c.patch {
            Some(_) => c.tokens(1),
            None => c.max_positions,
        }
    }

    /// Total parameters, without building a graph at a real size.
    pub fn params(&self) -> Result<u64> {
        Ok(self.build(Workload { batch: 1, seq_len: 1, past: 0 })?.params())
    }

    /// The operator graph of one forward step.
    pub fn build(&self, wl: Workload) -> Result<Graph> {
        let mut g = match self.towers.as_slice() {
            [t] => self.build_tower(t, &self.name, wl)?,
            [_, _] if self.model_type == "clip" => self.build_clip(wl)?,
            _ => return Err(Error::Usage(format!("model '{}': {} towers for model_type '{}'", self.name, self.towers.len(), self.model_type))),
        };
        g.warnings.extend(self.warnings.iter().cloned());
        g.check()?;
        Ok(g)
    }

    fn build_tower(&self, t: &Tower, name: &str, wl: Workload) -> Result<Graph> {
        let mut g = transformer::build(name, &self.family, &t.config, wl)?;
        patch::apply(&mut g, &t.config, &t.fixes, wl)?;
        Ok(g)
    }

    /// CLIP: both towers, pooled features, projections into the joint space, and the
    /// image-text similarity of every pair in the batch.
    fn build_clip(&self, wl: Workload) -> Result<Graph> {
        use super::GraphOp;
        let (text, vision) = (&self.towers[0], &self.towers[1]);
        let proj = self.projection_dim.unwrap_or(512);
        let b = wl.batch;
        let gt = self.build_tower(text, &format!("{}.text", self.name), wl)?;
        let gv = self.build_tower(vision, &format!("{}.vision", self.name), wl)?;
        let (t_last, v_last) = (gt.outputs[0], gv.outputs[0]);
        let mut g = Graph::new(self.name.clone(), self.family.clone());
        let t_last = g.append(gt, &text.prefix)[t_last];
        let v_last = g.append(gv, &vision.prefix)[v_last];
        g.outputs.clear();
        let (ht, hv) = (text.config.hidden, vision.config.hidden);
        // Text: the hidden state at each sequence's end-of-text token (argmax of the ids, gather).
        let t_pool = g.node("text_model.pooled", GraphOp::Copy { numel: b * ht }, &[t_last], vec![b, ht]);
        // Vision: the class token (a slice; the builder's final norm is CLIP's post_layernorm).
        let v_pool = g.node("vision_model.pooled", GraphOp::View, &[v_last], vec![b, hv]);
        let mut embeds = Vec::new();
        for (name, x, k) in [("text", t_pool, ht), ("visual", v_pool, hv)] {
            let w = g.weight(format!("{name}_projection.weight"), vec![proj, k]);
            let e = g.node(format!("{name}_projection"), GraphOp::MatMul { b: 1, m: b, n: proj, k, bias: false }, &[x, w], vec![b, proj]);
            let norm = g.node(format!("{name}_embeds.norm"), GraphOp::Reduce { numel_in: b * proj, numel_out: b }, &[e], vec![b, 1]);
            embeds.push(g.node(format!("{name}_embeds.normalize"), GraphOp::Elementwise { func: "div".into(), numel: b * proj, inputs: 2 }, &[e, norm], vec![b, proj]));
        }
        let scale = g.weight("logit_scale", vec![1]);
        let scale = g.node("logit_scale.exp", GraphOp::Elementwise { func: "exp".into(), numel: 1, inputs: 1 }, &[scale], vec![1]);
        let sim = g.node("logits_per_text.matmul", GraphOp::MatMul { b: 1, m: b, n: b, k: proj, bias: false }, &[embeds[0], embeds[1]], vec![b, b]);
        let logits = g.node("logits_per_text", GraphOp::Elementwise { func: "mul".into(), numel: b * b, inputs: 2 }, &[sim, scale], vec![b, b]);
        let per_image = g.node("logits_per_image", GraphOp::View, &[logits], vec![b, b]);
        g.outputs.extend([logits, per_image, embeds[0], embeds[1]]);
        Ok(g)
    }
}

/// Reads a `config.json`, or the one inside a folder.
pub fn load(path: &Path) -> Result<HfModel> {
    let file = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| Error::File { path: file.display().to_string(), msg: format!("cannot read: {e}") })?;
    parse(&text, &file.display().to_string())
}

/// Resolves a file, a folder or a model id (see `resolve`) and reads it.
pub fn open(spec: &str) -> Result<HfModel> {
    load(&resolve(spec)?)
}

/// Parses the text of a `config.json`; `origin` (a path) names it in errors and gives the
/// model its name.
pub fn parse(text: &str, origin: &str) -> Result<HfModel> {
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(e, origin))?;
    let Value::Object(obj) = value else {
        return Err(Error::File { path: origin.into(), msg: "a config.json holds one JSON object".into() });
    };
    let Some(model_type) = obj.get("model_type") else {
        return Err(Error::File { path: origin.into(), msg: format!("no 'model_type' field; supported model types: {}", SUPPORTED.join(", ")) });
    };
    let Some(model_type) = model_type.as_str() else {
        return Err(Error::File { path: origin.into(), msg: format!("'model_type' must be a string, found {model_type}") });
    };
    let c = Cfg { obj: &obj, model_type, path: origin, scope: String::new() };
    let architecture = match obj.get("architectures") {
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let mut m = HfModel {
        name: model_name(origin),
        model_type: model_type.to_string(),
        family: String::new(),
        architecture,
        torch_dtype: c.opt_str("torch_dtype")?.map(str::to_string),
        source: origin.to_string(),
        towers: Vec::new(),
        projection_dim: None,
        warnings: Vec::new(),
    };
    map_model(&c, &mut m)?;
    if obj.contains_key("quantization_config") {
        m.warnings.push("quantization_config is not modelled: weights and matmuls run in the simulated precision".into());
    }
    for t in &m.towers {
        t.config.check(&format!("{origin} ({model_type})"))?;
    }
    check_extra_sizes(&c, &m)?;
    Ok(m)
}

/// The sizes read beside the `TransformerConfig` (which checks its own): positive, and
/// bounded like its sizes so that no element count overflows.
fn check_extra_sizes(c: &Cfg, m: &HfModel) -> Result<()> {
    use transformer::{MAX_POSITIONS, MAX_WIDTH};
    let mut sizes = vec![("projection_dim", m.projection_dim, MAX_WIDTH)];
    for t in &m.towers {
        let f = &t.fixes;
        sizes.extend([
            ("word_embed_proj_dim", f.embed_proj, MAX_WIDTH),
            ("relative_attention_num_buckets", f.relative_buckets, MAX_WIDTH),
            ("expert_capacity", f.expert_capacity, MAX_POSITIONS),
        ]);
    }
    for (key, v, max) in sizes {
        match v {
            Some(0) => return Err(c.err(format!("field '{key}' must be positive"))),
            Some(v) if v > max => return Err(c.err(format!("field '{key}' = {v} is beyond any real model (at most {max})"))),
            _ => {}
        }
    }
    Ok(())
}

/// A serde_json error as `Error::Parse` with the line, and the column in the message.
fn json_error(e: serde_json::Error, origin: &str) -> Error {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the line goes in its own field.
    let msg = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    Error::Parse { path: origin.into(), line: e.line(), msg: format!("column {}: invalid JSON: {msg}", e.column()) }
}

/// The model id of a file in the HuggingFace cache layout (`models--org--name/snapshots/<rev>/config.json`),
/// else the folder name of a `config.json`, else the file stem.
fn model_name(origin: &str) -> String {
    let p = Path::new(origin);
    let parts: Vec<String> = p.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let n = parts.len();
    if n >= 4 && parts[n - 3] == "snapshots" {
        if let Some(id) = parts[n - 4].strip_prefix("models--") {
            return id.replace("--", "/");
        }
    }
    let file = p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    if file == "config.json" {
        if let Some(dir) = p.parent().and_then(Path::file_name) {
            return dir.to_string_lossy().into_owned();
        }
    }
    match p.file_stem() {
        Some(s) if !s.is_empty() => s.to_string_lossy().into_owned(),
        _ => origin.to_string(),
    }
}

/// Typed access to one JSON object (the config, or a sub-config such as CLIP's
/// `text_config`) with errors that name the field and the model type.
struct Cfg<'a> {
    obj: &'a Map<String, Value>,
    model_type: &'a str,
    path: &'a str,
    /// `text_config.` inside CLIP, for error messages.
    scope: String,
}

impl<'a> Cfg<'a> {
    fn err(&self, msg: String) -> Error {
        Error::File { path: self.path.into(), msg: format!("model_type '{}': {msg}", self.model_type) }
    }

    /// A value that is present and not null.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn opt_u64(&self, key: &str) -> Result<Option<u64>> {
        let Some(v) = self.get(key) else { return Ok(None) };
        match v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15).map(|f| f as u64)) {
            Some(n) => Ok(Some(n)),
            None => Err(self.err(format!("field '{}{key}' must be a non-negative integer, found {v}", self.scope))),
        }
    }

    fn u64(&self, key: &str) -> Result<u64> {
        self.opt_u64(key)?.ok_or_else(|| self.err(format!("missing required field '{}{key}'", self.scope)))
    }

    /// The first of several names a field goes by (`n_embd` / `hidden_size`).
    fn u64_any(&self, keys: &[&str]) -> Result<u64> {
        for k in keys {
            if let Some(v) = self.opt_u64(k)? {
                return Ok(v);
            }
        }
        Err(self.err(format!("missing required field '{}{}'", self.scope, keys[0])))
    }

    fn u64_or(&self, key: &str, default: u64) -> Result<u64> {
        Ok(self.opt_u64(key)?.unwrap_or(default))
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.err(format!("field '{}{key}' must be a number, found {v}", self.scope))),
        }
    }

    /// A fraction from 0 to 1 (`rotary_pct`).
    fn fraction_or(&self, key: &str, default: f64) -> Result<f64> {
        let f = self.f64_or(key, default)?;
        if !(0.0..=1.0).contains(&f) {
            return Err(self.err(format!("field '{}{key}' must be a fraction from 0 to 1, found {}", self.scope, crate::error::show_num(f))));
        }
        Ok(f)
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(format!("field '{}{key}' must be true or false, found {v}", self.scope))),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| self.err(format!("field '{}{key}' must be a string, found {v}", self.scope))),
        }
    }

    fn str_or(&self, key: &str, default: &'a str) -> Result<&'a str> {
        Ok(self.opt_str(key)?.unwrap_or(default))
    }

    /// A nested object (`text_config`); an absent one reads as empty (all defaults).
    fn sub(&self, key: &str, empty: &'a Map<String, Value>) -> Result<Cfg<'a>> {
        let obj = match self.get(key) {
            None => empty,
            Some(Value::Object(o)) => o,
            Some(v) => return Err(self.err(format!("field '{}{key}' must be an object, found {v}", self.scope))),
        };
        Ok(Cfg { obj, model_type: self.model_type, path: self.path, scope: format!("{}{key}.", self.scope) })
    }

    /// Classifier labels: `id2label`'s size, else `num_labels`, else 2 (HF's default).
    fn labels(&self) -> Result<u64> {
        let n = match self.get("id2label") {
            Some(Value::Object(m)) => m.len() as u64,
            _ => self.u64_or("num_labels", 2)?,
        };
        if n == 0 {
            return Err(self.err(format!("a classifier needs at least one label ('{}id2label' or '{}num_labels')", self.scope, self.scope)));
        }
        Ok(n)
    }

    /// An attention head count, which must be positive.
    fn heads(&self, n: u64, key: &str) -> Result<u64> {
        if n == 0 {
            return Err(self.err(format!("field '{}{key}' must be positive", self.scope)));
        }
        Ok(n)
    }

    /// `hidden / heads` where the config gives no `head_dim`; both must divide.
    /// The base every single-stack family shares: layers, width, heads (the head width
    /// checked against the width or read from `head_dim`), the FFN width under `ffn_key`,
    /// vocabulary and context.
    fn base(&self, ffn_key: &str, max_positions: u64) -> Result<TransformerConfig> {
        let hidden = self.u64("hidden_size")?;
        let heads = self.heads(self.u64("num_attention_heads")?, "num_attention_heads")?;
        let head_dim = self.head_dim(hidden, heads)?;
        let mut cfg = TransformerConfig::decoder(
            self.u64("num_hidden_layers")?,
            hidden,
            heads,
            self.u64(ffn_key)?,
            self.u64("vocab_size")?,
            self.u64_or("max_position_embeddings", max_positions)?,
        );
        cfg.head_dim = head_dim;
        Ok(cfg)
    }

    fn head_dim(&self, hidden: u64, heads: u64) -> Result<u64> {
        if let Some(d) = self.opt_u64("head_dim")? {
            return Ok(d);
        }
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(self.err(format!("hidden size {hidden} is not a multiple of {heads} attention heads")));
        }
        Ok(hidden / heads)
    }

    /// An MLP activation as HF's `ACT2FN` runs it eagerly.
    fn activation(&self, key: &str, name: &str, gated: bool) -> Result<Activation> {
        let act = match (name, gated) {
            ("silu" | "swish", true) => Some(Activation::SiluGated),
            ("gelu" | "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast", true) => Some(Activation::GeluGated),
            // One kernel: nn.GELU / F.gelu (also with approximate="tanh").
            ("gelu" | "gelu_pytorch_tanh" | "gelu_accurate", false) => Some(Activation::Gelu),
            // NewGELUActivation / FastGELUActivation: the tanh formula written out in Python.
            ("gelu_new" | "gelu_fast", false) => Some(Activation::GeluTanhPython),
            ("relu", false) => Some(Activation::Relu),
            ("quick_gelu", false) => Some(Activation::QuickGelu),
            _ => None,
        };
        act.ok_or_else(|| {
            let ok = if gated { "silu, swish, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast" } else { "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, gelu_accurate, relu, quick_gelu" };
            self.err(format!("{}activation '{name}' in '{}{key}' is not supported (supported: {ok})", if gated { "gated " } else { "" }, self.scope))
        })
    }
}

/// Any dropout probability above zero: the dropout layers run in training.
fn any_dropout(c: &Cfg, keys: &[(&str, f64)]) -> Result<bool> {
    for &(k, d) in keys {
        if c.f64_or(k, d)? > 0.0 {
            return Ok(true);
        }
    }
    Ok(false)
}

fn single(m: &mut HfModel, family: &str, config: TransformerConfig, fixes: Fixes) {
    m.family = family.into();
    m.towers.push(Tower { prefix: String::new(), config, fixes });
}

fn map_model(c: &Cfg, m: &mut HfModel) -> Result<()> {
    let arch = m.architecture.clone().unwrap_or_default();
    let note_head = |m: &mut HfModel, head: &str| {
        if !arch.is_empty() {
            m.warnings.push(format!("architecture {arch}: modelled with {head}"));
        }
    };
    match c.model_type {
        "llama" | "mistral" | "mixtral" | "qwen2" => {
            let hidden = c.u64("hidden_size")?;
            let heads = c.heads(c.u64("num_attention_heads")?, "num_attention_heads")?;
            let default_positions = match c.model_type {
                "llama" => 2048,
                "qwen2" => 32768,
                _ => 4096 * 32,
            };
            let mut cfg = TransformerConfig::llama(
                c.u64("num_hidden_layers")?,
                hidden,
                heads,
                c.u64_or("num_key_value_heads", heads)?,
                c.u64("intermediate_size")?,
                c.u64("vocab_size")?,
                c.u64_or("max_position_embeddings", default_positions)?,
            );
            cfg.head_dim = c.head_dim(hidden, heads)?;
            cfg.activation = c.activation("hidden_act", c.str_or("hidden_act", "silu")?, true)?;
            cfg.tied_embeddings = c.bool_or("tie_word_embeddings", false)?;
            cfg.dropout = any_dropout(c, &[("attention_dropout", 0.0)])?;
            let mut fixes = Fixes::default();
            let attn = [".attn.q_proj", ".attn.k_proj", ".attn.v_proj"];
            if c.model_type == "qwen2" {
                // Qwen2Attention: bias on q, k, v; none on o_proj or the MLP.
                fixes.extra_biases.extend(attn.iter().map(|s| s.to_string()));
                if c.bool_or("use_sliding_window", false)? {
                    fixes.sliding_window = c.opt_u64("sliding_window")?;
                }
            }
            if c.model_type == "llama" {
                if c.bool_or("attention_bias", false)? {
                    fixes.extra_biases.extend(attn.iter().chain(&[".attn.o_proj"]).map(|s| s.to_string()));
                }
                if c.bool_or("mlp_bias", false)? {
                    fixes.extra_biases.extend([".gate_proj", ".up_proj", ".down_proj"].map(String::from));
                }
            }
            if matches!(c.model_type, "mistral" | "mixtral") {
                fixes.sliding_window = c.opt_u64("sliding_window")?;
            }
            if c.model_type == "mixtral" {
                cfg.moe = Some(Moe { experts: c.u64_or("num_local_experts", 8)?, top_k: c.u64_or("num_experts_per_tok", 2)?, every: 1, capacity: None });
            }
            if !(arch.is_empty() || arch.ends_with("ForCausalLM")) {
                note_head(m, "a language-model head");
            }
            single(m, "llama", cfg, fixes);
        }
        "gpt2" => {
            let hidden = c.u64_any(&["n_embd", "hidden_size"])?;
            let heads = c.heads(c.u64_any(&["n_head", "num_attention_heads"])?, "n_head")?;
            c.head_dim(hidden, heads)?;
            let ffn = match c.opt_u64("n_inner")? {
                Some(f) => f,
                None => 4 * hidden,
            };
            let mut cfg = TransformerConfig::decoder(
                c.u64_any(&["n_layer", "num_hidden_layers"])?,
                hidden,
                heads,
                ffn,
                c.u64("vocab_size")?,
                c.opt_u64("n_positions")?.map_or_else(|| c.u64_or("max_position_embeddings", 1024), Ok)?,
            );
            cfg.activation = c.activation("activation_function", c.str_or("activation_function", "gelu_new")?, false)?;
            // GPT2Attention.c_attn: one Conv1D producing q|k|v.
            cfg.fused_qkv = true;
            cfg.tied_embeddings = c.bool_or("tie_word_embeddings", true)?;
            cfg.dropout = any_dropout(c, &[("resid_pdrop", 0.1), ("embd_pdrop", 0.1), ("attn_pdrop", 0.1)])?;
            match arch.as_str() {
                "GPT2Model" => cfg.head = Head::None,
                "" | "GPT2LMHeadModel" => {}
                _ => note_head(m, "GPT2LMHeadModel's head"),
            }
            single(m, "gpt2", cfg, Fixes::default());
        }
        "gpt_neox" => {
            let mut cfg = c.base("intermediate_size", 2048)?;
            cfg.activation = c.activation("hidden_act", c.str_or("hidden_act", "gelu")?, false)?;
            cfg.positions = Positions::Rotary;
            cfg.rotary_fraction = c.fraction_or("rotary_pct", 0.25)?;
            // GPTNeoXAttention.query_key_value: one Linear producing q|k|v.
            cfg.fused_qkv = true;
            cfg.parallel_block = c.bool_or("use_parallel_residual", true)?;
            cfg.tied_embeddings = c.bool_or("tie_word_embeddings", false)?;
            cfg.dropout = any_dropout(c, &[("hidden_dropout", 0.0), ("attention_dropout", 0.0)])?;
            if !c.bool_or("attention_bias", true)? {
                m.warnings.push("attention_bias = false: the attention projections are modelled with biases".into());
            }
            if !(arch.is_empty() || arch == "GPTNeoXForCausalLM") {
                note_head(m, "a language-model head");
            }
            let fixes = Fixes { parallel_second_norm: cfg.parallel_block, ..Fixes::default() };
            single(m, "gpt_neox", cfg, fixes);
        }
        "opt" => {
            let mut cfg = c.base("ffn_dim", 2048)?;
            let hidden = cfg.hidden;
            cfg.activation = c.activation("activation_function", c.str_or("activation_function", "relu")?, false)?;
            cfg.linear_bias = c.bool_or("enable_bias", true)?;
            cfg.post_norm = !c.bool_or("do_layer_norm_before", true)?;
            cfg.tied_embeddings = c.bool_or("tie_word_embeddings", true)?;
            cfg.dropout = any_dropout(c, &[("dropout", 0.1), ("attention_dropout", 0.0), ("activation_dropout", 0.0)])?;
            let proj = c.u64_or("word_embed_proj_dim", hidden)?;
            if proj == 0 {
                return Err(c.err("word_embed_proj_dim must be positive".into()));
            }
            let fixes = Fixes {
                position_offset: 2,
                embed_proj: (proj != hidden).then_some(proj),
                no_embed_norm: cfg.post_norm,
                ..Fixes::default()
            };
            if c.bool_or("_remove_final_layer_norm", false)? && !cfg.post_norm {
                m.warnings.push("_remove_final_layer_norm is not modelled: the final LayerNorm is kept".into());
            }
            if !(arch.is_empty() || arch == "OPTForCausalLM") {
                note_head(m, "a language-model head");
            }
            single(m, "opt", cfg, fixes);
        }
        "bert" => {
            let mut cfg = c.base("intermediate_size", 512)?;
            cfg.kind = StackKind::Encoder;
            cfg.type_vocab = c.u64_or("type_vocab_size", 2)?;
            cfg.activation = c.activation("hidden_act", c.str_or("hidden_act", "gelu")?, false)?;
            cfg.post_norm = true;
            cfg.tied_embeddings = true;
            cfg.dropout = any_dropout(c, &[("hidden_dropout_prob", 0.1), ("attention_probs_dropout_prob", 0.1)])?;
            let mut fixes = Fixes::default();
            cfg.head = match arch.as_str() {
                "BertForPreTraining" => Head::MaskedLm,
                "BertForMaskedLM" | "BertLMHeadModel" => {
                    fixes.no_pooler_nsp = true;
                    Head::MaskedLm
                }
                "BertForSequenceClassification" => Head::Classifier(c.labels()?),
                "" | "BertModel" => Head::None,
                _ => {
                    note_head(m, "no head (BertModel without its pooler)");
                    Head::None
                }
            };
            if !c.bool_or("tie_word_embeddings", true)? && cfg.head == Head::MaskedLm {
                m.warnings.push("tie_word_embeddings = false is not modelled: the masked-LM decoder shares the embedding".into());
            }
            let pe = c.str_or("position_embedding_type", "absolute")?;
            if pe != "absolute" {
                m.warnings.push(format!("position_embedding_type '{pe}' is modelled as absolute"));
            }
            single(m, "bert", cfg, fixes);
        }
        "phi" => {
            let mut cfg = c.base("intermediate_size", 2048)?;
            let heads = cfg.heads;
            cfg.kv_heads = c.u64_or("num_key_value_heads", heads)?;
            cfg.activation = c.activation("hidden_act", c.str_or("hidden_act", "gelu_new")?, false)?;
            cfg.positions = Positions::Rotary;
            cfg.rotary_fraction = c.fraction_or("partial_rotary_factor", 0.5)?;
            // PhiAttention: separate q_proj, k_proj, v_proj, dense, all with biases.
            cfg.parallel_block = true;
            cfg.head_bias = true;
            cfg.tied_embeddings = c.bool_or("tie_word_embeddings", false)?;
            cfg.dropout = any_dropout(c, &[("resid_pdrop", 0.0), ("embd_pdrop", 0.0), ("attention_dropout", 0.0)])?;
            if c.bool_or("qk_layernorm", false)? {
                m.warnings.push("qk_layernorm is not modelled".into());
            }
            if !(arch.is_empty() || arch == "PhiForCausalLM") {
                note_head(m, "a language-model head");
            }
            single(m, "phi", cfg, Fixes::default());
        }
        "t5" | "switch_transformers" => map_t5(c, m)?,
        "vit" => {
            let hidden = c.u64("hidden_size")?;
            let heads = c.heads(c.u64("num_attention_heads")?, "num_attention_heads")?;
            c.head_dim(hidden, heads)?;
            let image = c.u64_or("image_size", 224)?;
            let patch = c.u64_or("patch_size", 16)?;
            let mut cfg = vision_tower(c, [c.u64("num_hidden_layers")?, hidden, heads, c.u64("intermediate_size")?], image, patch)?;
            cfg.activation = c.activation("hidden_act", c.str_or("hidden_act", "gelu")?, false)?;
            cfg.dropout = any_dropout(c, &[("hidden_dropout_prob", 0.0), ("attention_probs_dropout_prob", 0.0)])?;
            if !c.bool_or("qkv_bias", true)? {
                m.warnings.push("qkv_bias = false is not modelled: q, k, v have biases".into());
            }
            let mut fixes = Fixes::default();
            match arch.as_str() {
                "ViTForImageClassification" => {
                    cfg.head = Head::Classifier(c.labels()?);
                    fixes.no_pooler = true;
                }
                "" | "ViTModel" => {}
                _ => note_head(m, "no head (ViTModel without its pooler)"),
            }
            single(m, "vit", cfg, fixes);
        }
        "clip" => {
            let empty = Map::new();
            let t = c.sub("text_config", &empty)?;
            let v = c.sub("vision_config", &empty)?;
            // CLIPTextConfig / CLIPVisionConfig defaults: recent transformers versions
            // write only the values that differ from them.
            let (th, theads) = (t.u64_or("hidden_size", 512)?, t.heads(t.u64_or("num_attention_heads", 8)?, "num_attention_heads")?);
            t.head_dim(th, theads)?;
            let mut text = TransformerConfig::decoder(
                t.u64_or("num_hidden_layers", 12)?,
                th,
                theads,
                t.u64_or("intermediate_size", 2048)?,
                t.u64_or("vocab_size", 49408)?,
                t.u64_or("max_position_embeddings", 77)?,
            );
            text.activation = t.activation("hidden_act", t.str_or("hidden_act", "quick_gelu")?, false)?;
            text.head = Head::None;
            text.dropout = any_dropout(&t, &[("dropout", 0.0), ("attention_dropout", 0.0)])?;
            let (vh, vheads) = (v.u64_or("hidden_size", 768)?, v.heads(v.u64_or("num_attention_heads", 12)?, "num_attention_heads")?);
            v.head_dim(vh, vheads)?;
            let sizes = [v.u64_or("num_hidden_layers", 12)?, vh, vheads, v.u64_or("intermediate_size", 3072)?];
            let mut vision = vision_tower(&v, sizes, v.u64_or("image_size", 224)?, v.u64_or("patch_size", 32)?)?;
            vision.activation = v.activation("hidden_act", v.str_or("hidden_act", "quick_gelu")?, false)?;
            vision.dropout = any_dropout(&v, &[("dropout", 0.0), ("attention_dropout", 0.0)])?;
            if !(arch.is_empty() || arch == "CLIPModel") {
                note_head(m, "CLIPModel (both towers and projections)");
            }
            m.family = "clip".into();
            m.projection_dim = Some(c.u64_or("projection_dim", 512)?);
            m.towers.push(Tower { prefix: "text_model.".into(), config: text, fixes: Fixes::default() });
            m.towers.push(Tower { prefix: "vision_model.".into(), config: vision, fixes: Fixes { no_patch_bias: true, embed_pre_norm: true, ..Fixes::default() } });
        }
        other => {
            let close = crate::error::closest(other, SUPPORTED.iter().copied());
            let hint = if close.is_empty() { String::new() } else { format!("; did you mean {}?", close.join(", ")) };
            return Err(Error::File { path: c.path.into(), msg: format!("unsupported model_type '{other}' (supported: {}){hint}", SUPPORTED.join(", ")) });
        }
    }
    Ok(())
}

/// A pre-norm ViT-style encoder (`[layers, hidden, heads, ffn]`) over `image`² pixels in
/// `patch`² patches plus a class token.
fn vision_tower(c: &Cfg, [layers, hidden, heads, ffn]: [u64; 4], image: u64, patch: u64) -> Result<TransformerConfig> {
    if patch == 0 || !image.is_multiple_of(patch) {
        return Err(c.err(format!("image size {image} is not a multiple of the patch size {patch}")));
    }
    let channels = c.u64_or("num_channels", 3)?;
    let tokens = (image / patch).pow(2) + 1;
    let mut cfg = TransformerConfig::decoder(layers, hidden, heads, ffn, 0, tokens);
    cfg.kind = StackKind::Encoder;
    cfg.patch = Some(PatchEmbed { image, patch, channels, extra_tokens: 1 });
    cfg.head = Head::None;
    Ok(cfg)
}

/// T5 and Switch Transformers: encoder-decoder, RMS-style norm without bias, no biases,
/// relative attention bias, one embedding shared by both stacks.
fn map_t5(c: &Cfg, m: &mut HfModel) -> Result<()> {
    let switch = c.model_type == "switch_transformers";
    let layers = c.u64("num_layers")?;
    let heads = c.heads(c.u64("num_heads")?, "num_heads")?;
    let activation = if switch {
        // SwitchTransformersDenseActDense: wi → act → wo, never gated.
        c.activation("dense_act_fn", c.str_or("dense_act_fn", "relu")?, false)?
    } else {
        let ff = c.str_or("feed_forward_proj", "relu")?;
        let (gated, act) = match ff.split_once('-') {
            Some(("gated", a)) => (true, a),
            Some(_) => return Err(c.err(format!("feed_forward_proj '{ff}' is neither 'ACT' nor 'gated-ACT'"))),
            None => (false, ff),
        };
        // T5Config maps "gated-gelu" to gelu_new.
        let act = if ff == "gated-gelu" { "gelu_new" } else { act };
        c.activation("feed_forward_proj", act, gated)?
    };
    let mut cfg = TransformerConfig::decoder(layers, c.u64("d_model")?, heads, c.u64("d_ff")?, c.u64("vocab_size")?, 0);
    cfg.kind = StackKind::EncoderDecoder;
    cfg.decoder_layers = c.u64_or("num_decoder_layers", layers)?;
    cfg.head_dim = c.u64("d_kv")?;
    cfg.norm = Norm::RmsNorm;
    cfg.activation = activation;
    cfg.positions = Positions::RelativeBias;
    cfg.linear_bias = false;
    cfg.tied_embeddings = c.bool_or("tie_word_embeddings", true)?;
    cfg.dropout = any_dropout(c, &[("dropout_rate", 0.1)])?;
    let mut fixes = Fixes { shared_embedding: true, relative_buckets: Some(c.u64_or("relative_attention_num_buckets", 32)?), ..Fixes::default() };
    let arch = m.architecture.clone().unwrap_or_default();
    match arch.as_str() {
        "T5EncoderModel" | "SwitchTransformersEncoderModel" => {
            cfg.kind = StackKind::Encoder;
            cfg.decoder_layers = 0;
            cfg.head = Head::None;
            fixes.shared_embedding = false;
        }
        "T5Model" | "SwitchTransformersModel" => cfg.head = Head::None,
        "" | "T5ForConditionalGeneration" | "T5WithLMHeadModel" | "SwitchTransformersForConditionalGeneration" => {}
        _ => m.warnings.push(format!("architecture {arch}: modelled as the conditional-generation model")),
    }
    if switch {
        // SwitchTransformersConfig: a sparse layer every `layers / sparse layers` layers,
        // unless the file states the step.
        let step = |key: &str, sparse_key: &str, n: u64| -> Result<u64> {
            if let Some(s) = c.opt_u64(key)? {
                return Ok(s);
            }
            let sparse = c.u64_or(sparse_key, 3)?;
            Ok(n.checked_div(sparse).unwrap_or(0))
        };
        let enc = step("encoder_sparse_step", "num_sparse_encoder_layers", layers)?;
        let dec = step("decoder_sparse_step", "num_sparse_decoder_layers", cfg.decoder_layers)?;
        // HF makes layer i sparse when i % step == 1 (every layer for step 1); the builder
        // takes layers step-1, 2·step-1, …: the same count, shifted.
        let every = if enc > 0 { enc } else { dec };
        if every > 0 {
            if enc != dec && cfg.kind == StackKind::EncoderDecoder {
                m.warnings.push(format!("encoder sparse step {enc} and decoder sparse step {dec} differ: both stacks are modelled with {every}"));
            }
            // The capacity is applied by `patch` (it keeps the count exact per sequence).
            cfg.moe = Some(Moe { experts: c.u64_or("num_experts", 8)?, top_k: 1, every, capacity: None });
            fixes.expert_capacity = Some(c.u64_or("expert_capacity", 64)?);
        }
        if c.bool_or("router_bias", false)? {
            m.warnings.push("router_bias is not modelled".into());
        }
    }
    m.family = "t5".into();
    m.towers.push(Tower { prefix: String::new(), config: cfg, fixes });
    Ok(())
}

/// Builds the graph a trace row measured from the config it names, with the head the
/// measurement used: the BERT rows of NeuSight (its README) ran inference with a
/// sequence-classification head and training with the pre-training heads (MLM + NSP),
/// whatever `architectures` the config lists.
pub fn build_for_trace(path: &Path, wl: Workload, training: bool, tp: u64) -> Result<Graph> {
    let mut m = load(path)?;
    for t in &mut m.towers {
        t.config.tp = tp;
    }
    if m.model_type == "bert" {
        for t in &mut m.towers {
            t.config.head = if training { Head::MaskedLm } else { Head::Classifier(2) };
            t.fixes.no_pooler_nsp = false;
        }
    }
    m.build(wl)
}

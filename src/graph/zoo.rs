//! The built-in model zoo: each model from its published architecture (layers, widths,
//! heads, KV heads, FFN sizes, vocabulary, image size). Parameter counts and FLOPs are
//! never typed in; `published_params` is only the figure tests compare against.

use super::transformer::{self, Activation, Head, Moe, Norm, PatchEmbed, Positions, StackKind, TransformerConfig, Workload};
use super::{Graph, GraphOp};
use crate::error::{closest, Error, Result};

/// How a zoo model is built. The zoo is a static table of a few dozen entries, so the
/// size of the CLIP variant does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Recipe {
    Transformer(TransformerConfig),
    /// CLIP: a causal text tower and a ViT image tower with projections to `proj` dims.
    Clip { text: TransformerConfig, vision: TransformerConfig, proj: u64 },
    /// Convolutional and diffusion models (`graph::vision`): batch and image size in.
    Vision { build: fn(u64, u64) -> Result<Graph>, default_image: u64 },
}

#[derive(Clone)]
pub struct ZooModel {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub family: &'static str,
    /// The model's size as its authors report it, for tests.
    pub published_params: u64,
    pub params_source: &'static str,
    pub recipe: Recipe,
}

impl ZooModel {
    /// Sequence length used when the user gives none: the context for encoders and
    /// vision models is fixed; LLMs default to 2048 tokens (or their context if shorter).
    pub fn default_seq_len(&self) -> u64 {
        match &self.recipe {
            Recipe::Transformer(c) if c.patch.is_none() => c.max_positions.clamp(1, 2048).min(if c.kind == StackKind::Encoder { 512 } else { 2048 }),
            Recipe::Clip { text, .. } => text.max_positions,
            _ => 1,
        }
    }

    /// Whether the model has a KV cache (decoder-only LLM) — decides decode workloads.
    pub fn is_decoder(&self) -> bool {
        matches!(&self.recipe, Recipe::Transformer(c) if c.kind == StackKind::Decoder)
    }

    pub fn max_positions(&self) -> Option<u64> {
        match &self.recipe {
            Recipe::Transformer(c) if c.patch.is_none() => Some(c.max_positions),
            Recipe::Clip { text, .. } => Some(text.max_positions),
            _ => None,
        }
    }

    /// The operator graph of one forward step.
    pub fn build(&self, wl: Workload) -> Result<Graph> {
        match &self.recipe {
            Recipe::Transformer(c) => transformer::build(self.name, self.family, c, wl),
            Recipe::Clip { text, vision, proj } => {
                let t = transformer::build("text", self.family, text, Workload { past: 0, ..wl })?;
                let v = transformer::build("vision", self.family, vision, Workload { past: 0, seq_len: 1, ..wl })?;
                let mut g = Graph::new(self.name, self.family);
                // `append` keeps each tower's output: text first, then vision.
                g.append(t, "text.");
                g.append(v, "vision.");
                let b = wl.batch;
                let te = g.node("text.eos_token", GraphOp::View, &[g.outputs[0]], vec![b, text.hidden]);
                let ve = g.node("vision.class_token", GraphOp::View, &[g.outputs[1]], vec![b, vision.hidden]);
                let tw = g.weight("text_projection.weight", vec![*proj, text.hidden]);
                let vw = g.weight("visual_projection.weight", vec![*proj, vision.hidden]);
                let _scale = g.weight("logit_scale", vec![1]);
                let tp = g.node("text_projection", GraphOp::MatMul { b: 1, m: b, n: *proj, k: text.hidden, bias: false }, &[te, tw], vec![b, *proj]);
                let vp = g.node("visual_projection", GraphOp::MatMul { b: 1, m: b, n: *proj, k: vision.hidden, bias: false }, &[ve, vw], vec![b, *proj]);
                let logits = g.node("logits", GraphOp::MatMul { b: 1, m: b, n: b, k: *proj, bias: false }, &[tp, vp], vec![b, b]);
                g.outputs = vec![logits];
                g.check()?;
                Ok(g)
            }
            // Images have no sequence: `seq_len` does not apply.
            Recipe::Vision { build, default_image } => {
                wl.check(self.name)?;
                build(wl.batch, *default_image)
            }
        }
    }
}

fn gpt2_style(layers: u64, hidden: u64, heads: u64, ctx: u64) -> TransformerConfig {
    TransformerConfig {
        activation: Activation::GeluTanhPython,
        fused_qkv: true,
        tied_embeddings: true,
        ..TransformerConfig::decoder(layers, hidden, heads, 4 * hidden, 50257, ctx)
    }
}

fn bert_style(layers: u64, hidden: u64, heads: u64, head: Head) -> TransformerConfig {
    TransformerConfig {
        kind: StackKind::Encoder,
        type_vocab: 2,
        post_norm: true,
        tied_embeddings: true,
        head,
        ..TransformerConfig::decoder(layers, hidden, heads, 4 * hidden, 30522, 512)
    }
}

fn vit(layers: u64, hidden: u64, heads: u64, patch: u64, extra_tokens: u64) -> TransformerConfig {
    TransformerConfig {
        kind: StackKind::Encoder,
        vocab: 0,
        max_positions: 0,
        head: Head::ClassToken(1000),
        patch: Some(PatchEmbed { image: 224, patch, channels: 3, extra_tokens }),
        ..TransformerConfig::decoder(layers, hidden, heads, 4 * hidden, 0, 0)
    }
}

fn clip_text(layers: u64, hidden: u64, heads: u64) -> TransformerConfig {
    TransformerConfig {
        kind: StackKind::Encoder,
        activation: Activation::QuickGelu,
        head: Head::None,
        dropout: false,
        ..TransformerConfig::decoder(layers, hidden, heads, 4 * hidden, 49408, 77)
    }
}

fn clip_vision(layers: u64, hidden: u64, heads: u64, patch: u64) -> TransformerConfig {
    TransformerConfig { activation: Activation::QuickGelu, head: Head::None, dropout: false, ..vit(layers, hidden, heads, patch, 1) }
}

fn t(name: &'static str, aliases: &'static [&'static str], family: &'static str, params: u64, source: &'static str, cfg: TransformerConfig) -> ZooModel {
    ZooModel { name, aliases, family, published_params: params, params_source: source, recipe: Recipe::Transformer(cfg) }
}

const M: u64 = 1_000_000;

/// Every built-in model.
pub fn models() -> Vec<ZooModel> {
    let llama2_7b = TransformerConfig::llama(32, 4096, 32, 32, 11008, 32000, 4096);
    let llama2_13b = TransformerConfig::llama(40, 5120, 40, 40, 13824, 32000, 4096);
    let mistral = TransformerConfig::llama(32, 4096, 32, 8, 14336, 32000, 32768);
    let mut v = vec![
        t("gpt3-175b", &["gpt3", "gpt-3", "gpt3-davinci"], "gpt3", 175_000 * M, "Brown et al. 2020, Table 2.1 (96 layers, d=12288, 96 heads)", gpt2_style(96, 12288, 96, 2048)),
        t("gpt3-xl", &["gpt3-1.3b"], "gpt3", 1_300 * M, "Brown et al. 2020, Table 2.1 (24 layers, d=2048, 24 heads)", TransformerConfig { head_dim: 128, ..gpt2_style(24, 2048, 16, 2048) }),
        t("gpt3-2.7b", &["gpt3-27"], "gpt3", 2_700 * M, "Brown et al. 2020, Table 2.1 (32 layers, d=2560, 32 heads)", gpt2_style(32, 2560, 32, 2048)),
        t("gpt2", &["gpt2-small", "gpt2-124m"], "gpt2", 124 * M, "HF openai-community/gpt2 (124M parameters)", gpt2_style(12, 768, 12, 1024)),
        t("gpt2-large", &["gpt2_large"], "gpt2", 774 * M, "HF openai-community/gpt2-large (774M parameters)", gpt2_style(36, 1280, 20, 1024)),
        t("llama2-7b", &["llama-2-7b", "llama2", "meta-llama/Llama-2-7b-hf"], "llama", 6_738 * M, "HF meta-llama/Llama-2-7b-hf safetensors: 6.74B", llama2_7b.clone()),
        t("llama2-13b", &["llama-2-13b", "meta-llama/Llama-2-13b-hf"], "llama", 13_016 * M, "HF meta-llama/Llama-2-13b-hf safetensors: 13.0B", llama2_13b.clone()),
        t("llama2-70b", &["llama-2-70b", "meta-llama/Llama-2-70b-hf"], "llama", 68_977 * M, "HF meta-llama/Llama-2-70b-hf safetensors: 69.0B", TransformerConfig::llama(80, 8192, 64, 8, 28672, 32000, 4096)),
        t("codellama-7b", &["code-llama-7b", "codellama/CodeLlama-7b-hf"], "llama", 6_738 * M, "HF codellama/CodeLlama-7b-hf: 6.74B", TransformerConfig { vocab: 32016, max_positions: 16384, ..llama2_7b }),
        t("codellama-13b", &["code-llama-13b", "codellama/CodeLlama-13b-hf"], "llama", 13_016 * M, "HF codellama/CodeLlama-13b-hf: 13.0B", TransformerConfig { vocab: 32016, max_positions: 16384, ..llama2_13b }),
        t("codellama-34b", &["code-llama-34b", "codellama/CodeLlama-34b-hf"], "llama", 33_744 * M, "HF codellama/CodeLlama-34b-hf: 33.7B", TransformerConfig::llama(48, 8192, 64, 8, 22016, 32000, 16384)),
        t("llama3-8b", &["llama-3-8b", "meta-llama/Meta-Llama-3-8B"], "llama", 8_030 * M, "HF meta-llama/Meta-Llama-3-8B: 8.03B", TransformerConfig::llama(32, 4096, 32, 8, 14336, 128256, 8192)),
        t("llama3-70b", &["llama-3-70b", "meta-llama/Meta-Llama-3-70B"], "llama", 70_554 * M, "HF meta-llama/Meta-Llama-3-70B: 70.6B", TransformerConfig::llama(80, 8192, 64, 8, 28672, 128256, 8192)),
        t("mistral-7b", &["mistral", "mistralai/Mistral-7B-v0.1"], "mistral", 7_242 * M, "HF mistralai/Mistral-7B-v0.1: 7.24B", mistral.clone()),
        t("mixtral-8x7b", &["mixtral", "mistralai/Mixtral-8x7B-v0.1"], "mixtral", 46_703 * M, "HF mistralai/Mixtral-8x7B-v0.1: 46.7B", TransformerConfig { moe: Some(Moe { experts: 8, top_k: 2, every: 1, capacity: None }), ..mistral }),
        t("qwen-72b", &["qwen1-72b", "Qwen/Qwen-72B"], "qwen", 72_288 * M, "HF Qwen/Qwen-72B: 72.3B (80 layers, d=8192, FFN 24576, vocab 152064)", TransformerConfig::llama(80, 8192, 64, 64, 24576, 152064, 32768)),
        t("internlm-20b", &["internlm/internlm-20b"], "internlm", 20_000 * M, "InternLM-20B model card: 20B (60 layers, d=5120, FFN 13824, vocab 103168)", TransformerConfig::llama(60, 5120, 40, 40, 13824, 103168, 4096)),
        t(
            "phi-2",
            &["phi2", "microsoft/phi-2"],
            "phi",
            2_780 * M,
            "HF microsoft/phi-2 model card: 2.7B (safetensors 2.78B)",
            TransformerConfig {
                activation: Activation::GeluTanhPython,
                positions: Positions::Rotary,
                rotary_fraction: 0.4,
                parallel_block: true,
                head_bias: true,
                dropout: false,
                ..TransformerConfig::decoder(32, 2560, 32, 10240, 51200, 2048)
            },
        ),
        t("bert-base", &["bert-base-uncased", "bert"], "bert", 110 * M, "Devlin et al. 2019: BERT-base 110M", bert_style(12, 768, 12, Head::Classifier(2))),
        t("bert-large", &["bert-large-uncased", "bert_large"], "bert", 335 * M, "HF google-bert/bert-large-uncased: 336M (paper: 340M)", bert_style(24, 1024, 16, Head::Classifier(2))),
        t(
            "distilbert",
            &["distilbert-base-uncased", "distilbert-base"],
            "bert",
            66 * M,
            "Sanh et al. 2019: DistilBERT 66M",
            TransformerConfig { type_vocab: 0, head: Head::None, ..bert_style(6, 768, 12, Head::None) },
        ),
        t(
            "opt-1.3b",
            &["opt", "facebook/opt-1.3b", "opt_13"],
            "opt",
            1_316 * M,
            "HF facebook/opt-1.3b: 1.3B (1.316B)",
            TransformerConfig { activation: Activation::Relu, tied_embeddings: true, max_positions: 2048, ..TransformerConfig::decoder(24, 2048, 32, 8192, 50272, 2048) },
        ),
        t(
            "switch-xl-4e",
            &["switch", "switch-4e", "switchxl4"],
            "switch",
            0,
            "no published size: NeuSight's switchxl4.json (24+24 layers, d=1024, 32 heads × 128, FFN 16384, 4 experts every 2nd layer)",
            TransformerConfig {
                kind: StackKind::EncoderDecoder,
                decoder_layers: 24,
                head_dim: 128,
                norm: Norm::RmsNorm,
                activation: Activation::Relu,
                positions: Positions::RelativeBias,
                linear_bias: false,
                tied_embeddings: true,
                moe: Some(Moe { experts: 4, top_k: 1, every: 2, capacity: Some(64) }),
                ..TransformerConfig::decoder(24, 1024, 32, 16384, 32128, 0)
            },
        ),
        t("vit-b-16", &["vit-base-16", "vit-base-patch16-224", "vit-b/16", "google/vit-base-patch16-224"], "vit", 86_567_656, "torchvision vit_b_16: 86,567,656 parameters", vit(12, 768, 12, 16, 1)),
        t("vit-l-16", &["vit-large-16", "vit-l/16"], "vit", 304_326_632, "torchvision vit_l_16: 304,326,632 parameters", vit(24, 1024, 16, 16, 1)),
        t("vit-h-14", &["vit-huge-14", "vit-h/14"], "vit", 632_045_800, "torchvision vit_h_14: 632,045,800 parameters", vit(32, 1280, 16, 14, 1)),
        t("deit-b", &["deit-base", "deit-b-16", "facebook/deit-base-patch16-224"], "deit", 86_600_000, "Touvron et al. 2021, Table 1: DeiT-B 86M", vit(12, 768, 12, 16, 1)),
        t("deit-l", &["deit-large", "deit3-l"], "deit", 304_400_000, "Touvron et al. 2022 (DeiT III), ViT-L 304.4M", vit(24, 1024, 16, 16, 1)),
    ];
    for (name, aliases, params, source, text, vision, proj) in [
        ("clip-vit-b-32", &["clip-b-32", "openai/clip-vit-base-patch32", "clip"][..], 151_277_313u64, "HF openai/clip-vit-base-patch32: 151.3M", clip_text(12, 512, 8), clip_vision(12, 768, 12, 32), 512),
        ("clip-vit-b-16", &["clip-b-16", "openai/clip-vit-base-patch16"][..], 149_620_737, "HF openai/clip-vit-base-patch16: 149.6M", clip_text(12, 512, 8), clip_vision(12, 768, 12, 16), 512),
        ("clip-vit-l-14", &["clip-l-14", "openai/clip-vit-large-patch14"][..], 427_616_513, "HF openai/clip-vit-large-patch14: 427.6M", clip_text(12, 768, 12), clip_vision(24, 1024, 16, 14), 768),
    ] {
        v.push(ZooModel { name, aliases, family: "clip", published_params: params, params_source: source, recipe: Recipe::Clip { text, vision, proj } });
    }
    // Convolutional, detection and diffusion models (`graph::vision`).
    for m in super::vision::models() {
        v.push(ZooModel {
            name: m.name,
            aliases: m.aliases,
            family: m.family,
            published_params: m.published_params,
            params_source: m.params_source,
            recipe: Recipe::Vision { build: m.build, default_image: m.default_image },
        });
    }
    v
}

/// Finds a model by name or alias (case-insensitive); unknown names suggest close ones.
pub fn find(name: &str) -> Result<ZooModel> {
    let key = name.trim().to_lowercase().replace('_', "-");
    let all = models();
    if let Some(m) = all.iter().find(|m| m.name == key || m.aliases.iter().any(|a| a.to_lowercase().replace('_', "-") == key)) {
        return Ok(m.clone());
    }
    let names: Vec<&str> = all.iter().flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied())).collect();
    Err(Error::UnknownModel { name: name.to_string(), suggestions: closest(name, names) })
}

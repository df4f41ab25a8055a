//! The HuggingFace `config.json` frontend: every measured model's config and a set of
//! public configs load, map onto the right architecture, and give the published parameter
//! counts; model ids resolve from the local cache; errors name the file, line and field.

use phantom_gpu::graph::hf_config::{self, HfModel, Hub};
use phantom_gpu::graph::transformer::{Activation, Head, Norm, Positions, StackKind, Workload};
use phantom_gpu::graph::{Graph, GraphOp, Role};
use phantom_gpu::Error;
use std::path::{Path, PathBuf};

const NEUSIGHT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/traces/neusight/configs");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hf");

fn wl(batch: u64, seq_len: u64, past: u64) -> Workload {
    Workload { batch, seq_len, past }
}

fn fixture(name: &str) -> HfModel {
    hf_config::load(&Path::new(FIXTURES).join(format!("{name}.json"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn params(m: &HfModel) -> u64 {
    m.build(wl(1, 16, 0)).unwrap_or_else(|e| panic!("{}: {e}", m.name)).params()
}

/// GPT-2 architecture, closed form: token and position tables, per layer two LayerNorms,
/// q|k|v, output projection and a 4h MLP with biases, the final LayerNorm; tied head.
fn gpt2_closed_form(layers: u64, h: u64, vocab: u64, positions: u64) -> u64 {
    (vocab + positions) * h + layers * (12 * h * h + 13 * h) + 2 * h
}

struct Case {
    file: &'static str,
    /// The count the graph must have exactly (HF's `sum(p.numel())` for the config).
    exact: u64,
    /// The published size it must be within 2% of, and where that figure comes from.
    published: u64,
    source: &'static str,
}

/// NeuSight's configs. `exact` is the HuggingFace model's parameter count for the file as
/// written; `published` is the figure the model is known by.
fn neusight_cases() -> Vec<Case> {
    vec![
        // BertLMHeadModel: the encoder without pooler, plus the MLM transform (dense +
        // LayerNorm) and the decoder bias; the decoder weight is the tied embedding.
        Case { file: "bert", exact: 109_514_298, published: 109_482_240, source: "bert-base-uncased (BertModel, HF count; BERT paper: 110M)" },
        // The BERT paper's 340M is a rounded figure; the released checkpoint has 335.1M.
        Case { file: "bert_large", exact: 335_174_458, published: 335_141_888, source: "bert-large-uncased (BertModel, HF count; BERT paper: 340M, 1.4% off)" },
        Case { file: "gpt2_med", exact: 354_823_168, published: 354_823_168, source: "gpt2-medium (HF count; 355M)" },
        Case { file: "gpt2_large", exact: 774_030_080, published: 774_030_080, source: "gpt2-large (HF count; 774M)" },
        Case { file: "gpt2_xl", exact: 1_557_611_200, published: 1_557_611_200, source: "gpt2-xl (HF count; 1.5B)" },
        // GPT-3 shapes in a GPT-2 body (vocabulary 50257, 2048 positions).
        Case { file: "gpt3_27", exact: gpt2_closed_form(32, 2560, 50257, 2048), published: 2_700_000_000, source: "GPT-3 2.7B (paper, Table 2.1)" },
        Case { file: "gpt3_67", exact: gpt2_closed_form(32, 4096, 50257, 2048), published: 6_700_000_000, source: "GPT-3 6.7B (paper, Table 2.1)" },
        Case { file: "gpt3_13", exact: gpt2_closed_form(40, 5120, 50257, 2048), published: 13_000_000_000, source: "GPT-3 13B (paper, Table 2.1)" },
        // NeuSight's "GPT-3 XL" has n_embd 3072 (= 24 heads × d_head 128 of the paper's
        // table), not the paper's d_model 2048: 2.88B, not 1.3B. No model of this shape is
        // published; the reference is the closed form.
        Case { file: "gpt3_xl", exact: gpt2_closed_form(24, 3072, 50257, 2048), published: gpt2_closed_form(24, 3072, 50257, 2048), source: "closed form (GPT-3 XL is 1.3B at d_model 2048; this file has 3072)" },
        Case { file: "opt_13", exact: 1_315_758_080, published: 1_315_758_080, source: "facebook/opt-1.3b (HF count; 1.3B)" },
        // A one-layer OPT with hidden 512 and word_embed_proj_dim 2048 (named opt-1.3b in
        // _name_or_path, but not that model): no published size. Reference: tokens
        // 50272×2048, positions (2048+2)×512, project_in/out 2×2048×512, one layer
        // 4(512²+512) + (512·2048+2048) + (2048·512+512) + 4·512, final LayerNorm 2·512.
        Case { file: "opt", exact: 109_257_216, published: 109_257_216, source: "closed form (not a published model)" },
        // T5-3B's shape (2,851,598,336 published) with 4 experts in every other layer of
        // both stacks: 3 extra experts (2·1024·16384 each) in 24 sparse layers, plus a
        // 1024×4 router in each.
        Case {
            file: "switchxl4",
            exact: 2_851_598_336 + 3 * 24 * 2 * 1024 * 16384 + 24 * 1024 * 4,
            published: 2_851_598_336 + 3 * 24 * 2 * 1024 * 16384 + 24 * 1024 * 4,
            source: "t5-3b (HF count) + 72 expert MLPs + 24 routers (no published Switch of this shape)",
        },
    ]
}

fn fixture_cases() -> Vec<Case> {
    vec![
        Case { file: "llama-2-7b", exact: 6_738_415_616, published: 6_738_415_616, source: "meta-llama/Llama-2-7b-hf (6.74B)" },
        Case { file: "mistral-7b", exact: 7_241_732_096, published: 7_241_732_096, source: "mistralai/Mistral-7B-v0.1 (7.24B)" },
        Case { file: "mixtral-8x7b", exact: 46_702_792_704, published: 46_702_792_704, source: "mistralai/Mixtral-8x7B-v0.1 (46.7B)" },
        Case { file: "qwen2-0.5b", exact: 494_032_768, published: 494_032_768, source: "Qwen/Qwen2-0.5B (0.49B)" },
        Case { file: "phi-2", exact: 2_779_683_840, published: 2_779_683_840, source: "microsoft/phi-2 (2.78B)" },
        Case { file: "pythia-410m", exact: 405_334_016, published: 405_334_016, source: "EleutherAI/pythia-410m (405,334,016 in the Pythia paper)" },
        Case { file: "opt-125m", exact: 125_239_296, published: 125_239_296, source: "facebook/opt-125m (125M)" },
        Case { file: "opt-350m", exact: 331_196_416, published: 331_196_416, source: "facebook/opt-350m (331M)" },
        Case { file: "t5-base", exact: 222_903_552, published: 222_903_552, source: "t5-base (HF count; T5 paper: 220M)" },
        Case { file: "t5-v1_1-base", exact: 247_577_856, published: 247_577_856, source: "google/t5-v1_1-base (248M)" },
        Case { file: "vit-base-patch16-224", exact: 86_567_656, published: 86_567_656, source: "google/vit-base-patch16-224 (86.6M)" },
        Case { file: "clip-vit-base-patch32", exact: 151_277_313, published: 151_277_313, source: "openai/clip-vit-base-patch32 (151.3M)" },
    ]
}

fn check_cases(dir: &str, cases: &[Case]) {
    let mut table = String::from("| config | model_type | params | expected | published | vs published | source |\n|---|---|---|---|---|---|---|\n");
    let mut bad = Vec::new();
    for c in cases {
        let m = hf_config::load(&Path::new(dir).join(format!("{}.json", c.file))).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        let p = params(&m);
        let err = (p as f64 - c.published as f64) / c.published as f64;
        table += &format!("| {} | {} | {p} | {} | {} | {:+.2}% | {} |\n", c.file, m.model_type, c.exact, c.published, err * 100.0, c.source);
        if p != c.exact || err.abs() > 0.02 {
            bad.push(format!("{}: {p} parameters, expected {} ({:+.2}% from the published {})", c.file, c.exact, err * 100.0, c.published));
        }
    }
    println!("{table}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_neusight_config_loads_with_the_published_size() {
    let cases = neusight_cases();
    let mut files: Vec<String> = std::fs::read_dir(NEUSIGHT)
        .expect("../shared/traces/neusight/configs exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let known: Vec<&str> = cases.iter().map(|c| c.file).collect();
    for f in &files {
        assert!(known.contains(&f.as_str()), "{f}.json has no expected size in this test");
    }
    check_cases(NEUSIGHT, &cases);
}

#[test]
fn public_configs_have_their_published_sizes() {
    check_cases(FIXTURES, &fixture_cases());
}

fn all_models() -> Vec<HfModel> {
    let mut v = Vec::new();
    for dir in [NEUSIGHT, FIXTURES] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for p in paths {
            v.push(hf_config::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
        }
    }
    v
}

/// Weight tensors nobody reads would be counted as parameters without being used.
fn assert_weights_used(g: &Graph) {
    for (i, t) in g.tensors.iter().enumerate() {
        if t.role == Role::Weight {
            assert!(g.nodes.iter().any(|n| n.inputs.contains(&i)), "{}: weight {} is never read", g.name, t.name);
        }
    }
}

#[test]
fn every_config_builds_prefill_decode_and_training_shapes() {
    for m in all_models() {
        let max = m.max_positions();
        let seq = if max == 0 { 128 } else { 128.min(max) };
        for w in [wl(1, 1, 0), wl(2, seq, 0), wl(3, 1, seq - 1)] {
            let g = m.build(w).unwrap_or_else(|e| panic!("{} {w:?}: {e}", m.name));
            g.check().unwrap();
            assert!(g.flops() > 0.0, "{}", m.name);
            assert!(!g.outputs.is_empty(), "{}", m.name);
            assert_weights_used(&g);
            // The parameter count does not depend on the workload.
            assert_eq!(g.params(), params(&m), "{} {w:?}", m.name);
        }
        if max > 0 && m.config().patch.is_none() {
            let e = m.build(wl(1, max + 1, 0)).unwrap_err();
            assert!(e.to_string().contains("longer than the model allows"), "{}: {e}", m.name);
        }
    }
}

fn node<'a>(g: &'a Graph, name: &str) -> &'a phantom_gpu::graph::Node {
    g.nodes.iter().find(|n| n.name == name).unwrap_or_else(|| panic!("{}: no node {name}", g.name))
}

fn has_node(g: &Graph, name: &str) -> bool {
    g.nodes.iter().any(|n| n.name == name)
}

fn weight_shape(g: &Graph, name: &str) -> Vec<u64> {
    g.tensors.iter().find(|t| t.name == name && t.role == Role::Weight).unwrap_or_else(|| panic!("{}: no weight {name}", g.name)).shape.clone()
}

#[test]
fn gpt2_family_mapping() {
    let m = hf_config::load(&Path::new(NEUSIGHT).join("gpt2_large.json")).unwrap();
    assert_eq!((m.name.as_str(), m.model_type.as_str(), m.family.as_str()), ("gpt2_large", "gpt2", "gpt2"));
    assert_eq!(m.architecture.as_deref(), Some("GPT2LMHeadModel"));
    let c = m.config();
    assert_eq!((c.layers, c.hidden, c.heads, c.ffn, c.vocab, c.max_positions), (36, 1280, 20, 5120, 50257, 1024));
    assert_eq!(c.activation, Activation::GeluTanhPython);
    assert!(c.fused_qkv && c.tied_embeddings && c.linear_bias && c.dropout && !c.post_norm);
    assert_eq!((c.positions, c.norm, c.head), (Positions::Learned, Norm::LayerNorm, Head::LmHead));
    assert_eq!(m.max_positions(), 1024);
    let g = m.build(wl(1, 8, 0)).unwrap();
    assert!(has_node(&g, "layers.0.attn.qkv_proj"));
    assert!(!g.tensors.iter().any(|t| t.name == "lm_head.weight"), "tied head");
}

#[test]
fn gpt2_n_inner_and_activation_defaults() {
    let base = r#"{"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100, "n_positions": 32 PLUS}"#;
    let m = hf_config::parse(&base.replace(" PLUS", ""), "tiny/config.json").unwrap();
    assert_eq!(m.config().ffn, 256, "n_inner absent → 4 × n_embd");
    assert_eq!(m.config().activation, Activation::GeluTanhPython, "activation_function defaults to gelu_new");
    assert_eq!(m.name, "tiny");
    let m = hf_config::parse(&base.replace(" PLUS", r#", "n_inner": null, "activation_function": "relu""#), "x.json").unwrap();
    assert_eq!((m.config().ffn, m.config().activation), (256, Activation::Relu));
    let m = hf_config::parse(&base.replace(" PLUS", r#", "n_inner": 100, "tie_word_embeddings": false"#), "x.json").unwrap();
    assert_eq!(m.config().ffn, 100);
    assert!(!m.config().tied_embeddings);
    assert!(m.build(wl(1, 4, 0)).unwrap().tensors.iter().any(|t| t.name == "lm_head.weight"));
}

#[test]
fn opt_mapping() {
    let m = hf_config::load(&Path::new(NEUSIGHT).join("opt_13.json")).unwrap();
    let c = m.config();
    assert_eq!((c.activation, c.fused_qkv, c.tied_embeddings, c.post_norm), (Activation::Relu, false, true, false));
    assert_eq!(m.max_positions(), 2048);
    let g = m.build(wl(1, 8, 0)).unwrap();
    assert_eq!(weight_shape(&g, "embed_positions.weight"), vec![2050, 2048], "OPT's position table has 2 extra rows");
    assert!(!has_node(&g, "project_in"));

    // OPT-350m: post-norm, no final or embedding norm, 512-wide embedding projected to 1024.
    let m = fixture("opt-350m");
    assert!(m.config().post_norm);
    let g = m.build(wl(2, 8, 0)).unwrap();
    assert!(!has_node(&g, "embed_norm") && !has_node(&g, "layers.final_norm"));
    assert_eq!(weight_shape(&g, "embed_tokens.weight"), vec![50272, 512]);
    assert_eq!(node(&g, "project_in").op, GraphOp::MatMul { b: 1, m: 16, n: 1024, k: 512, bias: false });
    assert_eq!(node(&g, "project_out").op, GraphOp::MatMul { b: 1, m: 16, n: 512, k: 1024, bias: false });
    assert_eq!(node(&g, "lm_head").op, GraphOp::MatMul { b: 1, m: 16, n: 50272, k: 512, bias: false });
    let pin = node(&g, "project_in").outputs[0];
    assert!(node(&g, "add_positions").inputs.contains(&pin), "positions are added after project_in");
}

#[test]
fn bert_mapping_and_heads() {
    let m = hf_config::load(&Path::new(NEUSIGHT).join("bert_large.json")).unwrap();
    let c = m.config();
    assert_eq!((c.kind, c.activation, c.type_vocab, c.post_norm, c.fused_qkv), (StackKind::Encoder, Activation::Gelu, 2, true, false));
    assert_eq!(c.head, Head::MaskedLm);
    assert_eq!(m.max_positions(), 512);
    let g = m.build(wl(1, 16, 0)).unwrap();
    assert!(has_node(&g, "cls.decoder") && !has_node(&g, "pooler.dense") && !has_node(&g, "cls.seq_relationship"), "BertLMHeadModel has no pooler or NSP head");

    let text = std::fs::read_to_string(Path::new(NEUSIGHT).join("bert.json")).unwrap();
    let base = params(&hf_config::parse(&text, "bert.json").unwrap());
    let pre = hf_config::parse(&text.replace("BertLMHeadModel", "BertForPreTraining"), "bert.json").unwrap();
    assert_eq!(params(&pre), base + 768 * 768 + 768 + 2 * 768 + 2, "pre-training adds the pooler and the NSP classifier");
    let cls = hf_config::parse(&text.replace("BertLMHeadModel", "BertForSequenceClassification").replace("\"vocab_size\"", "\"id2label\": {\"0\": \"NEG\", \"1\": \"POS\", \"2\": \"NEUTRAL\"}, \"vocab_size\""), "bert.json").unwrap();
    assert_eq!(cls.config().head, Head::Classifier(3));
    assert_eq!(params(&cls), 109_482_240 + 768 * 3 + 3, "bert-base with a 3-label classifier");
    let plain = hf_config::parse(&text.replace("BertLMHeadModel", "BertModel"), "bert.json").unwrap();
    assert_eq!(plain.config().head, Head::None);
    let other = hf_config::parse(&text.replace("BertLMHeadModel", "BertForQuestionAnswering"), "bert.json").unwrap();
    assert!(other.warnings.iter().any(|w| w.contains("BertForQuestionAnswering")), "{:?}", other.warnings);
}

#[test]
fn llama_family_mapping() {
    let m = fixture("llama-2-7b");
    assert_eq!((m.family.as_str(), m.torch_dtype.as_deref()), ("llama", Some("float16")));
    let c = m.config();
    assert_eq!((c.norm, c.activation, c.positions, c.linear_bias, c.tied_embeddings, c.dropout), (Norm::RmsNorm, Activation::SiluGated, Positions::Rotary, false, false, false));
    assert_eq!(m.max_positions(), 4096);

    let m = fixture("mistral-7b");
    assert_eq!((m.config().kv_heads, m.config().head_dim, m.max_positions()), (8, 128, 32768));
    let g = m.build(wl(1, 1, 4096)).unwrap();
    assert!(g.warnings.iter().any(|w| w.contains("sliding window")), "{:?}", g.warnings);
    assert!(m.build(wl(1, 1, 100)).unwrap().warnings.iter().all(|w| !w.contains("sliding window")));

    let m = fixture("mixtral-8x7b");
    let moe = m.config().moe.expect("Mixtral is sparse");
    assert_eq!((moe.experts, moe.top_k, moe.every), (8, 2, 1));
    let g = m.build(wl(1, 64, 0)).unwrap();
    assert_eq!(node(&g, "layers.0.mlp.router").op, GraphOp::MatMul { b: 1, m: 64, n: 8, k: 4096, bias: false });
    // Uniform routing, no capacity limit: 64 tokens × top-2 / 8 experts.
    assert_eq!(node(&g, "layers.0.mlp.experts.0.gate_proj").op, GraphOp::MatMul { b: 1, m: 16, n: 14336, k: 4096, bias: false });

    let m = fixture("qwen2-0.5b");
    assert!(m.config().tied_embeddings);
    let g = m.build(wl(1, 4, 0)).unwrap();
    for p in ["q_proj", "k_proj", "v_proj"] {
        assert!(matches!(node(&g, &format!("layers.3.attn.{p}")).op, GraphOp::MatMul { bias: true, .. }), "{p}");
    }
    assert!(matches!(node(&g, "layers.3.attn.o_proj").op, GraphOp::MatMul { bias: false, .. }));
    assert!(matches!(node(&g, "layers.3.mlp.up_proj").op, GraphOp::MatMul { bias: false, .. }));
    assert_eq!(weight_shape(&g, "layers.3.attn.k_proj.bias"), vec![128]);

    // Llama's optional biases and an explicit head_dim.
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("llama-2-7b.json")).unwrap();
    let biased = hf_config::parse(&text.replace("\"pretraining_tp\"", "\"attention_bias\": true, \"mlp_bias\": true, \"pretraining_tp\""), "x.json").unwrap();
    assert_eq!(params(&biased), 6_738_415_616 + 32 * (4 * 4096 + 2 * 11008 + 4096));
    let hd = hf_config::parse(&text.replace("\"pretraining_tp\"", "\"head_dim\": 64, \"pretraining_tp\""), "x.json").unwrap();
    assert_eq!(hd.config().head_dim, 64);
}

#[test]
fn phi2_and_neox_mapping() {
    let m = fixture("phi-2");
    let c = m.config();
    assert_eq!((c.activation, c.rotary_fraction, c.parallel_block, c.fused_qkv, c.head_bias, c.linear_bias, c.tied_embeddings), (Activation::GeluTanhPython, 0.4, true, false, true, true, false));
    let g = m.build(wl(1, 8, 0)).unwrap();
    assert!(matches!(node(&g, "layers.0.attn.rope").op, GraphOp::Rope { d: 32, .. }), "0.4 × 80 of the head dim rotates");
    assert!(matches!(node(&g, "lm_head").op, GraphOp::MatMul { bias: true, .. }));

    let m = fixture("pythia-410m");
    let c = m.config();
    assert_eq!((c.activation, c.rotary_fraction, c.parallel_block, c.fused_qkv, c.tied_embeddings), (Activation::Gelu, 0.25, true, true, false));
    let g = m.build(wl(1, 8, 0)).unwrap();
    // GPT-NeoX's parallel block: the MLP reads its own norm of the layer input.
    let n2 = node(&g, "layers.5.mlp_norm");
    assert_eq!(n2.inputs[0], node(&g, "layers.5.attn_norm").inputs[0]);
    assert_eq!(node(&g, "layers.5.mlp.up_proj").inputs[0], n2.outputs[0]);
    assert_eq!(node(&g, "layers.5.attn.qkv_proj").inputs[0], node(&g, "layers.5.attn_norm").outputs[0]);
}

#[test]
fn t5_and_switch_mapping() {
    let m = fixture("t5-base");
    let c = m.config();
    assert_eq!((m.family.as_str(), c.kind, c.layers, c.decoder_layers), ("t5", StackKind::EncoderDecoder, 12, 12));
    assert_eq!((c.norm, c.activation, c.positions, c.linear_bias, c.tied_embeddings), (Norm::RmsNorm, Activation::Relu, Positions::RelativeBias, false, true));
    assert_eq!(m.max_positions(), 0, "relative positions: no limit");
    let g = m.build(wl(2, 10, 0)).unwrap();
    assert!(!g.tensors.iter().any(|t| t.name == "decoder.embed_tokens.weight"), "one shared embedding");
    assert_eq!(node(&g, "decoder.embed_tokens").inputs[1], node(&g, "encoder.embed_tokens").inputs[1]);
    assert_eq!(weight_shape(&g, "encoder.layers.0.attn.relative_attention_bias.weight"), vec![32, 12]);
    assert_eq!(node(&g, "decoder.relative_position_bias").op, GraphOp::Embedding { tokens: 100, dim: 12, vocab: 32 });

    let m = fixture("t5-v1_1-base");
    assert_eq!((m.config().activation, m.config().tied_embeddings), (Activation::GeluGated, false));

    // The encoder alone: one stack, its own relative-bias table, no head.
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("t5-base.json")).unwrap();
    let enc = hf_config::parse(&text.replace("T5ForConditionalGeneration", "T5EncoderModel"), "x.json").unwrap();
    assert_eq!((enc.config().kind, enc.config().head), (StackKind::Encoder, Head::None));
    let g = enc.build(wl(1, 10, 0)).unwrap();
    assert_eq!(weight_shape(&g, "layers.0.attn.relative_attention_bias.weight"), vec![32, 12]);
    // t5-base's shared embedding, encoder stack and its final norm.
    assert_eq!(g.params(), 32128 * 768 + 12 * (4 * 768 * 768 + 2 * 768 * 3072 + 2 * 768) + 768 + 32 * 12);

    let m = hf_config::load(&Path::new(NEUSIGHT).join("switchxl4.json")).unwrap();
    let c = m.config();
    assert_eq!((c.hidden, c.heads, c.head_dim, c.ffn, c.activation), (1024, 32, 128, 16384, Activation::Relu));
    let moe = c.moe.expect("Switch is sparse");
    assert_eq!((moe.experts, moe.top_k, moe.every), (4, 1, 2));
    assert_eq!(m.towers[0].fixes.expert_capacity, Some(64));
    // Seq 512, batch 2: 256 tokens routed to each expert, 64 per sequence kept.
    let g = m.build(wl(2, 512, 0)).unwrap();
    assert!(!has_node(&g, "encoder.layers.0.mlp.router"), "layer 0 is dense");
    assert_eq!(node(&g, "encoder.layers.1.mlp.experts.3.up_proj").op, GraphOp::MatMul { b: 1, m: 128, n: 16384, k: 1024, bias: false });
    assert!(g.warnings.iter().any(|w| w.contains("expert capacity 64")), "{:?}", g.warnings);
    // Decode: one token per sequence, far under capacity.
    let g = m.build(wl(8, 1, 100)).unwrap();
    assert_eq!(node(&g, "decoder.layers.1.mlp.experts.0.up_proj").op, GraphOp::MatMul { b: 1, m: 2, n: 16384, k: 1024, bias: false });
}

#[test]
fn vit_and_clip_mapping() {
    let m = fixture("vit-base-patch16-224");
    let c = m.config();
    assert_eq!((c.kind, c.head, c.activation), (StackKind::Encoder, Head::Classifier(1000), Activation::Gelu));
    assert_eq!(m.max_positions(), 197);
    let g = m.build(wl(4, 1, 0)).unwrap();
    assert!(!has_node(&g, "pooler.dense"), "ViTForImageClassification has no pooler");
    assert_eq!(node(&g, "classifier").op, GraphOp::MatMul { b: 1, m: 4, n: 1000, k: 768, bias: true });
    assert!(matches!(node(&g, "patch_embed").op, GraphOp::Conv2d { n: 4, r: 16, stride: 16, bias: true, .. }));

    let m = fixture("clip-vit-base-patch32");
    assert_eq!((m.family.as_str(), m.towers.len(), m.projection_dim, m.max_positions()), ("clip", 2, Some(512), 77));
    let (t, v) = (&m.towers[0].config, &m.towers[1].config);
    assert_eq!((t.kind, t.hidden, t.heads, t.activation, t.head), (StackKind::Decoder, 512, 8, Activation::QuickGelu, Head::None));
    assert_eq!((v.kind, v.hidden, v.activation, v.tokens(1)), (StackKind::Encoder, 768, Activation::QuickGelu, 50));
    let g = m.build(wl(3, 77, 0)).unwrap();
    assert!(matches!(node(&g, "vision_model.patch_embed").op, GraphOp::Conv2d { bias: false, r: 32, .. }));
    assert!(has_node(&g, "vision_model.pre_layrnorm"));
    assert!(matches!(node(&g, "text_model.layers.0.attn.sdpa").op, GraphOp::Attention { causal: true, sq: 77, .. }));
    assert!(matches!(node(&g, "vision_model.layers.0.attn.sdpa").op, GraphOp::Attention { causal: false, sq: 50, .. }));
    assert_eq!(node(&g, "visual_projection").op, GraphOp::MatMul { b: 1, m: 3, n: 512, k: 768, bias: false });
    assert_eq!(node(&g, "logits_per_text.matmul").op, GraphOp::MatMul { b: 1, m: 3, n: 3, k: 512, bias: false });
    assert!(m.build(wl(1, 78, 0)).is_err(), "CLIP's text is at most 77 tokens");

    // Sub-configs take CLIPTextConfig / CLIPVisionConfig defaults (ViT-B/32).
    let m = hf_config::parse(r#"{"model_type": "clip"}"#, "clip/config.json").unwrap();
    assert_eq!(params(&m), 151_277_313);
}

#[test]
fn names_come_from_the_cache_layout_or_the_file() {
    let m = hf_config::parse(r#"{"model_type": "clip"}"#, "/c/hub/models--openai--clip-vit-base-patch32/snapshots/abc123/config.json").unwrap();
    assert_eq!(m.name, "openai/clip-vit-base-patch32");
    let m = hf_config::parse(r#"{"model_type": "clip"}"#, "/models/my-clip/config.json").unwrap();
    assert_eq!(m.name, "my-clip");
    let m = hf_config::parse(r#"{"model_type": "clip"}"#, "/models/clip_b32.json").unwrap();
    assert_eq!(m.name, "clip_b32");
}

// ---- errors ----

fn parse_err(text: &str) -> Error {
    hf_config::parse(text, "models/x/config.json").expect_err("should fail")
}

#[test]
fn malformed_json_names_the_file_line_and_column() {
    let e = parse_err("{\n  \"model_type\": \"gpt2\",\n  \"n_embd\": 768,,\n}");
    match &e {
        Error::Parse { path, line, msg } => {
            assert_eq!((path.as_str(), *line), ("models/x/config.json", 3));
            assert!(msg.contains("column 17"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("models/x/config.json:3: column 17"), "{e}");
    let e = parse_err("");
    assert!(matches!(e, Error::Parse { .. }), "{e}");
    let e = parse_err("[1, 2]");
    assert!(e.to_string().contains("one JSON object"), "{e}");
}

#[test]
fn missing_and_mistyped_fields_name_the_field_and_model_type() {
    let e = parse_err(r#"{"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 8, "vocab_size": 10}"#);
    let s = e.to_string();
    assert!(s.contains("models/x/config.json") && s.contains("'hidden_size'") && s.contains("'llama'"), "{s}");
    let e = parse_err(r#"{"model_type": "t5", "num_layers": 2, "num_heads": 4, "d_model": 8, "d_ff": 8, "vocab_size": 10}"#);
    assert!(e.to_string().contains("'d_kv'") && e.to_string().contains("'t5'"), "{e}");
    let e = parse_err(r#"{"model_type": "gpt2", "n_embd": "768", "n_head": 12, "n_layer": 12, "vocab_size": 10}"#);
    assert!(e.to_string().contains("'n_embd' must be a non-negative integer"), "{e}");
    let e = parse_err(r#"{"model_type": "gpt2", "n_embd": 768, "n_head": -1, "n_layer": 12, "vocab_size": 10}"#);
    assert!(e.to_string().contains("'n_head'"), "{e}");
    let e = parse_err(r#"{"model_type": "gpt2", "n_embd": 768, "n_head": 7, "n_layer": 12, "vocab_size": 10}"#);
    assert!(e.to_string().contains("not a multiple of 7"), "{e}");
    let e = parse_err(r#"{"model_type": "clip", "vision_config": {"hidden_size": true}}"#);
    assert!(e.to_string().contains("'vision_config.hidden_size'"), "{e}");
    let e = parse_err(r#"{"model_type": "clip", "text_config": 3}"#);
    assert!(e.to_string().contains("'text_config' must be an object"), "{e}");
    let e = parse_err(r#"{"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 10, "activation_function": "mish"}"#);
    assert!(e.to_string().contains("'mish'") && e.to_string().contains("supported"), "{e}");
    let e = parse_err(r#"{"model_type": "t5", "num_layers": 2, "num_heads": 4, "d_model": 8, "d_kv": 2, "d_ff": 8, "vocab_size": 10, "feed_forward_proj": "fancy-relu"}"#);
    assert!(e.to_string().contains("fancy-relu"), "{e}");
    // Sizes the builder rejects are errors too.
    let e = parse_err(r#"{"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 0, "num_attention_heads": 4, "intermediate_size": 8, "vocab_size": 10}"#);
    assert!(e.to_string().contains("layers must be positive"), "{e}");
    let e = parse_err(r#"{"model_type": "mixtral", "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 8, "vocab_size": 10, "num_local_experts": 2, "num_experts_per_tok": 3}"#);
    assert!(e.to_string().contains("mixture of experts"), "{e}");
}

#[test]
fn unsupported_or_missing_model_type_lists_the_supported_ones() {
    let e = parse_err(r#"{"model_type": "gpt_bigcode"}"#);
    let s = e.to_string();
    assert!(s.contains("unsupported model_type 'gpt_bigcode'"), "{s}");
    for t in hf_config::SUPPORTED {
        assert!(s.contains(t), "{s} lacks {t}");
    }
    let e = parse_err(r#"{"model_type": "lama"}"#);
    assert!(e.to_string().contains("did you mean llama"), "{e}");
    let e = parse_err(r#"{"hidden_size": 4}"#);
    assert!(e.to_string().contains("no 'model_type'") && e.to_string().contains("llama"), "{e}");
    let e = parse_err(r#"{"model_type": 7}"#);
    assert!(e.to_string().contains("must be a string"), "{e}");
}

#[test]
fn garbage_never_panics() {
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("mixtral-8x7b.json")).unwrap();
    // Every prefix of a real config, and every field set to a wrong type or zero.
    for cut in (0..text.len()).step_by(7) {
        let _ = hf_config::parse(&text[..cut], "x.json");
    }
    for dir in [NEUSIGHT, FIXTURES] {
        for p in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            for key in v.as_object().unwrap().keys() {
                for bad in [serde_json::json!(0), serde_json::json!("x"), serde_json::json!(null), serde_json::json!(1e300), serde_json::json!(-3)] {
                    let mut w = v.clone();
                    w[key] = bad;
                    if let Ok(m) = hf_config::parse(&w.to_string(), "x.json") {
                        let _ = m.build(wl(1, 4, 0));
                    }
                }
            }
        }
    }
}

// ---- locating config.json ----

fn fake_cache(root: &Path, id: &str, commit: &str, text: &str) -> PathBuf {
    let repo = root.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{commit}\n")).unwrap();
    std::fs::write(snap.join("config.json"), text).unwrap();
    snap.join("config.json")
}

fn llama_text() -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join("llama-2-7b.json")).unwrap()
}

#[test]
fn resolves_files_folders_and_cached_ids() {
    let dir = tempfile::tempdir().unwrap();
    let commit = "8cca527612d856d7d32bd94f8103728d614eb852";
    let file = fake_cache(dir.path(), "meta-llama/Llama-2-7b-hf", commit, &llama_text());
    let hub = Hub::new(dir.path());
    assert_eq!(hub.resolve("meta-llama/Llama-2-7b-hf").unwrap(), file);
    assert_eq!(hub.resolve(&format!("meta-llama/Llama-2-7b-hf@{commit}")).unwrap(), file, "a commit names a snapshot");
    // A folder, and a file, resolve to themselves.
    let snap = file.parent().unwrap();
    assert_eq!(hub.resolve(snap.to_str().unwrap()).unwrap(), snap.join("config.json"));
    assert_eq!(hub.resolve(file.to_str().unwrap()).unwrap(), file);
    // Loading the cached file names the model by its id.
    let m = hf_config::load(&hub.resolve("meta-llama/Llama-2-7b-hf").unwrap()).unwrap();
    assert_eq!(m.name, "meta-llama/Llama-2-7b-hf");
    assert_eq!(params(&m), 6_738_415_616);
    let m = hf_config::load(snap).unwrap();
    assert_eq!(m.name, "meta-llama/Llama-2-7b-hf");

    // A branch other than main.
    let repo = dir.path().join("models--meta-llama--Llama-2-7b-hf");
    std::fs::write(repo.join("refs/v2"), commit).unwrap();
    assert_eq!(hub.resolve("meta-llama/Llama-2-7b-hf@v2").unwrap(), file);
    // An id without an organisation.
    let g = fake_cache(dir.path(), "gpt2", "1111", &std::fs::read_to_string(Path::new(NEUSIGHT).join("gpt2_med.json")).unwrap());
    assert_eq!(hub.resolve("gpt2").unwrap(), g);
}

#[test]
fn unresolvable_specs_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    // Offline, so that builds with `hf-hub` do not go to the network either.
    let hub = Hub { offline: true, ..Hub::new(dir.path()) };
    let e = hub.resolve("nobody/nothing").unwrap_err().to_string();
    assert!(e.contains("models--nobody--nothing") && e.contains("huggingface-cli download nobody/nothing"), "{e}");
    let e = hub.resolve("./no/such/dir/config.json").unwrap_err().to_string();
    assert!(e.contains("no such file"), "{e}");
    // A folder without config.json.
    let e = hub.resolve(dir.path().to_str().unwrap()).unwrap_err().to_string();
    assert!(e.contains("no config.json"), "{e}");
    // refs/main naming a missing snapshot.
    let repo = dir.path().join("models--a--b");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "deadbeef").unwrap();
    assert!(hub.resolve("a/b").is_err());
    std::fs::write(repo.join("refs/main"), "../../etc").unwrap();
    assert!(hub.resolve("a/b").unwrap_err().to_string().contains("not a commit hash"));
    let e = hf_config::load(Path::new("/no/such/config.json")).unwrap_err().to_string();
    assert!(e.contains("/no/such/config.json") && e.contains("cannot read"), "{e}");
}

/// The only test that touches the environment.
#[test]
fn resolve_reads_the_cache_folder_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = fake_cache(dir.path(), "env-org/env-model", "abc", &llama_text());
    std::env::set_var("HF_HUB_CACHE", dir.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    assert_eq!(hf_config::cache_dir().as_deref(), Some(dir.path()));
    let hub = Hub::from_env();
    assert!(hub.offline);
    assert_eq!(hf_config::resolve("env-org/env-model").unwrap(), file);
    assert_eq!(hf_config::open("env-org/env-model").unwrap().name, "env-org/env-model");
    std::env::remove_var("HF_HUB_CACHE");
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    assert_eq!(hf_config::cache_dir(), Some(home.path().join("hub")));
    std::env::remove_var("HF_HOME");
    std::env::remove_var("HF_HUB_OFFLINE");
}

#[cfg(feature = "hf-hub")]
mod hub_download {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Serves one HTTP request on 127.0.0.1 with `status` and `body`; sends back the
    /// request head it got.
    fn serve_once(status: &str, headers: &str, body: &str) -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        let resp = format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n{body}", body.len());
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            s.write_all(resp.as_bytes()).unwrap();
            let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
        });
        (endpoint, rx)
    }

    #[test]
    fn downloads_into_the_cache_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let (endpoint, rx) = serve_once("200 OK", &format!("X-Repo-Commit: {commit}\r\n"), &llama_text());
        let hub = Hub { cache: Some(dir.path().to_path_buf()), endpoint, token: Some("hf_secret".into()), offline: false };
        let file = hub.resolve("meta-llama/Llama-2-7b-hf").unwrap();
        let head = rx.recv_timeout(Duration::from_secs(10)).unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /meta-llama/llama-2-7b-hf/resolve/main/config.json http/1.1"), "{head}");
        assert!(head.contains("authorization: bearer hf_secret"), "{head}");
        let repo = dir.path().join("models--meta-llama--Llama-2-7b-hf");
        assert_eq!(file, repo.join("snapshots").join(commit).join("config.json"));
        assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), commit);
        assert_eq!(params(&hf_config::load(&file).unwrap()), 6_738_415_616);
        // Now cached: no server needed.
        let offline = Hub { offline: true, ..hub.clone() };
        assert_eq!(offline.resolve("meta-llama/Llama-2-7b-hf").unwrap(), file);
    }

    #[test]
    fn download_errors_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (endpoint, _rx) = serve_once("404 Not Found", "", "{\"error\": \"Repository not found\"}");
        let hub = Hub { cache: Some(dir.path().to_path_buf()), endpoint: endpoint.clone(), token: None, offline: false };
        let e = hub.resolve("nobody/nothing").unwrap_err().to_string();
        assert!(e.contains("/nobody/nothing/resolve/main/config.json") && e.contains("no model 'nobody/nothing'"), "{e}");
        let (endpoint, _rx) = serve_once("401 Unauthorized", "", "{}");
        let e = Hub { endpoint, ..hub.clone() }.resolve("meta-llama/Llama-2-7b-hf").unwrap_err().to_string();
        assert!(e.contains("HF_TOKEN"), "{e}");
        let (endpoint, _rx) = serve_once("200 OK", "", "<html>not json</html>");
        let e = Hub { endpoint, ..hub.clone() }.resolve("a/b").unwrap_err().to_string();
        assert!(e.contains("no JSON"), "{e}");
        assert!(!dir.path().join("models--a--b").exists(), "nothing cached from a bad answer");
        let e = Hub { offline: true, ..hub.clone() }.resolve("a/b").unwrap_err().to_string();
        assert!(e.contains("HF_HUB_OFFLINE"), "{e}");
        // Nobody listening.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = Hub { endpoint: format!("http://127.0.0.1:{port}"), ..hub }.resolve("a/b").unwrap_err().to_string();
        assert!(e.contains("download failed"), "{e}");
    }
}

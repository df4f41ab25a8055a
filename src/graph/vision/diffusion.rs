//! Latent diffusion (Stable Diffusion 1.5 and SDXL) as `diffusers` runs it: the
//! `UNet2DConditionModel`, the `AutoencoderKL` decoder, the CLIP text encoders, and a
//! pipeline that chains them (text encoding once, one UNet call per denoising step with
//! classifier-free guidance doubling its batch, one VAE decode).
//!
//! Sizes are image sizes in pixels; the latents are 1/8 of that with 4 channels.
//! Attention runs through `AttnProcessor2_0` (`F.scaled_dot_product_attention`), so it is
//! an `Attention` node; its output transpose is a view of the fused kernel's layout.
//! Dropout is absent (inference graphs). The sinusoidal time embedding uses `exp` for the
//! sin and cos kernels (`crate::kernel::op::ELEMENTWISE_FNS` has no trigonometry).

use super::net::{check_input, Net};
use crate::error::{Error, Result};
use crate::graph::transformer::{self, Activation, Head, TransformerConfig, Workload};
use crate::graph::{Graph, GraphOp, TensorId};

const GROUPS: u64 = 32;
/// CLIP's context length.
pub const TEXT_TOKENS: u64 = 77;

/// A `UNet2DConditionModel` configuration (the fields that shape the network).
pub(crate) struct UnetSpec {
    name: &'static str,
    /// `block_out_channels`.
    channels: &'static [u64],
    /// Transformer blocks per down level (0: a plain `DownBlock2D`); the up levels mirror it.
    depth: &'static [u64],
    /// Attention heads per level.
    heads: &'static [u64],
    mid_depth: u64,
    cross_attention_dim: u64,
    /// `use_linear_projection`: `proj_in`/`proj_out` are linears (else 1×1 convolutions).
    linear_projection: bool,
    /// SDXL's `addition_embed_type="text_time"`: pooled text embedding and six size/crop
    /// ids, each id through a 256-wide sinusoidal embedding.
    text_time: Option<(u64, u64)>,
}

impl UnetSpec {
    /// Image sizes (pixels) the UNet takes without resampling its skip connections: the
    /// latent (1/8) must halve cleanly at every downsampler.
    fn multiple(&self) -> u64 {
        8 << (self.channels.len() - 1)
    }
}

/// `runwayml/stable-diffusion-v1-5` `unet/config.json`: `attention_head_dim: 8`, which
/// diffusers reads as 8 heads at every level.
pub(crate) const SD15_UNET: UnetSpec = UnetSpec {
    name: "sd-1.5-unet",
    channels: &[320, 640, 1280, 1280],
    depth: &[1, 1, 1, 0],
    heads: &[8, 8, 8, 8],
    mid_depth: 1,
    cross_attention_dim: 768,
    linear_projection: false,
    text_time: None,
};

/// `stabilityai/stable-diffusion-xl-base-1.0` `unet/config.json`: head dim 64
/// (`attention_head_dim: [5, 10, 20]` heads), `transformer_layers_per_block: [1, 2, 10]`
/// on the levels that have attention (the first has none), context 2048, linear projections,
/// `addition_time_embed_dim: 256`, `projection_class_embeddings_input_dim: 2816`.
pub(crate) const SDXL_UNET: UnetSpec = UnetSpec {
    name: "sdxl-unet",
    channels: &[320, 640, 1280],
    depth: &[0, 2, 10],
    heads: &[5, 10, 20],
    mid_depth: 10,
    cross_attention_dim: 2048,
    linear_projection: true,
    text_time: Some((256, 1280)),
};

/// `get_timestep_embedding(t, dim, flip_sin_to_cos=True)`: `t` is `[n]`, output `[n, dim]`.
fn timestep_embedding(net: &mut Net, p: &str, t: TensorId, dim: u64) -> TensorId {
    let n = net.shape(t)[0];
    let half = dim / 2;
    let ex = net.node(&format!("{p}.exponent"), GraphOp::Elementwise { func: "mul_scalar".into(), numel: half, inputs: 1 }, &[], vec![half]);
    let ex = net.ew(&format!("{p}.exponent_div"), "div_scalar", &[ex]);
    let freqs = net.ew(&format!("{p}.freqs"), "exp", &[ex]);
    let tf = net.ew(&format!("{p}.t_float"), "copy", &[t]);
    let tf = net.view(&format!("{p}.t_unsqueeze"), tf, vec![n, 1]);
    let args = net.node(&format!("{p}.args"), GraphOp::Elementwise { func: "mul".into(), numel: n * half, inputs: 2 }, &[tf, freqs], vec![n, half]);
    let args = net.ew(&format!("{p}.scale"), "mul_scalar", &[args]);
    let sin = net.ew(&format!("{p}.sin"), "exp", &[args]);
    let cos = net.ew(&format!("{p}.cos"), "exp", &[args]);
    let e = net.cat(&format!("{p}.cat"), &[sin, cos], 1);
    let e = net.copy(&format!("{p}.flip"), &[e], vec![n, dim]);
    net.ew(&format!("{p}.to_dtype"), "copy", &[e])
}

/// `TimestepEmbedding(k, 1280)`: linear, SiLU, linear.
fn time_mlp(net: &mut Net, p: &str, x: TensorId, dim: u64) -> TensorId {
    let h = net.linear(&format!("{p}.linear_1"), x, dim, true);
    let h = net.silu(&format!("{p}.act"), h);
    net.linear(&format!("{p}.linear_2"), h, dim, true)
}

/// `ResnetBlock2D(in, out, temb)`: GroupNorm, SiLU, 3×3 conv, (+ projected time
/// embedding), GroupNorm, SiLU, 3×3 conv, (1×1 shortcut when the width changes), add,
/// divide by `output_scale_factor`.
fn resnet(net: &mut Net, p: &str, x: TensorId, out: u64, temb: Option<TensorId>) -> TensorId {
    let s = net.shape(x);
    let (n, c) = (s[0], s[1]);
    let h = net.group_norm(&format!("{p}.norm1"), x, GROUPS);
    let h = net.silu(&format!("{p}.nonlinearity1"), h);
    let mut h = net.conv(&format!("{p}.conv1"), h, out, 3, 1, 1, 1, true);
    if let Some(t) = temb {
        let t = net.silu(&format!("{p}.temb_act"), t);
        let t = net.linear(&format!("{p}.time_emb_proj"), t, out, true);
        let t = net.view(&format!("{p}.temb_unsqueeze"), t, vec![n, out, 1, 1]);
        h = net.add(&format!("{p}.add_temb"), h, t);
    }
    let h = net.group_norm(&format!("{p}.norm2"), h, GROUPS);
    let h = net.silu(&format!("{p}.nonlinearity2"), h);
    let h = net.conv(&format!("{p}.conv2"), h, out, 3, 1, 1, 1, true);
    let shortcut = if c != out { net.conv(&format!("{p}.conv_shortcut"), x, out, 1, 1, 0, 1, true) } else { x };
    let y = net.add(&format!("{p}.add"), shortcut, h);
    net.ew(&format!("{p}.rescale"), "div_scalar", &[y])
}

/// diffusers `Attention` through `AttnProcessor2_0`: q from `x`, k and v from `ctx`
/// (or `x`), SDPA, output projection, divide by `rescale_output_factor`.
fn attention(net: &mut Net, p: &str, x: TensorId, ctx: Option<TensorId>, heads: u64, qkv_bias: bool) -> TensorId {
    let inner = *net.shape(x).last().unwrap();
    let kv_src = ctx.unwrap_or(x);
    let q = net.linear(&format!("{p}.to_q"), x, inner, qkv_bias);
    let k = net.linear(&format!("{p}.to_k"), kv_src, inner, qkv_bias);
    let v = net.linear(&format!("{p}.to_v"), kv_src, inner, qkv_bias);
    let o = net.sdpa(&format!("{p}.sdpa"), q, k, v, heads);
    net.linear(&format!("{p}.to_out.0"), o, inner, true)
}

/// `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward, each
/// pre-norm with a residual.
fn transformer_block(net: &mut Net, p: &str, x: TensorId, ctx: TensorId, heads: u64) -> TensorId {
    let dim = *net.shape(x).last().unwrap();
    let h = net.layer_norm(&format!("{p}.norm1"), x);
    let a = attention(net, &format!("{p}.attn1"), h, None, heads, false);
    let a = net.ew(&format!("{p}.attn1.rescale"), "div_scalar", &[a]);
    let x = net.add(&format!("{p}.add_attn1"), a, x);
    let h = net.layer_norm(&format!("{p}.norm2"), x);
    let a = attention(net, &format!("{p}.attn2"), h, Some(ctx), heads, false);
    let a = net.ew(&format!("{p}.attn2.rescale"), "div_scalar", &[a]);
    let x = net.add(&format!("{p}.add_attn2"), a, x);
    let h = net.layer_norm(&format!("{p}.norm3"), x);
    let proj = net.linear(&format!("{p}.ff.net.0.proj"), h, 8 * dim, true);
    let s = net.shape(proj);
    let half = vec![s[0], s[1], 4 * dim];
    let hidden = net.view(&format!("{p}.ff.net.0.chunk_hidden"), proj, half.clone());
    let gate = net.view(&format!("{p}.ff.net.0.chunk_gate"), proj, half);
    let gate = net.ew(&format!("{p}.ff.net.0.gelu"), "gelu", &[gate]);
    let g = net.ew(&format!("{p}.ff.net.0.mul"), "mul", &[hidden, gate]);
    let f = net.linear(&format!("{p}.ff.net.2"), g, dim, true);
    net.add(&format!("{p}.add_ff"), f, x)
}

/// `Transformer2DModel` over an NCHW map: GroupNorm, `proj_in`, `depth` blocks,
/// `proj_out`, residual.
fn transformer2d(net: &mut Net, p: &str, x: TensorId, ctx: TensorId, heads: u64, depth: u64, linear: bool) -> TensorId {
    let s = net.shape(x);
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let y = net.group_norm(&format!("{p}.norm"), x, GROUPS);
    let mut t = if linear {
        let t = net.copy(&format!("{p}.to_tokens"), &[y], vec![n, h * w, c]);
        net.linear(&format!("{p}.proj_in"), t, c, true)
    } else {
        let y = net.conv(&format!("{p}.proj_in"), y, c, 1, 1, 0, 1, true);
        net.copy(&format!("{p}.to_tokens"), &[y], vec![n, h * w, c])
    };
    for i in 0..depth {
        t = transformer_block(net, &format!("{p}.transformer_blocks.{i}"), t, ctx, heads);
    }
    let y = if linear {
        let t = net.linear(&format!("{p}.proj_out"), t, c, true);
        net.copy(&format!("{p}.to_map"), &[t], vec![n, c, h, w])
    } else {
        let y = net.copy(&format!("{p}.to_map"), &[t], vec![n, c, h, w]);
        net.conv(&format!("{p}.proj_out"), y, c, 1, 1, 0, 1, true)
    };
    net.add(&format!("{p}.residual"), y, x)
}

/// The UNet's forward written into `net`: `sample` `[n, 4, h, w]`, `timesteps` `[n]`,
/// `ctx` `[n, 77, cross_attention_dim]`, and for SDXL `(text_embeds [n, 1280],
/// time_ids [n, 6])`. Returns the predicted noise `[n, 4, h, w]`.
pub(crate) fn unet_into(net: &mut Net, spec: &UnetSpec, sample: TensorId, timesteps: TensorId, ctx: TensorId, added: Option<(TensorId, TensorId)>) -> TensorId {
    let ch = spec.channels;
    let levels = ch.len();
    let temb_dim = 4 * ch[0];
    let t = timestep_embedding(net, "time_proj", timesteps, ch[0]);
    let mut emb = time_mlp(net, "time_embedding", t, temb_dim);
    if let (Some((time_dim, _)), Some((text_embeds, time_ids))) = (spec.text_time, added) {
        let n = net.shape(time_ids)[0];
        let ids = net.view("add_time_ids.flatten", time_ids, vec![n * 6]);
        let te = timestep_embedding(net, "add_time_proj", ids, time_dim);
        let te = net.view("add_time_ids.reshape", te, vec![n, 6 * time_dim]);
        let add = net.cat("add_embeds", &[text_embeds, te], 1);
        let add = net.ew("add_embeds.to_dtype", "copy", &[add]);
        let aug = time_mlp(net, "add_embedding", add, temb_dim);
        emb = net.add("add_aug_emb", emb, aug);
    }
    let temb = Some(emb);
    let mut x = net.conv("conv_in", sample, ch[0], 3, 1, 1, 1, true);
    let mut skips = vec![x];
    for (l, &width) in ch.iter().enumerate() {
        let p = format!("down_blocks.{l}");
        for j in 0..2 {
            x = resnet(net, &format!("{p}.resnets.{j}"), x, width, temb);
            if spec.depth[l] > 0 {
                x = transformer2d(net, &format!("{p}.attentions.{j}"), x, ctx, spec.heads[l], spec.depth[l], spec.linear_projection);
            }
            skips.push(x);
        }
        if l + 1 < levels {
            x = net.conv(&format!("{p}.downsamplers.0.conv"), x, width, 3, 2, 1, 1, true);
            skips.push(x);
        }
    }
    let top = ch[levels - 1];
    x = resnet(net, "mid_block.resnets.0", x, top, temb);
    x = transformer2d(net, "mid_block.attentions.0", x, ctx, spec.heads[levels - 1], spec.mid_depth, spec.linear_projection);
    x = resnet(net, "mid_block.resnets.1", x, top, temb);
    for i in 0..levels {
        let l = levels - 1 - i;
        let p = format!("up_blocks.{i}");
        for j in 0..3 {
            let skip = skips.pop().expect("one skip connection per up-block resnet");
            x = net.cat(&format!("{p}.cat.{j}"), &[x, skip], 1);
            x = resnet(net, &format!("{p}.resnets.{j}"), x, ch[l], temb);
            if spec.depth[l] > 0 {
                x = transformer2d(net, &format!("{p}.attentions.{j}"), x, ctx, spec.heads[l], spec.depth[l], spec.linear_projection);
            }
        }
        if i + 1 < levels {
            x = net.upsample(&format!("{p}.upsamplers.0.interpolate"), x, 2);
            x = net.conv(&format!("{p}.upsamplers.0.conv"), x, ch[l], 3, 1, 1, 1, true);
        }
    }
    debug_assert!(skips.is_empty());
    let x = net.group_norm("conv_norm_out", x, GROUPS);
    let x = net.silu("conv_act", x);
    net.conv("conv_out", x, 4, 3, 1, 1, 1, true)
}

/// The VAE decoder written into `net`: `z` `[n, 4, h, w]` (already divided by the
/// scaling factor) → image `[n, 3, 8h, 8w]`. `AutoencoderKL.decode`: `post_quant_conv`,
/// then `Decoder` (block channels 128/256/512/512, two res blocks per level plus one, a
/// single-head self-attention in the middle block).
pub(crate) fn vae_decoder_into(net: &mut Net, z: TensorId) -> TensorId {
    let z = net.conv("post_quant_conv", z, 4, 1, 1, 0, 1, true);
    let mut x = net.conv("decoder.conv_in", z, 512, 3, 1, 1, 1, true);
    x = resnet(net, "decoder.mid_block.resnets.0", x, 512, None);
    // Attention(512, heads=1, group norm, residual_connection=True) on the map's tokens.
    let p = "decoder.mid_block.attentions.0";
    let s = net.shape(x);
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let t = net.view(&format!("{p}.to_tokens"), x, vec![n, c, h * w]);
    let t = net.group_norm(&format!("{p}.group_norm"), t, GROUPS);
    let t = net.view(&format!("{p}.transpose"), t, vec![n, h * w, c]);
    let a = attention(net, p, t, None, 1, true);
    let a = net.copy(&format!("{p}.to_map"), &[a], vec![n, c, h, w]);
    let a = net.add(&format!("{p}.residual"), a, x);
    x = net.ew(&format!("{p}.rescale"), "div_scalar", &[a]);
    x = resnet(net, "decoder.mid_block.resnets.1", x, 512, None);
    let chans = [512, 512, 256, 128];
    for (i, &out) in chans.iter().enumerate() {
        let p = format!("decoder.up_blocks.{i}");
        for j in 0..3 {
            x = resnet(net, &format!("{p}.resnets.{j}"), x, out, None);
        }
        if i + 1 < chans.len() {
            x = net.upsample(&format!("{p}.upsamplers.0.interpolate"), x, 2);
            x = net.conv(&format!("{p}.upsamplers.0.conv"), x, out, 3, 1, 1, 1, true);
        }
    }
    let x = net.group_norm("decoder.conv_norm_out", x, GROUPS);
    let x = net.silu("decoder.conv_act", x);
    net.conv("decoder.conv_out", x, 3, 3, 1, 1, 1, true)
}

fn unet_standalone(spec: &UnetSpec, batch: u64, image: u64) -> Result<Graph> {
    check_input(spec.name, batch, image, spec.multiple(), spec.multiple())?;
    let lat = image / 8;
    let mut net = Net::new(spec.name, "diffusion");
    let sample = net.input("sample", vec![batch, 4, lat, lat], false);
    let t = net.input("timestep", vec![batch], false);
    let ctx = net.input("encoder_hidden_states", vec![batch, TEXT_TOKENS, spec.cross_attention_dim], false);
    let added = spec.text_time.map(|(_, text)| (net.input("text_embeds", vec![batch, text], false), net.input("time_ids", vec![batch, 6], false)));
    let out = unet_into(&mut net, spec, sample, t, ctx, added);
    net.g.outputs.push(out);
    net.finish()
}

/// Stable Diffusion 1.5 UNet, one evaluation at `image` pixels (a multiple of 64; 512 as
/// trained), 77-token CLIP ViT-L context.
pub fn sd15_unet(batch: u64, image: u64) -> Result<Graph> {
    unet_standalone(&SD15_UNET, batch, image)
}

/// SDXL base UNet, one evaluation at `image` pixels (a multiple of 32; 1024 as trained),
/// with the concatenated 2048-wide context and the text/time added conditioning.
pub fn sdxl_unet(batch: u64, image: u64) -> Result<Graph> {
    unet_standalone(&SDXL_UNET, batch, image)
}

fn vae_standalone(name: &str, batch: u64, image: u64) -> Result<Graph> {
    check_input(name, batch, image, 8, 8)?;
    let mut net = Net::new(name, "diffusion");
    let z = net.input("latents", vec![batch, 4, image / 8, image / 8], false);
    let out = vae_decoder_into(&mut net, z);
    net.g.outputs.push(out);
    net.finish()
}

/// The SD 1.5 VAE decoder (`AutoencoderKL`, 4 latent channels) producing `image`×`image`.
pub fn sd15_vae_decoder(batch: u64, image: u64) -> Result<Graph> {
    vae_standalone("sd-1.5-vae-decoder", batch, image)
}

/// The SDXL VAE decoder: the same architecture as SD 1.5's (retrained weights).
pub fn sdxl_vae_decoder(batch: u64, image: u64) -> Result<Graph> {
    vae_standalone("sdxl-vae-decoder", batch, image)
}

fn clip_text_config(layers: u64, hidden: u64, heads: u64, ffn: u64, activation: Activation) -> TransformerConfig {
    // CLIP's text transformer is pre-norm with a causal mask and a final layer norm: the
    // decoder stack with no head.
    TransformerConfig { activation, head: Head::None, dropout: false, ..TransformerConfig::decoder(layers, hidden, heads, ffn, 49408, TEXT_TOKENS) }
}

/// CLIP ViT-L/14 text model (`openai/clip-vit-large-patch14`, SD 1.5's and SDXL's first
/// text encoder): 12 layers, 768 wide, 12 heads, FFN 3072, quick-GELU, 77 tokens. Output:
/// the last hidden state `[batch, 77, 768]`.
pub fn clip_vit_l_text(batch: u64) -> Result<Graph> {
    let cfg = clip_text_config(12, 768, 12, 3072, Activation::QuickGelu);
    transformer::build("clip-vit-l-14-text", "clip", &cfg, Workload { batch, seq_len: TEXT_TOKENS, past: 0 })
}

/// OpenCLIP ViT-bigG/14 text model with projection (SDXL's `text_encoder_2`,
/// `CLIPTextModelWithProjection`): 32 layers, 1280 wide, 20 heads, FFN 5120, GELU.
/// Outputs: the hidden state `[batch, 77, 1280]` and the projected pooled embedding
/// `[batch, 1280]` (the end-of-text token's state through `text_projection`).
pub fn openclip_bigg_text(batch: u64) -> Result<Graph> {
    let cfg = clip_text_config(32, 1280, 20, 5120, Activation::Gelu);
    let mut g = transformer::build("openclip-vit-bigg-14-text", "clip", &cfg, Workload { batch, seq_len: TEXT_TOKENS, past: 0 })?;
    let hidden = *g.outputs.last().expect("the text model returns its hidden state");
    let ids = g.tensors.iter().position(|t| t.index).unwrap_or(hidden);
    let eot = g.node("pooled.argmax", GraphOp::Reduce { numel_in: batch * TEXT_TOKENS, numel_out: batch }, &[ids], vec![batch]);
    let pooled = g.node("pooled.gather", GraphOp::Copy { numel: batch * 1280 }, &[hidden, eot], vec![batch, 1280]);
    let w = g.weight("text_projection.weight", vec![1280, 1280]);
    let proj = g.node("text_projection", GraphOp::MatMul { b: 1, m: batch, n: 1280, k: 1280, bias: false }, &[pooled, w], vec![batch, 1280]);
    g.outputs.push(proj);
    g.check()?;
    Ok(g)
}

/// Which latent diffusion model a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diffusion {
    Sd15,
    Sdxl,
}

/// A text-to-image pipeline (`StableDiffusionPipeline` / `StableDiffusionXLPipeline`):
/// the text encoder(s) once over the prompt and, with `guidance`, the negative prompt (one
/// call at twice the batch); `steps` denoising steps, each a UNet evaluation (at twice the
/// batch under classifier-free guidance), the guidance combine and an Euler scheduler
/// step; then the VAE decode and the image denormalisation. Weights are shared across
/// steps, so `params()` is the model's. `image` in pixels (a multiple of 64 for SD 1.5,
/// 32 for SDXL: three and two UNet downsamplers on the 1/8 latent).
///
/// Simplified: diffusers encodes prompt and negative prompt in two calls (same work as one
/// at twice the batch); SD 1.5 defaults to the PNDM scheduler, whose step is a few more
/// elementwise kernels than Euler's; SDXL's fp16 VAE upcast to fp32 is not represented
/// (the graph carries no precision).
pub fn diffusion_pipeline(model: Diffusion, batch: u64, image: u64, steps: u64, guidance: bool) -> Result<Graph> {
    let (name, spec) = match model {
        Diffusion::Sd15 => ("stable-diffusion-1.5", &SD15_UNET),
        Diffusion::Sdxl => ("stable-diffusion-xl", &SDXL_UNET),
    };
    check_input(name, batch, image, spec.multiple(), spec.multiple())?;
    if steps == 0 {
        return Err(Error::Usage(format!("{name}: the number of denoising steps must be at least 1")));
    }
    let ub = if guidance { 2 * batch } else { batch };
    let lat = image / 8;
    let mut net = Net::new(name, "diffusion");
    let te = clip_vit_l_text(ub)?;
    let out = *te.outputs.last().expect("text encoder output");
    let map = net.g.append(te, "text_encoder.");
    let mut ctx = map[out];
    let mut added = None;
    if model == Diffusion::Sdxl {
        let te2 = openclip_bigg_text(ub)?;
        let (h2, pooled) = (te2.outputs[0], te2.outputs[1]);
        let map2 = net.g.append(te2, "text_encoder_2.");
        // SDXL conditions on the penultimate hidden states of both encoders (all layers
        // still run), concatenated to 768 + 1280 = 2048 channels.
        ctx = net.cat("prompt_embeds.cat", &[ctx, map2[h2]], 2);
        let time_ids = net.input("add_time_ids", vec![ub, 6], false);
        added = Some((map2[pooled], time_ids));
    }
    let noise = net.input("latents", vec![batch, 4, lat, lat], false);
    let mut latents = net.ew("prepare_latents.init_noise_sigma", "mul_scalar", &[noise]);
    // One denoising step is built and marked to run `steps` times (same weights, the
    // latents carried from step to step).
    let step_start = net.g.nodes.len();
    {
        net.node_prefix = "step.".into();
        let x = if guidance { net.cat("latent_model_input", &[latents, latents], 0) } else { latents };
        let x = net.ew("scheduler.scale_model_input", "div_scalar", &[x]);
        let t = net.input("timestep", vec![1], false);
        let t = net.expand("timestep.expand", t, vec![ub]);
        net.node_prefix = "step.unet.".into();
        net.weight_prefix = "unet.".into();
        let mut eps = unet_into(&mut net, spec, x, t, ctx, added);
        net.node_prefix = "step.".into();
        net.weight_prefix = String::new();
        if guidance {
            let shape = vec![batch, 4, lat, lat];
            let uncond = net.view("noise_pred.uncond", eps, shape.clone());
            let text = net.view("noise_pred.text", eps, shape);
            let d = net.ew("guidance.sub", "sub", &[text, uncond]);
            let d = net.ew("guidance.scale", "mul_scalar", &[d]);
            eps = net.add("guidance.add", uncond, d);
        }
        // EulerDiscreteScheduler.step
        let se = net.ew("scheduler.sigma_eps", "mul_scalar", &[eps]);
        let x0 = net.ew("scheduler.pred_original", "sub", &[latents, se]);
        let d = net.ew("scheduler.derivative_sub", "sub", &[latents, x0]);
        let d = net.ew("scheduler.derivative", "div_scalar", &[d]);
        let d = net.ew("scheduler.dt", "mul_scalar", &[d]);
        latents = net.add("scheduler.prev_sample", latents, d);
    }
    let step_end = net.g.nodes.len();
    net.g.repeats.push(crate::graph::Repeat { nodes: step_start..step_end, times: steps });
    net.node_prefix = "vae.".into();
    net.weight_prefix = "vae.".into();
    let z = net.ew("unscale", "div_scalar", &[latents]);
    let img = vae_decoder_into(&mut net, z);
    let img = net.ew("postprocess.half", "div_scalar", &[img]);
    let img = net.ew("postprocess.shift", "add_scalar", &[img]);
    let img = net.ew("postprocess.clamp", "where", &[img]);
    net.g.outputs = vec![img];
    net.finish()
}

/// Stable Diffusion 1.5 text-to-image at `image` pixels: 50 steps (diffusers' default),
/// guidance on.
pub fn sd15_pipeline(batch: u64, image: u64) -> Result<Graph> {
    diffusion_pipeline(Diffusion::Sd15, batch, image, 50, true)
}

/// SDXL base text-to-image at `image` pixels: 50 steps, guidance on.
pub fn sdxl_pipeline(batch: u64, image: u64) -> Result<Graph> {
    diffusion_pipeline(Diffusion::Sdxl, batch, image, 50, true)
}

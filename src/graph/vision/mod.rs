//! Vision and image-generation models of the model zoo, built from each model's published
//! architecture (layer counts, widths, channels, image sizes) — never from typed-in FLOP or
//! parameter counts. Each builder writes one node per framework op as PyTorch runs the
//! reference implementation eagerly (torchvision, Ultralytics, facebookresearch/detr,
//! lyuwenyu/RT-DETR, diffusers), in inference mode: no dropout nodes, batch norm with its
//! running statistics.
//!
//! Every builder takes a batch size and an image size in pixels and returns
//! `Error::Usage` for a batch of 0 or a size the architecture cannot take.
//! [`models`] lists them with their published parameter counts; `tests/vision_models.rs`
//! checks each graph's `params()` against that figure.

mod detr;
mod diffusion;
mod net;
mod resnet;
mod yolo;

pub use detr::{detr_r50, detr_r50_hw, rt_detr_r50};
pub use diffusion::{
    clip_vit_l_text, diffusion_pipeline, openclip_bigg_text, sd15_pipeline, sd15_unet, sd15_vae_decoder, sdxl_pipeline, sdxl_unet, sdxl_vae_decoder,
    Diffusion, TEXT_TOKENS,
};
pub use resnet::resnet50;
pub use yolo::{yolov10m, yolov8, yolov9c};

use super::Graph;
use crate::error::{closest, Error, Result};

/// A model of the vision zoo.
#[derive(Debug, Clone)]
pub struct VisionModel {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub family: &'static str,
    /// The parameter count its authors publish (what `params_source` says).
    pub published_params: u64,
    pub params_source: &'static str,
    /// The image size (pixels, square) it was trained and is usually run at.
    pub default_image: u64,
    pub build: fn(batch: u64, image: u64) -> Result<Graph>,
}

fn yolov8n(b: u64, i: u64) -> Result<Graph> {
    yolov8('n', b, i)
}
fn yolov8s(b: u64, i: u64) -> Result<Graph> {
    yolov8('s', b, i)
}
fn yolov8m(b: u64, i: u64) -> Result<Graph> {
    yolov8('m', b, i)
}
fn yolov8l(b: u64, i: u64) -> Result<Graph> {
    yolov8('l', b, i)
}
fn yolov8x(b: u64, i: u64) -> Result<Graph> {
    yolov8('x', b, i)
}

const ULTRALYTICS_V8: &str = "Ultralytics README / docs.ultralytics.com/models/yolov8 (params at 640)";

/// The vision zoo.
pub fn models() -> Vec<VisionModel> {
    let m = |name, aliases, family, published_params, params_source, default_image, build| VisionModel {
        name,
        aliases,
        family,
        published_params,
        params_source,
        default_image,
        build,
    };
    vec![
        m("resnet50", &["resnet-50", "resnet_50"], "resnet", 25_557_032, "torchvision docs, ResNet50_Weights.IMAGENET1K_V1 (num_params)", 224, resnet50),
        m("yolov8n", &["yolov8-n", "yolov8"], "yolo", 3_200_000, ULTRALYTICS_V8, 640, yolov8n),
        m("yolov8s", &["yolov8-s"], "yolo", 11_200_000, ULTRALYTICS_V8, 640, yolov8s),
        m("yolov8m", &["yolov8-m"], "yolo", 25_900_000, ULTRALYTICS_V8, 640, yolov8m),
        m("yolov8l", &["yolov8-l"], "yolo", 43_700_000, ULTRALYTICS_V8, 640, yolov8l),
        m("yolov8x", &["yolov8-x"], "yolo", 68_200_000, ULTRALYTICS_V8, 640, yolov8x),
        m("yolov9-c", &["yolov9c", "yolov9"], "yolo", 25_300_000, "YOLOv9 paper (Wang et al. 2024) Table 1 / WongKinYiu/yolov9 README", 640, yolov9c),
        m("yolov10-m", &["yolov10m", "yolov10"], "yolo", 15_400_000, "YOLOv10 paper (Wang et al. 2024) Table 1 / THU-MIG/yolov10 README", 640, yolov10m),
        m("detr-r50", &["detr", "detr-resnet-50", "facebook/detr-resnet-50"], "detr", 41_300_000, "facebookresearch/detr README model zoo (DETR R50, 41M; main.py prints 41,302,368 trainable)", 800, detr_r50),
        m("rt-detr-r50", &["rtdetr-r50", "rt-detr", "rtdetr_r50vd"], "rt-detr", 42_000_000, "RT-DETR paper (Zhao et al. 2024) Table 2 / lyuwenyu/RT-DETR README", 640, rt_detr_r50),
        m("sd-1.5-unet", &["sd15-unet", "stable-diffusion-1.5-unet"], "diffusion", 860_000_000, "runwayml/stable-diffusion-v1-5 model card (860M UNet)", 512, sd15_unet),
        m("sd-1.5-vae-decoder", &["sd15-vae-decoder", "sd-vae-decoder"], "diffusion", 49_500_000, "diffusers AutoencoderKL (SD 1.5 vae): decoder 49.5M of the VAE's 83.7M", 512, sd15_vae_decoder),
        m("stable-diffusion-1.5", &["sd15", "sd-1.5", "sd1.5", "stable-diffusion"], "diffusion", 1_032_500_000, "sum of the components: UNet 860M + CLIP ViT-L/14 text 123M (model card) + VAE decoder 49.5M", 512, sd15_pipeline),
        m("sdxl-unet", &["sd-xl-unet", "stable-diffusion-xl-unet"], "diffusion", 2_567_000_000, "SDXL paper (Podell et al. 2023) Table 1: 2.6B UNet; 2.567B as diffusers counts stable-diffusion-xl-base-1.0/unet", 1024, sdxl_unet),
        m("sdxl-vae-decoder", &["sd-xl-vae-decoder"], "diffusion", 49_500_000, "diffusers AutoencoderKL (SDXL vae: the SD 1.5 architecture, retrained): decoder 49.5M", 1024, sdxl_vae_decoder),
        m("stable-diffusion-xl", &["sdxl", "sd-xl", "stable-diffusion-xl-base-1.0"], "diffusion", 3_433_500_000, "sum of the components: UNet 2.567B + text encoders 817M (SDXL paper: CLIP ViT-L 123M + OpenCLIP ViT-bigG 694M) + VAE decoder 49.5M (Stability's 3.5B also counts the VAE encoder)", 1024, sdxl_pipeline),
    ]
}

/// Looks a model up by name or alias (case-insensitive), with "did you mean" on a miss.
pub fn find(name: &str) -> Result<VisionModel> {
    let all = models();
    let lower = name.to_lowercase();
    if let Some(m) = all.iter().find(|m| m.name == lower || m.aliases.contains(&lower.as_str())) {
        return Ok(m.clone());
    }
    let names = all.iter().flat_map(|m| std::iter::once(m.name).chain(m.aliases.iter().copied()));
    let s = closest(name, names);
    let hint = if s.is_empty() { String::new() } else { format!(" (did you mean: {}?)", s.join(", ")) };
    Err(Error::Usage(format!("unknown vision model '{name}'{hint}")))
}

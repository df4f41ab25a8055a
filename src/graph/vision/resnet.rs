//! ResNet-50 (torchvision `resnet50`, the v1.5 bottleneck with the stride on the 3×3
//! convolution) and the backbones the detection transformers use: the same network with
//! frozen batch norm (DETR) and ResNet-50-vd (RT-DETR's `PResNet`: three-convolution
//! stem, average-pool shortcut).

use super::net::{check_input, Net};
use crate::error::Result;
use crate::graph::{Graph, TensorId};

/// Bottleneck blocks per stage and their widths (the output is 4× the width).
const BLOCKS: [u64; 4] = [3, 4, 6, 3];
const WIDTHS: [u64; 4] = [64, 128, 256, 512];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NormKind {
    /// `nn.BatchNorm2d`: an affine scale and shift per channel (parameters).
    Batch,
    /// `FrozenBatchNorm2d`: the same as buffers, run as explicit elementwise kernels.
    Frozen,
}

fn norm(net: &mut Net, name: &str, x: TensorId, kind: NormKind) -> TensorId {
    match kind {
        NormKind::Batch => net.bn(name, x),
        NormKind::Frozen => net.frozen_bn(name, x),
    }
}

/// torchvision's ResNet body up to `layer4`; returns the outputs of the four stages
/// (strides 4, 8, 16, 32; 256, 512, 1024, 2048 channels).
pub(crate) fn torchvision_body(net: &mut Net, p: &str, x: TensorId, kind: NormKind) -> [TensorId; 4] {
    let x = net.conv(&format!("{p}conv1"), x, 64, 7, 2, 3, 1, false);
    let x = norm(net, &format!("{p}bn1"), x, kind);
    let x = net.relu(&format!("{p}relu"), x);
    let mut x = net.pool(&format!("{p}maxpool"), x, 3, 2, 1, false);
    let mut outs = [0; 4];
    for (stage, (&blocks, &width)) in BLOCKS.iter().zip(&WIDTHS).enumerate() {
        for i in 0..blocks {
            let b = format!("{p}layer{}.{i}", stage + 1);
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let identity = x;
            let y = net.conv(&format!("{b}.conv1"), x, width, 1, 1, 0, 1, false);
            let y = norm(net, &format!("{b}.bn1"), y, kind);
            let y = net.relu(&format!("{b}.relu1"), y);
            let y = net.conv(&format!("{b}.conv2"), y, width, 3, stride, 1, 1, false);
            let y = norm(net, &format!("{b}.bn2"), y, kind);
            let y = net.relu(&format!("{b}.relu2"), y);
            let y = net.conv(&format!("{b}.conv3"), y, 4 * width, 1, 1, 0, 1, false);
            let y = norm(net, &format!("{b}.bn3"), y, kind);
            let identity = if i == 0 {
                let d = net.conv(&format!("{b}.downsample.0"), identity, 4 * width, 1, stride, 0, 1, false);
                norm(net, &format!("{b}.downsample.1"), d, kind)
            } else {
                identity
            };
            let y = net.add(&format!("{b}.add"), y, identity);
            x = net.relu(&format!("{b}.relu3"), y);
        }
        outs[stage] = x;
    }
    outs
}

/// RT-DETR's `PResNet` depth 50, variant d, frozen norm: stem of three 3×3 convolutions,
/// stride on the 3×3 of each bottleneck, and a 2×2 average pool before the 1×1 shortcut
/// convolution where a block downsamples. Returns the four stage outputs.
pub(crate) fn resnet_vd_body(net: &mut Net, p: &str, x: TensorId) -> [TensorId; 4] {
    let conv_norm = |net: &mut Net, name: &str, x: TensorId, k: u64, r: u64, stride: u64, act: bool| {
        let y = net.conv(&format!("{name}.conv"), x, k, r, stride, (r - 1) / 2, 1, false);
        let y = net.frozen_bn(&format!("{name}.norm"), y);
        if act {
            net.relu(&format!("{name}.act"), y)
        } else {
            y
        }
    };
    let x = conv_norm(net, &format!("{p}conv1.conv1_1"), x, 32, 3, 2, true);
    let x = conv_norm(net, &format!("{p}conv1.conv1_2"), x, 32, 3, 1, true);
    let x = conv_norm(net, &format!("{p}conv1.conv1_3"), x, 64, 3, 1, true);
    let mut x = net.pool(&format!("{p}max_pool"), x, 3, 2, 1, false);
    let mut outs = [0; 4];
    for (stage, (&blocks, &width)) in BLOCKS.iter().zip(&WIDTHS).enumerate() {
        for i in 0..blocks {
            let b = format!("{p}res_layers.{stage}.blocks.{i}");
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let y = conv_norm(net, &format!("{b}.branch2a"), x, width, 1, 1, true);
            let y = conv_norm(net, &format!("{b}.branch2b"), y, width, 3, stride, true);
            let y = conv_norm(net, &format!("{b}.branch2c"), y, 4 * width, 1, 1, false);
            let short = if i > 0 {
                x
            } else if stride == 2 {
                let s = net.pool(&format!("{b}.short.pool"), x, 2, 2, 0, true);
                conv_norm(net, &format!("{b}.short.conv"), s, 4 * width, 1, 1, false)
            } else {
                conv_norm(net, &format!("{b}.short"), x, 4 * width, 1, 1, false)
            };
            let y = net.add(&format!("{b}.add"), y, short);
            x = net.relu(&format!("{b}.act"), y);
        }
        outs[stage] = x;
    }
    outs
}

/// torchvision `resnet50` (ImageNet classifier, 1000 classes) on `image`×`image` RGB.
/// Any size from 32 up (the network's stride; the global pool takes whatever is left).
pub fn resnet50(batch: u64, image: u64) -> Result<Graph> {
    check_input("resnet50", batch, image, 1, 32)?;
    let mut net = Net::new("resnet50", "resnet");
    let x = net.input("pixel_values", vec![batch, 3, image, image], false);
    let [_, _, _, x] = torchvision_body(&mut net, "", x, NormKind::Batch);
    let x = net.global_pool("avgpool", x);
    let x = net.view("flatten", x, vec![batch, 2048]);
    let logits = net.linear("fc", x, 1000, true);
    net.g.outputs.push(logits);
    net.finish()
}

//! Ultralytics YOLO detectors (v8, v9, v10) from their model YAMLs, as the Ultralytics
//! modules run them eagerly: every `Conv` is `nn.Conv2d` (no bias) → `BatchNorm2d` →
//! SiLU, and node names follow the module paths (`model.4.m.1.cv2.conv`).
//!
//! The graphs are the unfused modules (`YOLO("yolov8n.pt").model`); Ultralytics'
//! `predict()` fuses each batch norm into its convolution first, which removes the
//! batch-norm kernels and their 2·C parameters each (0.17 % of YOLOv8n's 3,157,200).

use super::net::{check_input, Net};
use crate::error::Result;
use crate::graph::{Graph, TensorId};

const CLASSES: u64 = 80;
const REG_MAX: u64 = 16;

/// Ultralytics `make_divisible(x, 8)`.
fn make_div8(x: f64) -> u64 {
    (x / 8.0).ceil() as u64 * 8
}

struct Yolo {
    net: Net,
    batch: u64,
}

impl Yolo {
    fn ch(&self, x: TensorId) -> u64 {
        self.net.g.shape(x)[1]
    }

    /// Ultralytics `Conv(c1, c2, k, s, g, act)`: conv (padding k/2, no bias), BN, SiLU.
    #[allow(clippy::too_many_arguments)]
    fn conv(&mut self, p: &str, x: TensorId, c2: u64, k: u64, s: u64, g: u64, act: bool) -> TensorId {
        let y = self.net.conv(&format!("{p}.conv"), x, c2, k, s, k / 2, g, false);
        let y = self.net.bn(&format!("{p}.bn"), y);
        if act {
            self.net.silu(&format!("{p}.act"), y)
        } else {
            y
        }
    }

    /// A channel split or chunk (a view).
    fn split(&mut self, p: &str, x: TensorId, c: u64) -> TensorId {
        let mut s = self.net.shape(x);
        s[1] = c;
        self.net.view(p, x, s)
    }

    /// `Bottleneck(c, c, shortcut, k=(3, 3), e=1.0)`.
    fn bottleneck(&mut self, p: &str, x: TensorId, shortcut: bool) -> TensorId {
        let c = self.ch(x);
        let y = self.conv(&format!("{p}.cv1"), x, c, 3, 1, 1, true);
        let y = self.conv(&format!("{p}.cv2"), y, c, 3, 1, 1, true);
        if shortcut {
            self.net.add(&format!("{p}.add"), x, y)
        } else {
            y
        }
    }

    /// `C2f(c1, c2, n, shortcut)`: 1×1 to 2c, chunk, `n` bottlenecks on the last chunk,
    /// concat everything, 1×1 to c2. `cib` swaps the bottlenecks for YOLOv10's CIB.
    fn c2f(&mut self, p: &str, x: TensorId, c2: u64, n: u64, shortcut: bool, cib: bool) -> TensorId {
        let c = c2 / 2;
        let y = self.conv(&format!("{p}.cv1"), x, 2 * c, 1, 1, 1, true);
        let mut ys = vec![self.split(&format!("{p}.chunk0"), y, c), self.split(&format!("{p}.chunk1"), y, c)];
        for i in 0..n {
            let last = *ys.last().unwrap();
            let m = if cib { self.cib(&format!("{p}.m.{i}"), last, shortcut) } else { self.bottleneck(&format!("{p}.m.{i}"), last, shortcut) };
            ys.push(m);
        }
        let cat = self.net.cat(&format!("{p}.cat"), &ys, 1);
        self.conv(&format!("{p}.cv2"), cat, c2, 1, 1, 1, true)
    }

    /// `SPPF(c1, c2, 5)`: 1×1 to c1/2, three chained 5×5 max pools, concat, 1×1.
    fn sppf(&mut self, p: &str, x: TensorId, c2: u64) -> TensorId {
        let c = self.ch(x) / 2;
        let mut ys = vec![self.conv(&format!("{p}.cv1"), x, c, 1, 1, 1, true)];
        for i in 0..3 {
            let last = *ys.last().unwrap();
            ys.push(self.net.pool(&format!("{p}.m.{i}"), last, 5, 1, 2, false));
        }
        let cat = self.net.cat(&format!("{p}.cat"), &ys, 1);
        self.conv(&format!("{p}.cv2"), cat, c2, 1, 1, 1, true)
    }

    fn upsample_cat(&mut self, i: usize, x: TensorId, skip: TensorId) -> TensorId {
        let u = self.net.upsample(&format!("model.{i}"), x, 2);
        self.net.cat(&format!("model.{}", i + 1), &[u, skip], 1)
    }

    // ---- YOLOv9 (GELAN) ----

    /// `RepConv(c1, c2, 3)` as trained: 3×3 conv+BN plus 1×1 conv+BN, summed, SiLU.
    fn repconv(&mut self, p: &str, x: TensorId, c2: u64) -> TensorId {
        let a = self.conv(&format!("{p}.conv1"), x, c2, 3, 1, 1, false);
        let b = self.conv(&format!("{p}.conv2"), x, c2, 1, 1, 1, false);
        let s = self.net.add(&format!("{p}.add"), a, b);
        // `+ id_out` with `id_out = 0` (no identity branch) is still a kernel.
        let s = self.net.ew(&format!("{p}.add_id"), "add_scalar", &[s]);
        self.net.silu(&format!("{p}.act"), s)
    }

    /// `RepCSP(c1, c2, n=1)` (a C3 with `RepBottleneck`s).
    fn rep_csp(&mut self, p: &str, x: TensorId, c2: u64) -> TensorId {
        let c = c2 / 2;
        let a = self.conv(&format!("{p}.cv1"), x, c, 1, 1, 1, true);
        let r = self.repconv(&format!("{p}.m.0.cv1"), a, c);
        let r = self.conv(&format!("{p}.m.0.cv2"), r, c, 3, 1, 1, true);
        let m = self.net.add(&format!("{p}.m.0.add"), a, r);
        let b = self.conv(&format!("{p}.cv2"), x, c, 1, 1, 1, true);
        let cat = self.net.cat(&format!("{p}.cat"), &[m, b], 1);
        self.conv(&format!("{p}.cv3"), cat, c2, 1, 1, 1, true)
    }

    /// `RepNCSPELAN4(c1, c2, c3, c4, 1)`.
    fn elan(&mut self, p: &str, x: TensorId, c2: u64, c3: u64, c4: u64) -> TensorId {
        let y = self.conv(&format!("{p}.cv1"), x, c3, 1, 1, 1, true);
        let y0 = self.split(&format!("{p}.chunk0"), y, c3 / 2);
        let y1 = self.split(&format!("{p}.chunk1"), y, c3 / 2);
        let y2 = self.rep_csp(&format!("{p}.cv2.0"), y1, c4);
        let y2 = self.conv(&format!("{p}.cv2.1"), y2, c4, 3, 1, 1, true);
        let y3 = self.rep_csp(&format!("{p}.cv3.0"), y2, c4);
        let y3 = self.conv(&format!("{p}.cv3.1"), y3, c4, 3, 1, 1, true);
        let cat = self.net.cat(&format!("{p}.cat"), &[y0, y1, y2, y3], 1);
        self.conv(&format!("{p}.cv4"), cat, c2, 1, 1, 1, true)
    }

    /// `ADown(c1, c2)`: 2×2 average pool (stride 1), then half the channels through a
    /// strided 3×3 conv and half through a 3×3 max pool and a 1×1 conv.
    fn adown(&mut self, p: &str, x: TensorId, c2: u64) -> TensorId {
        let half = self.ch(x) / 2;
        let x = self.net.pool(&format!("{p}.avg_pool"), x, 2, 1, 0, false);
        let x1 = self.split(&format!("{p}.chunk0"), x, half);
        let x2 = self.split(&format!("{p}.chunk1"), x, half);
        let x1 = self.conv(&format!("{p}.cv1"), x1, c2 / 2, 3, 2, 1, true);
        let x2 = self.net.pool(&format!("{p}.max_pool"), x2, 3, 2, 1, false);
        let x2 = self.conv(&format!("{p}.cv2"), x2, c2 / 2, 1, 1, 1, true);
        self.net.cat(&format!("{p}.cat"), &[x1, x2], 1)
    }

    /// `SPPELAN(c1, c2, c3)`.
    fn sppelan(&mut self, p: &str, x: TensorId, c2: u64, c3: u64) -> TensorId {
        let mut ys = vec![self.conv(&format!("{p}.cv1"), x, c3, 1, 1, 1, true)];
        for i in 2..5 {
            let last = *ys.last().unwrap();
            ys.push(self.net.pool(&format!("{p}.cv{i}"), last, 5, 1, 2, false));
        }
        let cat = self.net.cat(&format!("{p}.cat"), &ys, 1);
        self.conv(&format!("{p}.cv5"), cat, c2, 1, 1, 1, true)
    }

    // ---- YOLOv10 ----

    /// `SCDown(c1, c2, k, s)`: pointwise then strided depthwise conv.
    fn scdown(&mut self, p: &str, x: TensorId, c2: u64) -> TensorId {
        let y = self.conv(&format!("{p}.cv1"), x, c2, 1, 1, 1, true);
        self.conv(&format!("{p}.cv2"), y, c2, 3, 2, c2, false)
    }

    /// `CIB(c, c, shortcut, e=1.0, lk=False)`: dw 3×3, pw to 2c, dw 3×3, pw to c, dw 3×3.
    fn cib(&mut self, p: &str, x: TensorId, shortcut: bool) -> TensorId {
        let c = self.ch(x);
        let y = self.conv(&format!("{p}.cv1.0"), x, c, 3, 1, c, true);
        let y = self.conv(&format!("{p}.cv1.1"), y, 2 * c, 1, 1, 1, true);
        let y = self.conv(&format!("{p}.cv1.2"), y, 2 * c, 3, 1, 2 * c, true);
        let y = self.conv(&format!("{p}.cv1.3"), y, c, 1, 1, 1, true);
        let y = self.conv(&format!("{p}.cv1.4"), y, c, 3, 1, c, true);
        if shortcut {
            self.net.add(&format!("{p}.add"), x, y)
        } else {
            y
        }
    }

    /// `PSA(c, c)`: split, multi-head self-attention over the map (key dim half the head
    /// dim, plus a depthwise positional conv on v) and a conv FFN on one half, concat, 1×1.
    fn psa(&mut self, p: &str, x: TensorId) -> TensorId {
        let s = self.net.shape(x);
        let (b, c1, h, w) = (s[0], s[1], s[2], s[3]);
        let c = c1 / 2;
        let y = self.conv(&format!("{p}.cv1"), x, 2 * c, 1, 1, 1, true);
        let a = self.split(&format!("{p}.split0"), y, c);
        let bb = self.split(&format!("{p}.split1"), y, c);
        // Attention(c, attn_ratio=0.5, num_heads=c // 64)
        let heads = c / 64;
        let head_dim = c / heads;
        let key_dim = head_dim / 2;
        let n = h * w;
        let qkv = self.conv(&format!("{p}.attn.qkv"), bb, c + 2 * heads * key_dim, 1, 1, 1, false);
        let q = self.net.view(&format!("{p}.attn.q"), qkv, vec![b, heads, key_dim, n]);
        let k = self.net.view(&format!("{p}.attn.k"), qkv, vec![b, heads, key_dim, n]);
        let v = self.net.view(&format!("{p}.attn.v"), qkv, vec![b, heads, head_dim, n]);
        let scores = self.net.bmm(&format!("{p}.attn.qk"), q, k, b * heads, n, n, key_dim, vec![b, heads, n, n]);
        let scores = self.net.ew(&format!("{p}.attn.scale"), "mul_scalar", &[scores]);
        let probs = self.net.softmax(&format!("{p}.attn.softmax"), scores);
        let o = self.net.bmm(&format!("{p}.attn.av"), v, probs, b * heads, head_dim, n, n, vec![b, c, h, w]);
        let v_map = self.net.copy(&format!("{p}.attn.v_reshape"), &[v], vec![b, c, h, w]);
        let pe = self.conv(&format!("{p}.attn.pe"), v_map, c, 3, 1, c, false);
        let o = self.net.add(&format!("{p}.attn.add_pe"), o, pe);
        let o = self.conv(&format!("{p}.attn.proj"), o, c, 1, 1, 1, false);
        let bb = self.net.add(&format!("{p}.add_attn"), bb, o);
        let f = self.conv(&format!("{p}.ffn.0"), bb, 2 * c, 1, 1, 1, true);
        let f = self.conv(&format!("{p}.ffn.1"), f, c, 1, 1, 1, false);
        let bb = self.net.add(&format!("{p}.add_ffn"), bb, f);
        let cat = self.net.cat(&format!("{p}.cat"), &[a, bb], 1);
        self.conv(&format!("{p}.cv2"), cat, c1, 1, 1, 1, true)
    }

    // ---- heads ----

    /// `Detect` (v8, v9) or the one-to-one branch of `v10Detect` over three levels, then
    /// the eager inference decode: concat, DFL (softmax over 16 bins, 1×1 conv), distance
    /// to box against the cached anchors, stride scaling, class sigmoid.
    fn detect(&mut self, p: &str, feats: &[TensorId], v10: bool) -> TensorId {
        let ch0 = self.ch(feats[0]);
        let c2 = 16.max(ch0 / 4).max(REG_MAX * 4);
        let c3 = ch0.max(CLASSES.min(100));
        let (reg, cls) = if v10 { ("one2one_cv2", "one2one_cv3") } else { ("cv2", "cv3") };
        let b = self.batch;
        let mut levels = Vec::new();
        let mut anchors = 0;
        for (i, &x) in feats.iter().enumerate() {
            let r = self.conv(&format!("{p}.{reg}.{i}.0"), x, c2, 3, 1, 1, true);
            let r = self.conv(&format!("{p}.{reg}.{i}.1"), r, c2, 3, 1, 1, true);
            let r = self.net.conv(&format!("{p}.{reg}.{i}.2"), r, 4 * REG_MAX, 1, 1, 0, 1, true);
            let c = if v10 {
                let cx = self.ch(x);
                let y = self.conv(&format!("{p}.{cls}.{i}.0.0"), x, cx, 3, 1, cx, true);
                let y = self.conv(&format!("{p}.{cls}.{i}.0.1"), y, c3, 1, 1, 1, true);
                let y = self.conv(&format!("{p}.{cls}.{i}.1.0"), y, c3, 3, 1, c3, true);
                self.conv(&format!("{p}.{cls}.{i}.1.1"), y, c3, 1, 1, 1, true)
            } else {
                let y = self.conv(&format!("{p}.{cls}.{i}.0"), x, c3, 3, 1, 1, true);
                self.conv(&format!("{p}.{cls}.{i}.1"), y, c3, 3, 1, 1, true)
            };
            let c = self.net.conv(&format!("{p}.{cls}.{i}.2"), c, CLASSES, 1, 1, 0, 1, true);
            let s = self.net.shape(x);
            anchors += s[2] * s[3];
            levels.push(self.net.cat(&format!("{p}.cat.{i}"), &[r, c], 1));
        }
        let no = 4 * REG_MAX + CLASSES;
        let x_cat = self.net.copy(&format!("{p}.x_cat"), &levels, vec![b, no, anchors]);
        let boxes = self.net.view(&format!("{p}.split_box"), x_cat, vec![b, 4 * REG_MAX, anchors]);
        let cls = self.net.view(&format!("{p}.split_cls"), x_cat, vec![b, CLASSES, anchors]);
        // DFL: view(b, 4, 16, a).transpose(2, 1).softmax(1) → 1×1 conv 16 → 1.
        let t = self.net.view(&format!("{p}.dfl.transpose"), boxes, vec![b, REG_MAX, 4, anchors]);
        let sm = self.net.node(
            &format!("{p}.dfl.softmax"),
            crate::graph::GraphOp::Softmax { rows: b * 4 * anchors, cols: REG_MAX },
            &[t],
            vec![b, REG_MAX, 4, anchors],
        );
        let d = self.net.conv(&format!("{p}.dfl.conv"), sm, 1, 1, 1, 0, 1, false);
        let d = self.net.view(&format!("{p}.dfl.view"), d, vec![b, 4, anchors]);
        // dist2bbox(xywh=True)
        let lt = self.net.view(&format!("{p}.decode.lt"), d, vec![b, 2, anchors]);
        let rb = self.net.view(&format!("{p}.decode.rb"), d, vec![b, 2, anchors]);
        let x1y1 = self.net.ew_const(&format!("{p}.decode.x1y1"), "sub", lt, 2);
        let x2y2 = self.net.ew_const(&format!("{p}.decode.x2y2"), "add", rb, 2);
        let sum = self.net.add(&format!("{p}.decode.sum"), x1y1, x2y2);
        let cxy = self.net.ew(&format!("{p}.decode.center"), "div_scalar", &[sum]);
        let wh = self.net.ew(&format!("{p}.decode.wh"), "sub", &[x2y2, x1y1]);
        let dbox = self.net.cat(&format!("{p}.decode.cat"), &[cxy, wh], 1);
        let dbox = self.net.ew_const(&format!("{p}.decode.strides"), "mul", dbox, 2);
        let prob = self.net.ew(&format!("{p}.cls_sigmoid"), "sigmoid", &[cls]);
        let y = self.net.cat(&format!("{p}.out"), &[dbox, prob], 1);
        if !v10 {
            return y;
        }
        // v10Detect.postprocess: top-k anchors by best class score, gather, top-k over
        // (anchor, class) pairs, gather boxes: [b, max_det, 6] (no NMS).
        let max_det = 300.min(anchors);
        let yt = self.net.view(&format!("{p}.post.permute"), y, vec![b, anchors, no - 4 * REG_MAX + 4]);
        let best = self.net.reduce(&format!("{p}.post.amax"), yt, vec![b, anchors]);
        let idx = self.net.reduce(&format!("{p}.post.topk"), best, vec![b, max_det]);
        let boxes = self.net.copy(&format!("{p}.post.gather_boxes"), &[yt, idx], vec![b, max_det, 4]);
        let scores = self.net.copy(&format!("{p}.post.gather_scores"), &[yt, idx], vec![b, max_det, CLASSES]);
        let top = self.net.reduce(&format!("{p}.post.topk_pairs"), scores, vec![b, max_det]);
        let boxes = self.net.copy(&format!("{p}.post.gather_final"), &[boxes, top], vec![b, max_det, 4]);
        let score = self.net.view(&format!("{p}.post.score"), top, vec![b, max_det, 1]);
        let label = self.net.ew(&format!("{p}.post.label"), "div_scalar", &[score]);
        self.net.cat(&format!("{p}.post.cat"), &[boxes, score, label], 2)
    }
}

fn start(name: &str, batch: u64, image: u64) -> Result<(Yolo, TensorId)> {
    check_input(name, batch, image, 32, 32)?;
    let mut net = Net::new(name, "yolo");
    let x = net.input("images", vec![batch, 3, image, image], false);
    Ok((Yolo { net, batch }, x))
}

fn finish(mut y: Yolo, out: TensorId) -> Result<Graph> {
    y.net.g.outputs.push(out);
    y.net.finish()
}

/// The YOLOv8 scales of `yolov8.yaml`: (depth, width, max channels).
fn v8_scale(size: char) -> (f64, f64, f64) {
    match size {
        'n' => (0.33, 0.25, 1024.0),
        's' => (0.33, 0.50, 1024.0),
        'm' => (0.67, 0.75, 768.0),
        'l' => (1.00, 1.00, 512.0),
        _ => (1.00, 1.25, 512.0),
    }
}

/// Ultralytics YOLOv8 detection (`yolov8{size}.yaml`, 80 classes) on `image`×`image`
/// (a multiple of 32; 640 as released): C2f backbone, SPPF, PAN neck, decoupled head.
pub fn yolov8(size: char, batch: u64, image: u64) -> Result<Graph> {
    let name = format!("yolov8{size}");
    let (depth, width, max_ch) = v8_scale(size);
    let ch = |c: u64| make_div8((c as f64).min(max_ch) * width);
    let rep = |n: u64| ((n as f64 * depth).round() as u64).max(1);
    let (mut y, x) = start(&name, batch, image)?;
    let x = y.conv("model.0", x, ch(64), 3, 2, 1, true);
    let x = y.conv("model.1", x, ch(128), 3, 2, 1, true);
    let x = y.c2f("model.2", x, ch(128), rep(3), true, false);
    let x = y.conv("model.3", x, ch(256), 3, 2, 1, true);
    let p3 = y.c2f("model.4", x, ch(256), rep(6), true, false);
    let x = y.conv("model.5", p3, ch(512), 3, 2, 1, true);
    let p4 = y.c2f("model.6", x, ch(512), rep(6), true, false);
    let x = y.conv("model.7", p4, ch(1024), 3, 2, 1, true);
    let x = y.c2f("model.8", x, ch(1024), rep(3), true, false);
    let p5 = y.sppf("model.9", x, ch(1024));
    let x = y.upsample_cat(10, p5, p4);
    let h4 = y.c2f("model.12", x, ch(512), rep(3), false, false);
    let x = y.upsample_cat(13, h4, p3);
    let o3 = y.c2f("model.15", x, ch(256), rep(3), false, false);
    let x = y.conv("model.16", o3, ch(256), 3, 2, 1, true);
    let x = y.net.cat("model.17", &[x, h4], 1);
    let o4 = y.c2f("model.18", x, ch(512), rep(3), false, false);
    let x = y.conv("model.19", o4, ch(512), 3, 2, 1, true);
    let x = y.net.cat("model.20", &[x, p5], 1);
    let o5 = y.c2f("model.21", x, ch(1024), rep(3), false, false);
    let out = y.detect("model.22", &[o3, o4, o5], false);
    finish(y, out)
}

/// YOLOv9-C as Ultralytics ships it (`yolov9c.yaml`: GELAN-C, the inference network
/// without the auxiliary reversible branch): RepNCSPELAN4 blocks, ADown, SPPELAN and the
/// v8 `Detect` head.
pub fn yolov9c(batch: u64, image: u64) -> Result<Graph> {
    let (mut y, x) = start("yolov9-c", batch, image)?;
    let x = y.conv("model.0", x, 64, 3, 2, 1, true);
    let x = y.conv("model.1", x, 128, 3, 2, 1, true);
    let x = y.elan("model.2", x, 256, 128, 64);
    let x = y.adown("model.3", x, 256);
    let p3 = y.elan("model.4", x, 512, 256, 128);
    let x = y.adown("model.5", p3, 512);
    let p4 = y.elan("model.6", x, 512, 512, 256);
    let x = y.adown("model.7", p4, 512);
    let x = y.elan("model.8", x, 512, 512, 256);
    let p5 = y.sppelan("model.9", x, 512, 256);
    let x = y.upsample_cat(10, p5, p4);
    let h4 = y.elan("model.12", x, 512, 512, 256);
    let x = y.upsample_cat(13, h4, p3);
    let o3 = y.elan("model.15", x, 256, 256, 128);
    let x = y.adown("model.16", o3, 256);
    let x = y.net.cat("model.17", &[x, h4], 1);
    let o4 = y.elan("model.18", x, 512, 512, 256);
    let x = y.adown("model.19", o4, 512);
    let x = y.net.cat("model.20", &[x, p5], 1);
    let o5 = y.elan("model.21", x, 512, 512, 256);
    let out = y.detect("model.22", &[o3, o4, o5], false);
    finish(y, out)
}

/// YOLOv10-M (`yolov10m.yaml`, scale 0.67/0.75/768) for inference: SCDown, C2fCIB, PSA,
/// and only the one-to-one (NMS-free) head, as in the published parameter count and
/// after Ultralytics' `fuse()` drops the one-to-many training head.
pub fn yolov10m(batch: u64, image: u64) -> Result<Graph> {
    let (depth, width, max_ch) = (0.67, 0.75, 768.0);
    let ch = |c: u64| make_div8((c as f64).min(max_ch) * width);
    let rep = |n: u64| ((n as f64 * depth).round() as u64).max(1);
    let (mut y, x) = start("yolov10-m", batch, image)?;
    let x = y.conv("model.0", x, ch(64), 3, 2, 1, true);
    let x = y.conv("model.1", x, ch(128), 3, 2, 1, true);
    let x = y.c2f("model.2", x, ch(128), rep(3), true, false);
    let x = y.conv("model.3", x, ch(256), 3, 2, 1, true);
    let p3 = y.c2f("model.4", x, ch(256), rep(6), true, false);
    let x = y.scdown("model.5", p3, ch(512));
    let p4 = y.c2f("model.6", x, ch(512), rep(6), true, false);
    let x = y.scdown("model.7", p4, ch(1024));
    let x = y.c2f("model.8", x, ch(1024), rep(3), true, true);
    let x = y.sppf("model.9", x, ch(1024));
    let p5 = y.psa("model.10", x);
    let x = y.upsample_cat(11, p5, p4);
    let h4 = y.c2f("model.13", x, ch(512), rep(3), false, false);
    let x = y.upsample_cat(14, h4, p3);
    let o3 = y.c2f("model.16", x, ch(256), rep(3), false, false);
    let x = y.conv("model.17", o3, ch(256), 3, 2, 1, true);
    let x = y.net.cat("model.18", &[x, h4], 1);
    let o4 = y.c2f("model.19", x, ch(512), rep(3), true, true);
    let x = y.scdown("model.20", o4, ch(512));
    let x = y.net.cat("model.21", &[x, p5], 1);
    let o5 = y.c2f("model.22", x, ch(1024), rep(3), true, true);
    let out = y.detect("model.23", &[o3, o4, o5], true);
    finish(y, out)
}

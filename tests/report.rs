//! Reports people look at: Markdown tables, SVG plots and the self-contained HTML page,
//! which headless Chromium must load and render.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

fn stdout(args: &[&str]) -> String {
    let out = cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn markdown_tables_have_a_header_rule_and_right_aligned_numbers() {
    let out = stdout(&["list-gpus", "--format", "markdown"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("| key | name |"), "{}", lines[0]);
    assert!(lines[1].starts_with("| --- | --- |") && lines[1].contains("---:"), "{}", lines[1]);
    let cols = lines[0].matches(" | ").count();
    for l in lines.iter().take_while(|l| l.starts_with('|')) {
        assert_eq!(l.replace("\\|", "").matches(" | ").count(), cols, "{l}");
    }
    let out = stdout(&["compare-models", "--models", "gpt2", "--gpus", "t4,a100", "--batch-sizes", "1,4", "--include-cost", "--format", "markdown"]);
    assert!(out.contains("| model | gpu | batch |"), "{out}");
    assert!(out.contains("price_date"), "{out}");
    assert!(out.contains("Prices: the cheapest current"), "{out}");
}

fn compare_report(dir: &Path) -> (PathBuf, PathBuf) {
    let svg = dir.join("report.svg");
    let html = dir.join("report.html");
    let out = cmd()
        .args(["compare-models", "--models", "llama2-7b,resnet50", "--gpus", "a100,h100,l4,4090,t4", "--batch-sizes", "1,4,16,64", "--plot"])
        .arg(&svg)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (svg, html)
}

#[test]
fn plot_is_an_svg_with_every_chart_and_no_external_resources() {
    let dir = tempfile::tempdir().unwrap();
    let (svg, _) = compare_report(dir.path());
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.trim_start().starts_with("<svg"), "{}", &s[..100]);
    assert!(s.trim_end().ends_with("</svg>"));
    for title in [
        "llama2-7b: throughput by batch size",
        "llama2-7b: cost per 1M tokens at the cheapest listed price",
        "llama2-7b: where a step",
        "resnet50: throughput by batch size",
        "resnet50: cost per 1k images",
    ] {
        assert!(s.contains(title), "{title} missing");
    }
    // Every GPU is in the legend, and the price's date is beside its cost line.
    for gpu in ["a100-sxm4-80gb", "h100-sxm5-80gb", "l4", "rtx4090", "t4"] {
        assert!(s.contains(gpu), "{gpu}");
    }
    assert!(s.contains("/GPU-h, 20"), "the price and its date label each cost line");
    // The kernel kinds of the breakdown.
    for kind in ["gemm", "attention", "conv", "idle (host or dependency wait)"] {
        assert!(s.contains(&format!(">\n{kind}\n<")) || s.contains(&format!(">{kind}<")), "{kind}");
    }
    assert!(!s.contains("<image") && !s.contains("href="), "no external resources");
}

#[test]
fn html_report_is_self_contained() {
    let dir = tempfile::tempdir().unwrap();
    let (_, html) = compare_report(dir.path());
    let s = std::fs::read_to_string(&html).unwrap();
    assert!(s.starts_with("<!DOCTYPE html>"));
    assert!(s.matches("<svg").count() >= 6, "three charts per model");
    assert!(s.matches("<table>").count() >= 2, "a table per model");
    for bad in ["<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import"] {
        assert!(!s.contains(bad), "external or active content: {bad}");
    }
    // The only URL is the SVG namespace, which is a name, not a request.
    let urls = s.matches("http://").count() + s.matches("https://").count();
    assert_eq!(urls, s.matches("xmlns=\"http://www.w3.org/2000/svg\"").count());
    assert!(s.contains("Content-Security-Policy"));
    assert!(s.contains("as of 2026-09") || s.contains("2026-09"), "price dates are shown");
}

/// Headless Chromium, if installed (Debian's `chromium`; `.ci/run` installs it).
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default() {
            let c = dir.join(name);
            if c.is_file() {
                return Some(c);
            }
        }
    }
    None
}

fn chromium_cmd(bin: &Path, profile: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED html_report_renders_in_headless_chromium: no chromium found (apt-get install -y chromium, or set CHROMIUM=/path/to/chromium)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, html) = compare_report(dir.path());
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    // The DOM Chromium built: the page loaded, tables and inline SVG charts included.
    let out = chromium_cmd(&bin, &dir.path().join("profile-dom")).arg("--dump-dom").arg(&url).output().unwrap();
    assert!(out.status.success(), "chromium --dump-dom failed: {}", String::from_utf8_lossy(&out.stderr));
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("<title>PhantomGPU report: compare-models</title>"), "{}", &dom[..dom.len().min(400)]);
    assert!(dom.matches("<svg").count() >= 6 && dom.contains("<table>"));
    // A screenshot: a real PNG of the window's size, far from blank (a blank page of this
    // size is about 12 KB; the report is several hundred).
    let shot = dir.path().join("report.png");
    let out = chromium_cmd(&bin, &dir.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium --screenshot failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(png_size(&png), Some((1280, 2000)));
    assert!(png.len() > 60_000, "screenshot is {} bytes: the page looks empty", png.len());
    if let Some(keep) = std::env::var_os("PHANTOM_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// The text of every `<text>` element, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text").skip(1).filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim().to_string())).collect()
}

/// The numeric attributes of every `<rect>` element.
fn svg_rects(svg: &str) -> Vec<Vec<(String, String)>> {
    svg.split("<rect")
        .skip(1)
        .map(|r| {
            let tag = &r[..r.find('>').unwrap_or(r.len())];
            tag.split_whitespace()
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.trim_end_matches('/').trim_matches('"').to_string()))
                })
                .collect()
        })
        .collect()
}

/// A bar value label as `short` writes it (12, 3.45, 12k, 1.5M).
fn label_value(s: &str) -> Option<f64> {
    let (n, scale) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    n.parse::<f64>().ok().map(|v| v * scale)
}

fn serve_plot(dir: &Path, gpus: &str) -> (std::process::Output, PathBuf) {
    let svg = dir.join("serve.svg");
    let out = cmd()
        .args(["serve-sim", "--model", "llama2-7b", "--gpu", gpus, "--rate", "4", "--prompt-len", "256", "--output-len", "32", "--requests", "50", "--plot"])
        .arg(&svg)
        .output()
        .unwrap();
    (out, svg)
}

#[test]
fn serve_sim_plot_has_percentiles_and_throughput_for_each_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let (out, svg) = serve_plot(dir.path(), "a100,h100");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("plot written to"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ttft_p50_ms"), "the table is still printed");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.trim_start().starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    assert!(!s.contains("<image") && !s.contains("href="), "no external resources");
    let texts = svg_texts(&s);
    let has = |t: &str| texts.iter().any(|x| x == t);
    assert!(has("llama2-7b serving at 4 req/s: 256 prompt (fixed) + 32 output (fixed) tokens, 50 requests, fp16"), "{texts:?}");
    // Percentile groups, panel titles and axis labels with units.
    for m in ["TTFT", "TPOT", "e2e"] {
        for p in ["p50", "p90", "p99"] {
            assert!(has(&format!("{m} {p}")), "{m} {p} missing: {texts:?}");
        }
    }
    for t in ["time to first token", "time per output token", "end-to-end latency", "output throughput", "request throughput", "TTFT, ms", "TPOT, ms", "output tokens/s", "requests/s", "offered 4 req/s"] {
        assert!(has(t), "{t} missing: {texts:?}");
    }
    assert!(has("end-to-end, ms") || has("end-to-end, s"));
    // Each GPU: in the legend and under its throughput bars.
    for gpu in ["a100-sxm4-80gb", "h100-sxm5-80gb"] {
        assert_eq!(texts.iter().filter(|t| *t == gpu).count(), 3, "{gpu}: legend + two throughput panels");
    }
    assert!(!texts.iter().any(|t| t.contains("did not run")));
    // Bars in each GPU's colour: 9 percentiles + 2 throughputs + the legend swatch.
    let rects = svg_rects(&s);
    for colour in ["#1F77B4", "#FF7F0E"] {
        let n = rects.iter().filter(|r| r.iter().any(|(k, v)| k == "fill" && v.eq_ignore_ascii_case(colour))).count();
        assert_eq!(n, 12, "{colour}");
    }
    // Every number in the drawing is finite, bars have a positive height, and the value
    // labels parse.
    assert!(!s.contains("NaN") && !s.contains("inf"), "non-finite value in the SVG");
    for r in &rects {
        for (k, v) in r.iter().filter(|(k, _)| ["x", "y", "width", "height"].contains(&k.as_str())) {
            assert!(v.parse::<f64>().is_ok_and(f64::is_finite), "{k}={v}");
        }
    }
    let values: Vec<f64> = texts.iter().filter_map(|t| label_value(t)).collect();
    assert!(values.len() >= 10, "value labels: {texts:?}");
    assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0));
}

#[test]
fn serve_sim_plot_names_the_gpus_that_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    // llama2-7b in fp16 leaves no room for a KV cache on a 16 GB T4.
    let (out, svg) = serve_plot(dir.path(), "t4,a100");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("warning: did not run: t4 cannot run serving llama2-7b"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a100-sxm4-80gb") && stdout.contains("Did not run: t4 cannot run serving llama2-7b"), "{stdout}");
    let s = std::fs::read_to_string(&svg).unwrap();
    let texts = svg_texts(&s);
    assert!(texts.iter().any(|t| t == "t4 (did not run)"), "{texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("Did not run: t4 cannot run serving llama2-7b")), "{texts:?}");
    assert_eq!(texts.iter().filter(|t| *t == "a100-sxm4-80gb").count(), 3);
    // Nothing ran: the error, and no plot.
    std::fs::remove_file(&svg).unwrap();
    let (out, svg) = serve_plot(dir.path(), "t4");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: t4 cannot run serving llama2-7b"));
    assert!(!svg.exists(), "no empty plot");
}

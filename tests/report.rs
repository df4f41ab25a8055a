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

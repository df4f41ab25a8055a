//! Cloud prices, cost columns, training-run cost and `recommend-gpu`.

use assert_cmd::Command;
use phantom_gpu::cost::{self, prices, PriceBook, Pricing, Unit};
use phantom_gpu::hw::Registry;
use serde_json::Value;
use std::io::Write;

fn cmd() -> Command {
    Command::cargo_bin("phantom-gpu").unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn stdout(args: &[&str]) -> String {
    let out = cmd().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn price_file(body: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(body.as_bytes()).unwrap();
    f
}

const LAMBDA_H100: &str = r#"
[[price]]
provider = "lambda"
instance = "gpu_1x_h100_sxm5"
gpu = "h100"
gpus_per_instance = 1
instance_usd_per_hour = 2.49
region = "us-tx-3"
as_of = "2026-11-01"
source = "TEST"

[source.TEST]
cite = "made up for a test"
"#;

// ---------------------------------------------------------------------------------------
// The price data
// ---------------------------------------------------------------------------------------

#[test]
fn every_builtin_price_has_gpu_count_price_region_date_and_a_cited_source() {
    let reg = Registry::builtin().unwrap();
    let book = PriceBook::builtin(&reg).unwrap();
    assert!(book.prices.len() >= 30, "{} rows", book.prices.len());
    assert!(book.warnings.is_empty(), "{:?}", book.warnings);
    for p in &book.prices {
        assert!(reg.gpu(&p.gpu).is_ok(), "{}: unknown GPU {}", p.origin, p.gpu);
        assert!(p.gpus >= 1 && p.usd_per_hour > 0.0, "{}", p.origin);
        assert!(!p.region.is_empty() && !p.as_of.is_empty() && !p.provider.is_empty() && !p.instance.is_empty(), "{}", p.origin);
        assert!(p.cite.as_deref().is_some_and(|c| !c.is_empty()), "{}: source {} has no [source] citation", p.origin, p.source);
    }
}

#[test]
fn builtin_prices_match_the_shared_hardware_file_row_for_row() {
    // The shared file is the origin of prices/cloud.toml; when it is beside the checkout,
    // every row of it (but the range-only one) must be here with the same price and date.
    let Ok(text) = std::fs::read_to_string("../shared/hardware/cloud_prices.toml") else {
        eprintln!("skipped: ../shared/hardware/cloud_prices.toml not found");
        return;
    };
    let reg = Registry::builtin().unwrap();
    let (shared, skipped) = prices::parse(&text, "shared", &reg).unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    let ours = PriceBook::builtin(&reg).unwrap();
    assert_eq!(shared.len(), ours.prices.len());
    for (a, b) in shared.iter().zip(&ours.prices) {
        assert_eq!((&a.provider, &a.instance, &a.gpu, a.gpus, &a.as_of, &a.source, &a.region, &a.pricing), (&b.provider, &b.instance, &b.gpu, b.gpus, &b.as_of, &b.source, &b.region, &b.pricing));
        assert_eq!(a.usd_per_hour, b.usd_per_hour, "{}", b.origin);
    }
}

#[test]
fn the_latest_dated_row_of_an_offer_is_current_and_undated_rows_lose() {
    let reg = Registry::builtin().unwrap();
    let book = PriceBook::builtin(&reg).unwrap();
    let p5: Vec<_> = book.current(Pricing::OnDemand).into_iter().filter(|p| p.instance == "p5.48xlarge").collect();
    assert_eq!(p5.len(), 1);
    assert_eq!(p5[0].as_of, "2026-06-17");
    assert_eq!(p5[0].usd_per_hour, 55.04);
    assert_eq!(prices::date_key("2026-09"), Some((2026, 9, 0)));
    assert_eq!(prices::date_key("2026-06-17"), Some((2026, 6, 17)));
    assert_eq!(prices::date_key("undated"), None);
    assert_eq!(prices::date_key("before 2025-01-01 rate update"), None);
    assert!(prices::date_key("2025-03-14") > prices::date_key("undated"));
    // The cheapest per GPU: an 8-GPU instance counts at its price / 8.
    let h100 = book.cheapest_per_gpu("h100-sxm5-80gb", Pricing::OnDemand).unwrap();
    assert!((h100.usd_per_gpu_hour() - 6.88).abs() < 1e-9, "{h100:?}");
}

#[test]
fn user_prices_add_rows_and_replace_the_same_offer() {
    let f = price_file(&format!(
        "{LAMBDA_H100}\n[[price]]\nprovider = \"aws\"\ninstance = \"p5.4xlarge\"\ngpu = \"h100-sxm5-80gb\"\ngpus_per_instance = 1\ninstance_usd_per_hour = 9.99\nregion = \"us-east-1\"\nas_of = \"2020-01-01\"\nsource = \"TEST\"\n"
    ));
    let v = json(&["list-prices", "--gpu", "h100", "--prices", f.path().to_str().unwrap(), "--format", "json"]);
    let rows = v.as_array().unwrap();
    let p5: Vec<&Value> = rows.iter().filter(|r| r["instance"] == "p5.4xlarge").collect();
    assert_eq!(p5.len(), 1, "the user's row replaces the built-in one even though it is older");
    assert_eq!(p5[0]["usd_per_hour"], 9.99);
    let lambda = rows.iter().find(|r| r["provider"] == "lambda").expect("added");
    assert_eq!(lambda["as_of"], "2026-11-01");
    assert!(lambda["source"].as_str().unwrap().contains("made up for a test"));
    assert!(lambda["origin"].as_str().unwrap().ends_with(":2"), "{}", lambda["origin"]);
    // And the cost columns use it: it is the cheapest H100 now.
    let b = json(&["benchmark", "--model", "gpt2", "--gpu", "h100", "--include-cost", "--prices", f.path().to_str().unwrap(), "--format", "json"]);
    assert_eq!(b["cost"]["provider"], "lambda");
    assert_eq!(b["cost"]["price_date"], "2026-11-01");
}

#[test]
fn bad_price_files_are_errors_naming_the_file_and_line() {
    let cases: &[(&str, &str, usize)] = &[
        ("gpu = \"h100\"", "gpu = \"h1000x\"", 5),
        ("instance_usd_per_hour = 2.49", "instance_usd_per_hour = -2", 7),
        ("instance_usd_per_hour = 2.49", "instance_usd_per_hour = \"cheap\"", 7),
        ("region = \"us-tx-3\"\n", "", 2),
        ("gpus_per_instance = 1", "gpus_per_instance = 0", 6),
        ("source = \"TEST\"", "source = \"TEST\"\npricing = \"reserved\"", 11),
        ("source = \"TEST\"", "source = \"TEST\"\ncolour = \"green\"", 11),
        ("as_of = \"2026-11-01\"", "as_of = 2026-11-01 x", 9),
    ];
    for (from, to, line) in cases {
        let body = LAMBDA_H100.replacen(from, to, 1);
        assert_ne!(body, LAMBDA_H100);
        let f = price_file(&body);
        let out = cmd().args(["list-prices", "--prices", f.path().to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{to}: {err}");
        let want = format!("{}:{line}:", f.path().display());
        assert!(err.contains(&want), "{to}: expected '{want}' in: {err}");
    }
    // A range-only row (as in the shared file) is skipped with a warning, not an error.
    let f = price_file(&LAMBDA_H100.replacen("instance_usd_per_hour = 2.49", "instance_usd_per_hour_range = [2.0, 3.0]", 1));
    let out = cmd().args(["list-prices", "--prices", f.path().to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2: skipped lambda gpu_1x_h100_sxm5"));
    // A missing file.
    let out = cmd().args(["list-prices", "--prices", "/nonexistent/prices.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/prices.toml"));
}

// ---------------------------------------------------------------------------------------
// Cost of a run
// ---------------------------------------------------------------------------------------

#[test]
fn cost_per_million_tokens_follows_from_the_price_and_the_token_rate() {
    let v = json(&["benchmark", "--model", "llama2-7b", "--gpu", "l4,h100,4090", "--batch-size", "1", "--seq-len", "512", "--include-cost", "--format", "json"]);
    let list = v.as_array().unwrap();
    for r in list {
        let c = &r["cost"];
        if r["gpu"] == "rtx4090" {
            assert!(c.is_null(), "no listed price for the 4090");
            continue;
        }
        let tokens_per_s = r["throughput_per_s"].as_f64().unwrap() * 512.0;
        assert!((c["work_per_s"].as_f64().unwrap() / tokens_per_s - 1.0).abs() < 1e-9);
        let want = c["usd_per_gpu_hour"].as_f64().unwrap() / 3600.0 / tokens_per_s * 1e6;
        assert!((c["usd_per_block"].as_f64().unwrap() / want - 1.0).abs() < 1e-9);
        assert_eq!(c["block"], "1M tokens");
        assert!(!c["price_date"].as_str().unwrap().is_empty());
        assert!(!c["provider"].as_str().unwrap().is_empty());
    }
}

#[test]
fn vision_models_are_priced_per_thousand_images() {
    let out = stdout(&["benchmark", "--model", "resnet50", "--gpu", "t4,l4", "--batch-size", "32", "--include-cost", "--format", "csv"]);
    let header = out.lines().next().unwrap();
    for col in ["usd_per_gpu_hour", "price_listing", "price_date", "images_per_s", "usd_per_1k_images"] {
        assert!(header.split(',').any(|h| h == col), "{col} missing: {header}");
    }
    // Mixed units in compare-models get generic columns with the unit named.
    let out = stdout(&["compare-models", "--models", "gpt2,resnet50", "--gpus", "l4", "--batch-sizes", "8", "--include-cost", "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let units: Vec<&str> = v.as_array().unwrap().iter().map(|r| r["work"].as_str().unwrap()).collect();
    assert_eq!(units, ["1M tokens", "1k images"]);
    assert!(v.as_array().unwrap().iter().all(|r| r["price_date"].is_string()));
}

#[test]
fn every_table_that_shows_a_price_shows_its_date() {
    for args in [
        vec!["benchmark", "--model", "gpt2", "--gpu", "t4,a100", "--include-cost"],
        vec!["compare-models", "--models", "gpt2", "--gpus", "t4,a100", "--batch-sizes", "1,8", "--include-cost"],
        vec!["list-prices"],
        vec!["recommend-gpu", "--model", "gpt2", "--batch-size", "8"],
    ] {
        let out = stdout(&args);
        let header = out.lines().find(|l| l.contains("gpu")).unwrap();
        assert!(header.contains("price_date") || header.contains("as_of"), "{args:?}: {header}");
    }
}

#[test]
fn training_run_cost_is_tokens_over_rate_times_price() {
    let v = json(&["benchmark", "--model", "gpt2", "--gpu", "a100", "--mode", "training", "--batch-size", "8", "--seq-len", "1024", "--train-tokens", "10B", "--format", "json"]);
    let c = &v["cost"];
    let rate = c["work_per_s"].as_f64().unwrap();
    let hours = 1e10 / rate / 3600.0;
    assert!((c["train_hours"].as_f64().unwrap() / hours - 1.0).abs() < 1e-9);
    assert!((c["train_usd"].as_f64().unwrap() / (hours * c["usd_per_gpu_hour"].as_f64().unwrap()) - 1.0).abs() < 1e-9);
    // Epochs × dataset size (sequences of --seq-len tokens) is the same work.
    let v2 = json(&["benchmark", "--model", "gpt2", "--gpu", "a100", "--mode", "training", "--batch-size", "8", "--seq-len", "1024", "--epochs", "2", "--dataset-size", "5e6", "--format", "json"]);
    let h2 = v2["cost"]["train_hours"].as_f64().unwrap();
    assert!((h2 / (2.0 * 5e6 * 1024.0 / rate / 3600.0) - 1.0).abs() < 1e-9);
    // The formula is printed with the table.
    let out = stdout(&["benchmark", "--model", "gpt2", "--gpu", "a100", "--mode", "training", "--batch-size", "8", "--train-tokens", "10B"]);
    assert!(out.contains("Training run: gpt2: 10B tokens"), "{out}");
    // Inference runs have no training cost; tokens for an image model are refused.
    let bad = cmd().args(["benchmark", "--model", "gpt2", "--gpu", "a100", "--train-tokens", "1B"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mode training"));
    let bad = cmd().args(["benchmark", "--model", "resnet50", "--gpu", "a100", "--mode", "training", "--train-tokens", "1B"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn count_parsing_and_units() {
    assert_eq!(cost::parse_count("300B").unwrap(), 3e11);
    assert_eq!(cost::parse_count("1.5T").unwrap(), 1.5e12);
    assert_eq!(cost::parse_count("2e12").unwrap(), 2e12);
    assert_eq!(cost::parse_count("1.28M").unwrap(), 1.28e6);
    assert!(cost::parse_count("-3").is_err() && cost::parse_count("lots").is_err());
    assert_eq!(cost::si(1.5e12), "1.5T");
    assert_eq!(Unit::Tokens.block_name(), "1M tokens");
    assert_eq!(Unit::Images.block_key(), "1k_images");
}

// ---------------------------------------------------------------------------------------
// recommend-gpu
// ---------------------------------------------------------------------------------------

fn recommend(args: &[&str]) -> Vec<Value> {
    let mut a = vec!["recommend-gpu", "--format", "json", "--top", "100"];
    a.extend_from_slice(args);
    json(&a).as_array().unwrap().clone()
}

/// Memory a configuration needs per GPU, from `benchmark` on one GPU and the split rule.
fn check_fits(list: &[Value], model: &str, extra: &[&str]) {
    for r in list {
        let count = r["gpu_count"].as_f64().unwrap();
        let per_gpu_capacity = r["total_memory_gb"].as_f64().unwrap() / count;
        assert!(r["memory_per_gpu_gb"].as_f64().unwrap() <= per_gpu_capacity, "{r}");
        if r["tensor_parallel"] == 1 {
            // No split: the single-GPU simulation must say it fits.
            let mut a = vec!["benchmark", "--model", model, "--gpu", r["gpu"].as_str().unwrap(), "--format", "json"];
            a.extend_from_slice(extra);
            let b = json(&a);
            assert_eq!(b["fits"], true, "{r} recommended but {b}");
        }
    }
}

#[test]
fn recommend_never_suggests_a_configuration_that_does_not_fit_llama2_70b() {
    let list = recommend(&["--model", "llama2-70b", "--max-latency-ms", "50", "--precision", "fp16"]);
    check_fits(&list, "llama2-70b", &["--precision", "fp16"]);
    for r in &list {
        assert!(r["latency_ms"].as_f64().unwrap() <= 50.0, "{r}");
    }
    // Relaxed enough that something qualifies: still nothing that does not fit, and no
    // 80 GB GPU on its own (fp16 weights alone are 128 GiB).
    let list = recommend(&["--model", "llama2-70b", "--max-latency-ms", "2000", "--precision", "fp16"]);
    assert!(!list.is_empty());
    check_fits(&list, "llama2-70b", &["--precision", "fp16"]);
    for r in &list {
        assert!(!(r["gpu_count"] == 1 && r["total_memory_gb"].as_f64().unwrap() <= 80.0), "{r}");
        assert!(r["latency_ms"].as_f64().unwrap() <= 2000.0, "{r}");
    }
}

#[test]
fn recommend_json_is_a_ranked_list_with_the_contract_fields() {
    let list = recommend(&["--model", "llama2-7b", "--batch-size", "4", "--seq-len", "1024", "--target-throughput", "5000"]);
    assert!(list.len() >= 3);
    for r in &list {
        for f in ["gpu", "gpu_count", "total_memory_gb", "cost_per_hour", "latency_ms", "throughput_per_s", "tokens_per_s", "usd_per_1m_tokens", "price_date", "provider", "instance", "why"] {
            assert!(!r[f].is_null(), "{f} missing in {r}");
        }
        assert!(r["tokens_per_s"].as_f64().unwrap() >= 5000.0, "{r}");
    }
    let costs: Vec<f64> = list.iter().map(|r| r["usd_per_1m_tokens"].as_f64().unwrap()).collect();
    assert!(costs.windows(2).all(|w| w[0] <= w[1]), "best first: {costs:?}");
    assert!(list[0]["why"].as_str().unwrap().starts_with("#1 "));
    check_fits(&list, "llama2-7b", &["--batch-size", "4", "--seq-len", "1024"]);
}

#[test]
fn recommend_with_a_budget_too_small_for_any_gpu_says_so() {
    let out = cmd().args(["recommend-gpu", "--model", "llama2-7b", "--budget", "5", "--per", "month"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("No priced configuration fits and meets budget $5/month"), "{text}");
    assert!(text.contains("raise the budget to at least"), "{text}");
    assert!(text.contains("too expensive"), "{text}");
    assert!(!text.contains("rank "), "no empty table: {text}");
    // JSON stays a list (empty) and the explanation goes to stderr.
    let out = cmd().args(["recommend-gpu", "--model", "llama2-7b", "--budget", "0.01", "--format", "json"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), Value::Array(vec![]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No priced configuration"));
}

#[test]
fn recommend_explains_the_winner_and_the_losers() {
    let text = stdout(&["recommend-gpu", "--model", "llama2-13b", "--batch-size", "8", "--seq-len", "1", "--past", "2048", "--max-latency-ms", "40"]);
    assert!(text.contains("#1 "), "{text}");
    assert!(text.contains("the lowest cost per unit of work"), "{text}");
    assert!(text.contains("out of memory"), "{text}");
    assert!(text.contains("Rule: an N-GPU instance"), "{text}");
    // Within budget and targets, multi-GPU instances appear with their split.
    let list = recommend(&["--model", "llama2-70b", "--precision", "fp16", "--seq-len", "1", "--past", "1024", "--batch-size", "16"]);
    assert!(list.iter().any(|r| r["tensor_parallel"].as_u64().unwrap() > 1), "a split is needed for 70B: {list:?}");
    for r in &list {
        assert_eq!(r["tensor_parallel"].as_u64().unwrap() * r["replicas"].as_u64().unwrap(), r["gpu_count"].as_u64().unwrap());
    }
}

#[test]
fn a_recommended_split_is_what_benchmark_simulates_with_the_same_tp() {
    let list = recommend(&["--model", "llama2-70b", "--precision", "fp16", "--seq-len", "1", "--past", "1024", "--batch-size", "16"]);
    let split = list.iter().find(|r| r["tensor_parallel"].as_u64().unwrap() > 1).expect("a tensor-parallel plan");
    let (t, n) = (split["tensor_parallel"].as_u64().unwrap().to_string(), split["gpu_count"].as_u64().unwrap().to_string());
    let b = json(&[
        "benchmark", "--model", "llama2-70b", "--precision", "fp16", "--seq-len", "1", "--past", "1024", "--batch-size", "16",
        "--gpu", split["gpu"].as_str().unwrap(), "--tp", &t, "--gpus-per-node", &n, "--format", "json",
    ]);
    assert_eq!(b["fits"], true);
    assert!((b["memory_gb"].as_f64().unwrap() - split["memory_per_gpu_gb"].as_f64().unwrap()).abs() < 1e-9, "{b} vs {split}");
    assert!((b["latency_ms"].as_f64().unwrap() - split["latency_ms"].as_f64().unwrap()).abs() < 1e-9, "{b} vs {split}");
    // Its replicas are independent copies: the instance's throughput is theirs added up.
    let replicas = split["replicas"].as_f64().unwrap();
    assert!((split["throughput_per_s"].as_f64().unwrap() / (b["throughput_per_s"].as_f64().unwrap() * replicas) - 1.0).abs() < 1e-9);
    assert!(split["all_reduce_ms"].as_f64().unwrap() > 0.0);
    // recommend-gpu picks the split itself.
    let out = cmd().args(["recommend-gpu", "--model", "gpt2", "--tp", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

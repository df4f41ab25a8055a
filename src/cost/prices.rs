//! Cloud price rows: the built-in `prices/cloud.toml` (embedded at build time) plus the
//! files given with `--prices`. Every row keeps its provider, instance, GPU, GPU count,
//! price, region, date and source; a row that cannot be read is an error naming the file
//! and the line.

use crate::error::{closest, line_of, Error, Result};
use crate::hw::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml_edit::{ImDocument, Item, Table};

/// The built-in price file.
pub const BUILTIN: &str = include_str!("../../prices/cloud.toml");
pub const BUILTIN_NAME: &str = "prices/cloud.toml";

/// Which kind of price the commands use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pricing {
    /// Pay-as-you-go list prices.
    #[default]
    OnDemand,
    Spot,
    /// Reserved short-term blocks (AWS EC2 Capacity Blocks).
    CapacityBlock,
    /// Per-GPU managed-service prices (Azure ML).
    ManagedCompute,
    /// Every kind: the cheapest wins.
    Any,
}

const KINDS: &[&str] = &["on-demand", "spot", "capacity-block", "managed-compute"];

impl Pricing {
    pub fn name(self) -> &'static str {
        match self {
            Pricing::OnDemand => "on-demand",
            Pricing::Spot => "spot",
            Pricing::CapacityBlock => "capacity-block",
            Pricing::ManagedCompute => "managed-compute",
            Pricing::Any => "any",
        }
    }
    pub fn admits(self, kind: &str) -> bool {
        self == Pricing::Any || self.name() == kind
    }
}

/// One listed price.
#[derive(Debug, Clone, Serialize)]
pub struct Price {
    pub provider: String,
    pub instance: String,
    /// Our GPU key (aliases in the file are resolved).
    pub gpu: String,
    /// How close the listed GPU is to our profile: exact, variant-unstated, related.
    pub gpu_match: String,
    pub gpus: u32,
    /// USD per instance-hour.
    pub usd_per_hour: f64,
    pub region: String,
    pub pricing: String,
    /// The date the source gives for the price, as written (`2026-09`, `undated`, ...).
    pub as_of: String,
    /// Source tag (or free text) ...
    pub source: String,
    /// ... and its citation, when the file's `[source.TAG]` table has one.
    pub cite: Option<String>,
    pub confidence: String,
    pub notes: String,
    /// `file:line` of the row.
    pub origin: String,
}

impl Price {
    pub fn usd_per_gpu_hour(&self) -> f64 {
        self.usd_per_hour / self.gpus.max(1) as f64
    }
    /// `provider instance` (the thing one rents).
    pub fn listing(&self) -> String {
        format!("{} {}", self.provider, self.instance)
    }
    /// The date as (year, month, day) for ordering (missing parts are 0); `None` when the
    /// row is undated or its date does not start with a year.
    pub fn date_key(&self) -> Option<(u32, u32, u32)> {
        date_key(&self.as_of)
    }
    /// `as of 2026-09`; `undated`; or the source's words (`before 2025-01-01 ...`).
    pub fn dated(&self) -> String {
        if self.date_key().is_some() {
            format!("as of {}", self.as_of)
        } else if self.as_of.eq_ignore_ascii_case("undated") {
            "undated".into()
        } else {
            format!("dated '{}'", self.as_of)
        }
    }
    /// Rows of the same key describe the same offer; the latest dated one is current.
    fn offer(&self) -> (String, String, String) {
        (self.provider.to_lowercase(), self.instance.to_lowercase(), self.pricing.clone())
    }
}

/// `2026-09-30` → (2026, 9, 30), `2026-09` → (2026, 9, 0), `2025` → (2025, 0, 0).
pub fn date_key(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim();
    let mut parts = s.splitn(3, '-');
    let year: u32 = parts.next()?.get(..4).filter(|y| y.chars().all(|c| c.is_ascii_digit()))?.parse().ok()?;
    if s.len() > 4 && !s[4..].starts_with('-') {
        return None;
    }
    let num = |p: Option<&str>| -> u32 { p.and_then(|x| x.get(..2)).and_then(|x| x.parse().ok()).unwrap_or(0) };
    let month = num(parts.next());
    let day = num(parts.next());
    Some((year, month, day))
}

/// Every price row known: built-in, then the user's files.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    pub prices: Vec<Price>,
    /// Rows skipped (with file and line), to show the user.
    pub warnings: Vec<String>,
}

impl PriceBook {
    /// The built-in prices (GPU names resolved against `reg`).
    pub fn builtin(reg: &Registry) -> Result<PriceBook> {
        let (prices, warnings) = parse(BUILTIN, BUILTIN_NAME, reg)?;
        Ok(PriceBook { prices, warnings })
    }

    /// The built-in prices plus `files`, in order.
    pub fn load(reg: &Registry, files: &[impl AsRef<Path>]) -> Result<PriceBook> {
        let mut book = PriceBook::builtin(reg)?;
        for f in files {
            book.add_file(f.as_ref(), reg)?;
        }
        Ok(book)
    }

    /// Adds the rows of a user file; its rows replace every earlier row of the same
    /// (provider, instance, pricing).
    pub fn add_file(&mut self, path: &Path, reg: &Registry) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
        let (rows, warnings) = parse(&text, &path.display().to_string(), reg)?;
        self.warnings.extend(warnings);
        self.add(rows);
        Ok(())
    }

    pub fn add(&mut self, rows: Vec<Price>) {
        let replaced: std::collections::BTreeSet<_> = rows.iter().map(Price::offer).collect();
        self.prices.retain(|p| !replaced.contains(&p.offer()));
        self.prices.extend(rows);
    }

    /// The current rows of a kind of pricing: for each (provider, instance, pricing) the
    /// latest dated row (undated rows lose to dated ones; among equals the later row in
    /// the files wins).
    pub fn current(&self, pricing: Pricing) -> Vec<&Price> {
        let mut best: BTreeMap<(String, String, String), &Price> = BTreeMap::new();
        for p in self.prices.iter().filter(|p| pricing.admits(&p.pricing)) {
            let e = best.entry(p.offer()).or_insert(p);
            if p.date_key() >= e.date_key() {
                *e = p;
            }
        }
        best.into_values().collect()
    }

    /// Whether a row is current (not superseded by a later-dated row of the same offer).
    pub fn superseded_by(&self, row: &Price) -> Option<&Price> {
        self.current(Pricing::Any).into_iter().find(|c| c.offer() == row.offer() && !std::ptr::eq(*c, row))
    }

    /// The cheapest current price per GPU of `gpu` (an N-GPU instance counts at its
    /// price / N).
    pub fn cheapest_per_gpu(&self, gpu: &str, pricing: Pricing) -> Option<&Price> {
        self.current(pricing)
            .into_iter()
            .filter(|p| p.gpu == gpu)
            .min_by(|a, b| a.usd_per_gpu_hour().total_cmp(&b.usd_per_gpu_hour()).then(b.date_key().cmp(&a.date_key())))
    }
}

const REQUIRED: &[&str] = &["provider", "instance", "gpu", "gpus_per_instance", "region", "as_of", "source"];
const OPTIONAL: &[&str] = &[
    "instance_usd_per_hour",
    "usd_per_gpu_hour",
    "pricing",
    "gpu_match",
    "os",
    "confidence",
    "notes",
    "instance_usd_per_hour_range",
    "usd_per_gpu_hour_range",
];

/// Parses a price file (the layout of `prices/cloud.toml`, which is also the layout of
/// `../shared/hardware/cloud_prices.toml`). `name` is used in error messages. Rows that
/// give only a price range are skipped with a warning (there is no one price to rank by).
pub fn parse(text: &str, name: &str, reg: &Registry) -> Result<(Vec<Price>, Vec<String>)> {
    let err = |offset: usize, msg: String| Error::Parse { path: name.to_string(), line: line_of(text, offset), msg };
    let doc = ImDocument::parse(text.to_string()).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        Error::Parse { path: name.to_string(), line, msg: e.message().trim().to_string() }
    })?;
    let root = doc.as_table();
    for (k, item) in root.iter() {
        let at = root.get_key_value(k).and_then(|(key, _)| key.span()).map(|s| s.start).unwrap_or(0);
        match k {
            "schema_version" | "price" | "source" => {}
            "currency" => {
                if item.as_str() != Some("USD") {
                    return Err(err(at, "currency must be \"USD\" (the only currency the commands show)".into()));
                }
            }
            other => return Err(err(at, format!("unknown top-level key '{other}' (expected schema_version, currency, [[price]] rows and [source.TAG] tables)"))),
        }
    }
    // Citations of the source tags.
    let mut cites: BTreeMap<String, String> = BTreeMap::new();
    if let Some(item) = root.get("source") {
        let at = item.span().map(|s| s.start).unwrap_or(0);
        let t = item.as_table().ok_or_else(|| err(at, "'source' must be tables [source.TAG] with a 'cite' string".into()))?;
        for (tag, v) in t.iter() {
            let cite = v.get("cite").and_then(Item::as_str).ok_or_else(|| err(v.span().or(t.span()).map(|s| s.start).unwrap_or(at), format!("[source.{tag}] needs a 'cite' string")))?;
            cites.insert(tag.to_string(), cite.to_string());
        }
    }
    let Some(rows) = root.get("price") else {
        return Err(Error::File { path: name.to_string(), msg: "no [[price]] rows".into() });
    };
    let rows = rows
        .as_array_of_tables()
        .ok_or_else(|| err(rows.span().map(|s| s.start).unwrap_or(0), "'price' must be [[price]] tables".into()))?;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for row in rows.iter() {
        let start = row.span().map(|s| s.start).unwrap_or(0);
        match parse_row(row, start, text, name, reg, &cites)? {
            Ok(p) => out.push(p),
            Err(skipped) => warnings.push(skipped),
        }
    }
    Ok((out, warnings))
}

/// A row, or (Ok(Err(why))) a row skipped with a reason.
fn parse_row(row: &Table, start: usize, text: &str, name: &str, reg: &Registry, cites: &BTreeMap<String, String>) -> Result<std::result::Result<Price, String>> {
    let err = |offset: usize, msg: String| Error::Parse { path: name.to_string(), line: line_of(text, offset), msg };
    let at = |k: &str| row.get_key_value(k).and_then(|(key, _)| key.span()).map(|s| s.start).unwrap_or(start);
    for (k, _) in row.iter() {
        if !REQUIRED.contains(&k) && !OPTIONAL.contains(&k) {
            let near = closest(k, REQUIRED.iter().chain(OPTIONAL).copied());
            let hint = if near.is_empty() { String::new() } else { format!(" (did you mean: {}?)", near.join(", ")) };
            return Err(err(at(k), format!("unknown field '{k}' in a [[price]] row{hint}")));
        }
    }
    for k in REQUIRED {
        if row.get(k).is_none() {
            return Err(err(start, format!("[[price]] row has no '{k}' (every row needs {})", REQUIRED.join(", "))));
        }
    }
    let string = |k: &str| -> Result<String> {
        match row.get(k) {
            None => Ok(String::new()),
            Some(v) => v.as_str().map(|s| s.trim().to_string()).ok_or_else(|| err(at(k), format!("'{k}' must be a string"))),
        }
    };
    let number = |k: &str| -> Result<Option<f64>> {
        match row.get(k) {
            None => Ok(None),
            Some(v) => {
                let x = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).ok_or_else(|| err(at(k), format!("'{k}' must be a number")))?;
                if !(x.is_finite() && x > 0.0) {
                    return Err(err(at(k), format!("'{k}' must be positive, not {x}")));
                }
                Ok(Some(x))
            }
        }
    };
    for k in ["provider", "instance", "gpu", "region", "as_of", "source"] {
        if string(k)?.is_empty() {
            return Err(err(at(k), format!("'{k}' must not be empty")));
        }
    }
    let gpus = match row.get("gpus_per_instance").and_then(Item::as_integer) {
        Some(n) if (1..=1024).contains(&n) => n as u32,
        _ => return Err(err(at("gpus_per_instance"), "'gpus_per_instance' must be a whole number from 1 to 1024".into())),
    };
    let gpu_name = string("gpu")?;
    let gpu = reg.gpu(&gpu_name).map_err(|e| err(at("gpu"), format!("{e} (a price row's gpu must be a key or alias of `phantom-gpu list-gpus`)")))?;
    let pricing = match string("pricing")? {
        s if s.is_empty() => "on-demand".to_string(),
        s if KINDS.contains(&s.as_str()) => s,
        s => return Err(err(at("pricing"), format!("unknown pricing '{s}' (expected one of {})", KINDS.join(", ")))),
    };
    let usd_per_hour = match (number("instance_usd_per_hour")?, number("usd_per_gpu_hour")?) {
        (Some(i), _) => i,
        (None, Some(g)) => g * gpus as f64,
        (None, None) if row.contains_key("instance_usd_per_hour_range") || row.contains_key("usd_per_gpu_hour_range") => {
            return Ok(Err(format!(
                "{name}:{}: skipped {} {}: it gives only a price range (add instance_usd_per_hour to use it)",
                line_of(text, start),
                string("provider")?,
                string("instance")?
            )));
        }
        (None, None) => {
            return Err(err(start, "[[price]] row has no price: give instance_usd_per_hour (or usd_per_gpu_hour for a per-GPU listing)".into()));
        }
    };
    let source = string("source")?;
    Ok(Ok(Price {
        provider: string("provider")?,
        instance: string("instance")?,
        gpu: gpu.key().to_string(),
        gpu_match: match string("gpu_match")? {
            s if s.is_empty() => "exact".into(),
            s => s,
        },
        gpus,
        usd_per_hour,
        region: string("region")?,
        pricing,
        as_of: string("as_of")?,
        cite: cites.get(&source).cloned(),
        source,
        confidence: string("confidence")?,
        notes: string("notes")?,
        origin: format!("{name}:{}", line_of(text, start)),
    }))
}

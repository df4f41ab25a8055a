//! Output: one `Table` of typed cells rendered as an aligned text table, JSON (a list of
//! objects), CSV or a Markdown table (`markdown.rs`). Commands build a table; they never
//! format by hand. `plot.rs` draws SVG charts and `html.rs` puts tables and charts on one
//! self-contained page.

pub mod html;
pub mod markdown;
pub mod plot;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    /// A GitHub-flavoured Markdown table.
    Markdown,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A number rounded for display (tables) but kept exact in JSON/CSV.
pub(crate) fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f == 0.0 {
                    "0".into()
                } else if f.abs() >= 100.0 {
                    format!("{f:.1}")
                } else if f.abs() >= 1.0 {
                    format!("{f:.3}")
                } else {
                    format!("{f:.4}")
                }
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn csv_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|s| s.to_string()).collect(), rows: vec![] }
    }

    pub fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// The same table without the named columns.
    pub fn without(&self, drop: &[&str]) -> Table {
        let keep: Vec<usize> = (0..self.headers.len()).filter(|&i| !drop.contains(&self.headers[i].as_str())).collect();
        Table {
            headers: keep.iter().map(|&i| self.headers[i].clone()).collect(),
            rows: self.rows.iter().map(|r| keep.iter().map(|&i| r[i].clone()).collect()).collect(),
        }
    }

    /// Whether every cell of a column is a number or empty (right-aligned).
    pub(crate) fn numeric_column(&self, i: usize) -> bool {
        self.rows.iter().all(|r| matches!(r[i], Value::Number(_) | Value::Null))
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Markdown => markdown::render(self),
            Format::Json => {
                let list: Vec<Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        let mut m = Map::new();
                        for (h, v) in self.headers.iter().zip(r) {
                            m.insert(h.clone(), v.clone());
                        }
                        Value::Object(m)
                    })
                    .collect();
                serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(vec![]);
                let _ = w.write_record(&self.headers);
                for r in &self.rows {
                    let _ = w.write_record(r.iter().map(csv_text));
                }
                String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
            }
            Format::Table => {
                let text: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(cell_text).collect()).collect();
                let mut width: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
                for r in &text {
                    for (i, c) in r.iter().enumerate() {
                        width[i] = width[i].max(c.chars().count());
                    }
                }
                let numeric: Vec<bool> = (0..self.headers.len()).map(|i| self.numeric_column(i)).collect();
                let line = |cells: &[String]| {
                    cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if numeric[i] {
                                format!("{c:>w$}", w = width[i])
                            } else {
                                format!("{c:<w$}", w = width[i])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                let mut out = line(&self.headers) + "\n";
                out += &(width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  ") + "\n");
                for r in &text {
                    out += &(line(r) + "\n");
                }
                out
            }
        }
    }
}

/// A JSON number, or null when not finite.
pub fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
}

pub fn text(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

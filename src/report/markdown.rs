//! A `Table` as a GitHub-flavoured Markdown table: numbers right-aligned and rounded as
//! in the text table, `|` escaped, empty cells for missing values.

use super::{cell_text, Table};

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub fn render(t: &Table) -> String {
    let mut out = String::new();
    out += &format!("| {} |\n", t.headers.iter().map(|h| escape(h)).collect::<Vec<_>>().join(" | "));
    let rule: Vec<&str> = (0..t.headers.len()).map(|i| if t.numeric_column(i) { "---:" } else { "---" }).collect();
    out += &format!("| {} |\n", rule.join(" | "));
    for r in &t.rows {
        out += &format!("| {} |\n", r.iter().map(|c| escape(&cell_text(c))).collect::<Vec<_>>().join(" | "));
    }
    out
}

//! A self-contained HTML page: headings, paragraphs, tables and inline SVG charts, with
//! inline CSS and nothing loaded from anywhere (a Content-Security-Policy forbids it), so
//! it opens offline and can be mailed as one file.

use super::{cell_text, Table};

/// One piece of the page, in order.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(String),
    Paragraph(String),
    /// Bulleted list of plain-text items.
    List(Vec<String>),
    Table(Table),
    /// An SVG document (as `plot::Chart::svg` writes it), inlined.
    Svg(String),
}

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A table as HTML, numbers right-aligned and rounded as in the text table.
pub fn table(t: &Table) -> String {
    let numeric: Vec<bool> = (0..t.headers.len()).map(|i| t.numeric_column(i)).collect();
    let mut o = String::from("<div class=\"scroll\"><table>\n<thead><tr>");
    for (h, num) in t.headers.iter().zip(&numeric) {
        o += &format!("<th{}>{}</th>", if *num { " class=\"num\"" } else { "" }, escape(h));
    }
    o += "</tr></thead>\n<tbody>\n";
    for r in &t.rows {
        o += "<tr>";
        for (c, num) in r.iter().zip(&numeric) {
            o += &format!("<td{}>{}</td>", if *num { " class=\"num\"" } else { "" }, escape(&cell_text(c)));
        }
        o += "</tr>\n";
    }
    o += "</tbody></table></div>\n";
    o
}

/// Strips an XML prolog or doctype so the SVG can sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map(|i| &svg[i..]).unwrap_or(svg)
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.5em; border-bottom: 1px solid #dde1e7; padding-bottom: 4px; }
p, li { line-height: 1.45; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #dde1e7; padding: 4px 8px; white-space: nowrap; }
th { background: #eef1f5; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
svg { max-width: 100%; height: auto; display: block; margin: 8px 0 16px; border: 1px solid #eceff3; }
";

/// The whole page.
pub fn page(title: &str, blocks: &[Block]) -> String {
    let mut o = String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    o += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n";
    o += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    o += &format!("<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n", escape(title), escape(title));
    for b in blocks {
        match b {
            Block::Heading(h) => o += &format!("<h2>{}</h2>\n", escape(h)),
            Block::Paragraph(p) => o += &format!("<p>{}</p>\n", escape(p)),
            Block::List(items) => {
                o += "<ul>\n";
                for i in items {
                    o += &format!("<li>{}</li>\n", escape(i));
                }
                o += "</ul>\n";
            }
            Block::Table(t) => o += &table(t),
            Block::Svg(s) => {
                o += inline_svg(s);
                o += "\n";
            }
        }
    }
    o += "</main>\n</body>\n</html>\n";
    o
}

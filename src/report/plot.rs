//! SVG charts drawn with `plotters` (SVG backend only: text is written as SVG `<text>`
//! and laid out by the viewer, so no system fonts are needed). Two kinds: log-log line
//! charts (throughput or cost against batch size, one series per GPU), horizontal
//! stacked bars (a step's time by kernel kind), and figures of grouped vertical bar panels
//! under one title and legend (`serve-sim`'s latency percentiles and throughput per GPU).

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Index into the palette (keep one GPU's colour the same across charts).
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

/// A line chart on log-log axes.
#[derive(Debug, Clone)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Horizontal stacked bars: one bar per label, segments (category, value) in `categories`
/// order.
#[derive(Debug, Clone)]
pub struct StackedBars {
    pub title: String,
    pub x_label: String,
    pub categories: Vec<String>,
    pub bars: Vec<(String, Vec<(String, f64)>)>,
}

#[derive(Debug, Clone)]
pub enum Chart {
    Line(LineChart),
    Bars(StackedBars),
    Panels(Panels),
}

pub const WIDTH: u32 = 1100;

impl Chart {
    /// Height in pixels at `WIDTH`.
    pub fn height(&self) -> u32 {
        match self {
            Chart::Line(_) => 440,
            Chart::Bars(b) => 120 + 28 * b.bars.len().max(1) as u32,
            Chart::Panels(p) => p.height(),
        }
    }
    /// The chart as a standalone SVG document.
    pub fn svg(&self) -> Result<String> {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, (WIDTH, self.height())).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            self.draw(&root)?;
            root.present().map_err(err)?;
        }
        Ok(s)
    }
    fn draw(&self, area: &DrawingArea<SVGBackend, Shift>) -> Result<()> {
        match self {
            Chart::Line(c) => draw_lines(area, c),
            Chart::Bars(c) => draw_bars(area, c),
            Chart::Panels(c) => draw_panels(area, c),
        }
    }
}

/// Several charts stacked in one SVG document (the `--plot` file).
pub fn page_svg(charts: &[Chart]) -> Result<String> {
    let heights: Vec<u32> = charts.iter().map(Chart::height).collect();
    let total: u32 = heights.iter().sum::<u32>().max(1);
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (WIDTH, total)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut rest = root.clone();
        for (c, h) in charts.iter().zip(&heights) {
            let (top, bottom) = rest.split_vertically(*h);
            c.draw(&top)?;
            rest = bottom;
        }
        root.present().map_err(err)?;
    }
    Ok(s)
}

fn err<E: std::fmt::Display>(e: E) -> Error {
    Error::Usage(format!("cannot draw the plot: {e}"))
}

fn color(i: usize) -> RGBColor {
    // Tableau 10: distinct, print-friendly.
    const C: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}

/// Axis bounds on a log scale with some room around the data.
fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.1, 10.0);
    }
    if hi / lo < 4.0 {
        let mid = (hi * lo).sqrt();
        return (mid / 2.5, mid * 2.5);
    }
    (lo / 1.6, hi * 1.6)
}

/// Values 1, 2, 5 × 10^k between 10^lo and 10^hi (1 × 10^k only when that leaves at
/// least three, and every value when there would be fewer than three).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut all = Vec::new();
    for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(k);
            if v.log10() >= lo && v.log10() <= hi {
                all.push(v);
            }
        }
    }
    if all.len() > 12 {
        let decades: Vec<f64> = all.iter().copied().filter(|v| (v.log10() - v.log10().round()).abs() < 1e-9).collect();
        if decades.len() >= 3 {
            return decades;
        }
    }
    if all.len() < 3 {
        // Less than a factor of 2.5: ticks at a few evenly spaced round values.
        let (a, b) = (10f64.powf(lo), 10f64.powf(hi));
        let step = 10f64.powf(((b - a) / 4.0).log10().floor());
        let mut v = (a / step).ceil() * step;
        all.clear();
        while v <= b {
            all.push(v);
            v += step * ((b - a) / step / 5.0).ceil().max(1.0);
        }
    }
    all
}

fn short(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.3}M", x / 1e6).trim_end_matches('0').trim_end_matches('.').to_string().replace(".M", "M")
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A bar's value to three significant digits (21.6, 9.39, 0.123), `short` from 1000 up.
fn three_digits(x: f64) -> String {
    if x.abs() >= 1000.0 || x == 0.0 {
        return short(x);
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// Width of the legend column at the right of every chart.
const LEGEND_W: u32 = 300;

/// Draws the legend entries (a swatch and a name each) in `area`.
fn legend(area: &DrawingArea<SVGBackend, Shift>, entries: &[(String, RGBColor, bool)]) -> Result<()> {
    let area = area.margin(48, 8, 8, 8);
    for (i, (name, col, line)) in entries.iter().enumerate() {
        let y = 22 * i as i32;
        if *line {
            area.draw(&PathElement::new(vec![(0, y + 8), (22, y + 8)], col.stroke_width(3))).map_err(err)?;
            area.draw(&Circle::new((11, y + 8), 4, col.filled())).map_err(err)?;
        } else {
            area.draw(&Rectangle::new([(4, y + 2), (18, y + 14)], col.filled())).map_err(err)?;
        }
        area.draw(&Text::new(name.clone(), (30, y + 1), ("sans-serif", 13))).map_err(err)?;
    }
    Ok(())
}

fn draw_lines(area: &DrawingArea<SVGBackend, Shift>, c: &LineChart) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(LEGEND_W));
    // Batch sizes are powers of two more often than not: the x axis is log2(batch) on a
    // linear scale, labelled at whole powers.
    let xs: Vec<f64> = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).filter(|x| *x > 0.0).map(f64::log2).collect();
    let (mut x0, mut x1) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1.0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    let (x0, x1) = (x0 - 0.3, x1 + 0.3);
    // The y axis is log10(value) on a linear scale, with our own 1-2-5 ticks (plotters'
    // log axis labels too few of them).
    let (y0, y1) = log_bounds(c.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let (y0, y1) = (y0.log10(), y1.log10());
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&c.title, ("sans-serif", 19))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(78)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let whole = |x: f64| (x - x.round()).abs() < 1e-6;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .x_labels(((x1 - x0).ceil() as usize + 1).min(20))
        .x_label_formatter(&|x| if whole(*x) { short(2f64.powf(x.round())) } else { String::new() })
        .y_label_formatter(&|_| String::new())
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(228, 228, 228))
        .draw()
        .map_err(err)?;
    let ticks = log_ticks(y0, y1);
    let base = plot_area.get_base_pixel();
    for &v in &ticks {
        let y = v.log10();
        chart.draw_series(std::iter::once(PathElement::new(vec![(x0, y), (x1, y)], RGBColor(228, 228, 228)))).map_err(err)?;
        let (px, py) = chart.backend_coord(&(x0, y));
        let style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Right, VPos::Center));
        plot_area.draw(&Text::new(short(v), (px - base.0 - 6, py - base.1), style)).map_err(err)?;
    }
    let mut entries = Vec::new();
    if c.series.iter().all(|s| s.points.is_empty()) {
        chart
            .draw_series(std::iter::once(Text::new("no data (every run out of memory, or no price)", ((x0 + x1) / 2.0, (y0 + y1) / 2.0), ("sans-serif", 16))))
            .map_err(err)?;
    }
    for s in &c.series {
        let col = color(s.color);
        if s.points.is_empty() {
            entries.push((format!("{} (no run fits)", s.name), RGBColor(200, 200, 200), true));
            continue;
        }
        let pts: Vec<(f64, f64)> = s.points.iter().filter(|p| p.0 > 0.0 && p.1 > 0.0).map(|&(x, y)| (x.log2(), y.log10())).collect();
        chart.draw_series(LineSeries::new(pts.iter().copied(), col.stroke_width(2))).map_err(err)?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, col.filled()))).map_err(err)?;
        entries.push((s.name.clone(), col, true));
    }
    legend(&legend_area, &entries)
}

fn draw_bars(area: &DrawingArea<SVGBackend, Shift>, c: &StackedBars) -> Result<()> {
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = area.split_horizontally(w.saturating_sub(LEGEND_W));
    let n = c.bars.len().max(1);
    let total = |b: &(String, Vec<(String, f64)>)| b.1.iter().map(|s| s.1.max(0.0)).sum::<f64>();
    let xmax = c.bars.iter().map(total).fold(0.0, f64::max).max(1e-9) * 1.05;
    let label_px = c.bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(8) as u32 * 7 + 16;
    // Row 0 of the chart is at the bottom: the first bar goes on top.
    let labels: Vec<String> = c.bars.iter().rev().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(&c.title, ("sans-serif", 19))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(label_px.min(360))
        // Integer ranges are inclusive: 0..n-1 is n rows.
        .build_cartesian_2d(0f64..xmax, (0..n - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(&c.x_label)
        .x_label_formatter(&|x| short(*x))
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(228, 228, 228))
        .draw()
        .map_err(err)?;
    let rows: Vec<&(String, Vec<(String, f64)>)> = c.bars.iter().rev().collect();
    let mut entries = Vec::new();
    for (ci, cat) in c.categories.iter().enumerate() {
        let col = color(ci);
        let mut rects = Vec::new();
        for (row, bar) in rows.iter().enumerate() {
            let mut x = 0.0;
            for (name, v) in &bar.1 {
                let v = v.max(0.0);
                if name == cat && v > 0.0 {
                    let mut r = Rectangle::new([(x, SegmentValue::Exact(row)), (x + v, SegmentValue::Exact(row + 1))], col.filled());
                    r.set_margin(4, 4, 0, 0);
                    rects.push(r);
                }
                x += v;
            }
        }
        if rects.is_empty() {
            continue;
        }
        chart.draw_series(rects).map_err(err)?;
        entries.push((cat.clone(), col, false));
    }
    legend(&legend_area, &entries)
}

/// One group of side-by-side bars (a percentile, or a GPU): `(colour, value)` each,
/// drawn centred in the group's slot in the order given.
#[derive(Debug, Clone)]
pub struct BarGroup {
    pub label: String,
    pub bars: Vec<(usize, f64)>,
}

/// Vertical grouped bars on a linear axis from zero, each bar labelled with its value.
#[derive(Debug, Clone)]
pub struct BarPanel {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<BarGroup>,
    /// A dashed horizontal line with its label (an offered load, a target).
    pub reference: Option<(String, f64)>,
}

/// A figure of bar panels: rows of panels side by side under one title, one legend for
/// all of them (a colour per entry; `None` draws a grey swatch for something that has no
/// bars, such as a GPU that could not run), and notes under the panels.
#[derive(Debug, Clone)]
pub struct Panels {
    pub title: String,
    pub rows: Vec<Vec<BarPanel>>,
    pub legend: Vec<(String, Option<usize>)>,
    pub notes: Vec<String>,
}

const PANELS_TITLE_H: u32 = 44;
const PANEL_ROW_H: u32 = 330;
const NOTE_LINE_H: u32 = 18;
/// Characters per note line (12 px sans-serif over `WIDTH`, with room to spare).
const NOTE_CHARS: usize = 165;

impl Panels {
    /// Whether any panel has a bar to draw.
    pub fn has_data(&self) -> bool {
        self.rows.iter().flatten().any(|p| p.groups.iter().any(|g| !g.bars.is_empty()))
    }
    fn note_lines(&self) -> Vec<String> {
        self.notes.iter().flat_map(|n| wrap(n, NOTE_CHARS)).collect()
    }
    fn height(&self) -> u32 {
        let notes = self.note_lines().len() as u32;
        PANELS_TITLE_H + PANEL_ROW_H * self.rows.len().max(1) as u32 + if notes > 0 { 12 + NOTE_LINE_H * notes } else { 0 }
    }
}

/// Splits `s` at spaces into lines of at most `width` characters (a longer word keeps its
/// own line).
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in s.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn draw_panels(area: &DrawingArea<SVGBackend, Shift>, f: &Panels) -> Result<()> {
    if !f.has_data() {
        return Err(Error::Usage(format!("cannot draw '{}': there is nothing to plot", f.title)));
    }
    let (w, _) = area.dim_in_pixel();
    let (title, rest) = area.split_vertically(PANELS_TITLE_H);
    let title_style = TextStyle::from(("sans-serif", 19)).pos(Pos::new(HPos::Center, VPos::Center));
    title.draw(&Text::new(f.title.clone(), (w as i32 / 2, PANELS_TITLE_H as i32 / 2 + 4), title_style)).map_err(err)?;
    let (body, notes) = rest.split_vertically(PANEL_ROW_H * f.rows.len().max(1) as u32);
    let (plots, legend_area) = body.split_horizontally(w.saturating_sub(LEGEND_W));
    let mut below = plots;
    for row in &f.rows {
        let (this, next) = below.split_vertically(PANEL_ROW_H);
        below = next;
        let (pw, _) = this.dim_in_pixel();
        let n = row.len().max(1) as u32;
        let mut left = this;
        for (i, p) in row.iter().enumerate() {
            let (cell, right) = if i + 1 < row.len() { left.split_horizontally(pw / n) } else { (left.clone(), left.clone()) };
            draw_bar_panel(&cell, p)?;
            left = right;
        }
    }
    let entries: Vec<(String, RGBColor, bool)> = f.legend.iter().map(|(name, c)| (name.clone(), c.map(color).unwrap_or(RGBColor(200, 200, 200)), false)).collect();
    legend(&legend_area, &entries)?;
    let notes = notes.margin(8, 0, 14, 14);
    for (i, line) in f.note_lines().iter().enumerate() {
        notes.draw(&Text::new(line.clone(), (0, NOTE_LINE_H as i32 * i as i32), ("sans-serif", 12))).map_err(err)?;
    }
    Ok(())
}

fn draw_bar_panel(area: &DrawingArea<SVGBackend, Shift>, p: &BarPanel) -> Result<()> {
    let n = p.groups.len().max(1);
    let values = || p.groups.iter().flat_map(|g| g.bars.iter().map(|b| b.1)).chain(p.reference.iter().map(|r| r.1)).filter(|v| v.is_finite());
    let top = values().fold(0.0f64, f64::max);
    let low = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    // A log axis when the values span more than a factor of 30 (a saturated GPU's
    // queueing delay next to another's milliseconds): every bar stays readable.
    let log = top > 0.0 && top / low > 30.0;
    let (y0, y1) = if log {
        let (lo, hi) = log_bounds(values());
        (lo.log10(), hi.log10())
    } else {
        // Room above the tallest bar for its value.
        (0.0, if top > 0.0 { top * 1.15 } else { 1.0 })
    };
    let y = |v: f64| if log { v.log10() } else { v };
    let y_label = if log { format!("{} (log scale)", p.y_label) } else { p.y_label.clone() };
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(62)
        .build_cartesian_2d(0f64..n as f64, y0..y1)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh().x_labels(0).y_desc(&y_label).light_line_style(TRANSPARENT).bold_line_style(RGBColor(228, 228, 228));
    if log {
        // Our own 1-2-5 ticks, as on the line charts.
        mesh.disable_y_mesh().y_label_formatter(&|_| String::new()).set_tick_mark_size(LabelAreaPosition::Left, 0);
    } else {
        mesh.y_labels(6).y_label_formatter(&|v| short(*v));
    }
    mesh.draw().map_err(err)?;
    let base = area.get_base_pixel();
    if log {
        for v in log_ticks(y0, y1) {
            chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, v.log10()), (n as f64, v.log10())], RGBColor(228, 228, 228)))).map_err(err)?;
            let (px, py) = chart.backend_coord(&(0.0, v.log10()));
            let style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Right, VPos::Center));
            area.draw(&Text::new(short(v), (px - base.0 - 6, py - base.1), style)).map_err(err)?;
        }
    }
    let (_, y_axis_bottom) = chart.backend_coord(&(0.0, y0));
    if p.groups.iter().all(|g| g.bars.is_empty()) {
        let (cx, cy) = chart.backend_coord(&(n as f64 / 2.0, (y0 + y1) / 2.0));
        let style = TextStyle::from(("sans-serif", 13)).pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new("no data (see the notes)", (cx - base.0, cy - base.1), style)).map_err(err)?;
    }
    let label_style = TextStyle::from(("sans-serif", 12)).pos(Pos::new(HPos::Center, VPos::Top));
    let value_style = TextStyle::from(("sans-serif", 10)).pos(Pos::new(HPos::Center, VPos::Bottom));
    for (gi, g) in p.groups.iter().enumerate() {
        let (cx, _) = chart.backend_coord(&(gi as f64 + 0.5, y0));
        area.draw(&Text::new(g.label.clone(), (cx - base.0, y_axis_bottom - base.1 + 6), label_style.clone())).map_err(err)?;
        if g.bars.is_empty() {
            continue;
        }
        // Bars fill 80% of the slot, at most 30% of it each, centred.
        let bw = (0.8 / g.bars.len() as f64).min(0.3);
        let x0 = gi as f64 + 0.5 - bw * g.bars.len() as f64 / 2.0;
        for (bi, &(c, v)) in g.bars.iter().enumerate() {
            if !v.is_finite() || (log && v <= 0.0) {
                continue;
            }
            let (a, b) = (x0 + bw * bi as f64, x0 + bw * (bi + 1) as f64);
            let h = y(v.max(0.0));
            let mut r = Rectangle::new([(a, y0), (b, h)], color(c).filled());
            r.set_margin(0, 0, 1, 1);
            chart.draw_series(std::iter::once(r)).map_err(err)?;
            let (px0, py) = chart.backend_coord(&(a, h));
            let (px1, _) = chart.backend_coord(&(b, h));
            let text = three_digits(v);
            // The value when it fits over the bar (about 5 px per character at 10 px).
            if (px1 - px0) as f64 + 6.0 >= 5.0 * text.chars().count() as f64 {
                area.draw(&Text::new(text, ((px0 + px1) / 2 - base.0, py - base.1 - 2), value_style.clone())).map_err(err)?;
            }
        }
    }
    if let Some((label, v)) = &p.reference {
        // Dashed: ten dashes per group.
        let dashes = (0..n * 10).map(|k| k as f64 / 10.0).map(|a| PathElement::new(vec![(a, y(*v)), (a + 0.05, y(*v))], BLACK.stroke_width(1)));
        chart.draw_series(dashes).map_err(err)?;
        let (px, py) = chart.backend_coord(&(n as f64, y(*v)));
        let style = TextStyle::from(("sans-serif", 11)).pos(Pos::new(HPos::Right, VPos::Bottom));
        area.draw(&Text::new(label.clone(), (px - base.0 - 2, py - base.1 - 2), style)).map_err(err)?;
    }
    Ok(())
}

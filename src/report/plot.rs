//! SVG charts drawn with `plotters` (SVG backend only: text is written as SVG `<text>`
//! and laid out by the viewer, so no system fonts are needed). Two kinds: log-log line
//! charts (throughput or cost against batch size, one series per GPU) and horizontal
//! stacked bars (a step's time by kernel kind).

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
}

pub const WIDTH: u32 = 1100;

impl Chart {
    /// Height in pixels at `WIDTH`.
    pub fn height(&self) -> u32 {
        match self {
            Chart::Line(_) => 440,
            Chart::Bars(b) => 120 + 28 * b.bars.len().max(1) as u32,
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

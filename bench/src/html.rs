//! `--report FILE.html`: the sale's figures as one self-contained page (no
//! script, no external asset, so it opens anywhere and can be mailed or
//! attached to an issue): the summary table, answers by status, the
//! promise check, and two inline SVG plots — the latency distribution
//! (percentile on a "nines" axis) and throughput over time.

use crate::report::group;
use crate::sale::{SaleReport, meaning};
use std::fmt::Write as _;

/// Plot size in SVG user units.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
/// Margins around the plot area for the axes' labels.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 45.0;
/// The most nines the latency axis shows (99.9999%).
const NINES_MAX: f64 = 6.0;

/// One line of a plot.
struct Line<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
}

/// The whole page.
pub fn render(report: &SaleReport) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let title = format!("seckill-bench sale: {}", report.target);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;max-width:780px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{padding:2px 10px;text-align:right}}\
         th{{border-bottom:1px solid #999}}td:first-child,th:first-child{{text-align:left}}\
         pre{{background:#f4f4f4;padding:1em;overflow-x:auto;font-size:12px}}\
         .ok{{color:#070}}.bad{{color:#b00;font-weight:bold}}</style></head><body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    let verdict = if report.promises.held {
        "<p class=\"ok\">Promises: all held.</p>".to_string()
    } else {
        let items: String =
            report.promises.violations.iter().map(|v| format!("<li>{}</li>", escape(&v.to_string()))).collect();
        format!("<p class=\"bad\">Promises BROKEN:</p><ul class=\"bad\">{items}</ul>")
    };
    out.push_str(&verdict);
    statuses(&mut out, report);
    let _ = write!(out, "<h2>Latency distribution</h2>\n{}", latency_plot(report));
    let _ = write!(out, "<h2>Throughput over time</h2>\n{}", throughput_plot(report));
    let _ = write!(out, "<h2>Summary</h2>\n<pre>{}</pre>\n", escape(&report.table()));
    if !report.argv.is_empty() {
        let _ = writeln!(out, "<p>Command: <code>{}</code></p>", escape(&report.argv.join(" ")));
    }
    out.push_str("</body></html>\n");
    out
}

fn statuses(out: &mut String, report: &SaleReport) {
    let total: u64 = report.status_all.values().sum();
    let _ = write!(
        out,
        "<p>{} requests/s over {} connections; {} answers in all.</p>\n<table><tr><th>status</th><th>answers</th><th>share</th><th>meaning</th></tr>\n",
        group(report.run.requests_per_s),
        report.run.params.connections,
        group(total as f64)
    );
    for (status, n) in &report.status_all {
        let _ = writeln!(
            out,
            "<tr><td>{status}</td><td>{}</td><td>{:.2}%</td><td style=\"text-align:left\">{}</td></tr>",
            group(*n as f64),
            100.0 * *n as f64 / total.max(1) as f64,
            meaning(status)
        );
    }
    out.push_str("</table>\n");
}

/// Latency (ms) against the percentile, on an axis of nines: 90% is 1,
/// 99% is 2, 99.9% is 3…, so the tail gets as much room as the body.
fn latency_plot(report: &SaleReport) -> String {
    let nines = |p: f64| if p >= 100.0 { NINES_MAX } else { (-(1.0 - p / 100.0).log10()).min(NINES_MAX) };
    let to_ms = |curve: &[[f64; 2]]| curve.iter().map(|[p, us]| (nines(*p), us / 1000.0)).collect::<Vec<_>>();
    let mut lines = vec![Line { name: "humans", colour: "#1f5fbf", points: to_ms(&report.run.latency_curve_us) }];
    if let Some(bots) = &report.bots_run {
        lines.push(Line { name: "bots", colour: "#c04020", points: to_ms(&bots.latency_curve_us) });
    }
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
    let x_ticks: Vec<(f64, String)> = labels.iter().enumerate().map(|(i, l)| (i as f64, l.to_string())).collect();
    let y_label = if report.run.service_time_us.is_some() { "latency, ms (corrected)" } else { "latency, ms" };
    plot("percentile", y_label, &x_ticks, &lines)
}

/// Answers per second in each bucket, all statuses and the 200s.
fn throughput_plot(report: &SaleReport) -> String {
    let s = &report.series;
    let per_s = 1000.0 / s.bucket_ms as f64;
    let points = |v: &[u64]| {
        v.iter().enumerate().map(|(i, n)| ((i as f64 + 0.5) * s.bucket_ms as f64 / 1000.0, *n as f64 * per_s)).collect()
    };
    let lines = [
        Line { name: "all answers", colour: "#1f5fbf", points: points(&s.answers) },
        Line { name: "200 (orders)", colour: "#2a9d3a", points: points(&s.successes) },
    ];
    let end_s = s.answers.len() as f64 * s.bucket_ms as f64 / 1000.0;
    let step = nice_step(end_s / 6.0);
    let x_ticks: Vec<(f64, String)> =
        (0..=((end_s / step).floor() as usize)).map(|i| (i as f64 * step, format!("{}", i as f64 * step))).collect();
    plot("seconds since the first buy", "answers/s", &x_ticks, &lines)
}

/// A line plot with a legend; x spans the ticks, y from 0 to the highest point.
fn plot(x_label: &str, y_label: &str, x_ticks: &[(f64, String)], lines: &[Line<'_>]) -> String {
    let x_max =
        x_ticks.iter().map(|t| t.0).chain(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0))).fold(0.0, f64::max);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_top = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let y_step = nice_step(if y_top > 0.0 { y_top / 5.0 } else { 1.0 });
    let y_max = (y_top / y_step).ceil().max(1.0) * y_step;
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + x / x_max * w;
    let sy = |y: f64| TOP + h - y / y_max * h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-size=\"11\">\n\
         <rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\n"
    );
    for (x, label) in x_ticks {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{TOP}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{2:.1}\" text-anchor=\"middle\">{3}</text>",
            sx(*x),
            TOP + h,
            TOP + h + 14.0,
            escape(label)
        );
    }
    let mut y = 0.0;
    while y <= y_max + y_step / 2.0 {
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#eee\"/><text x=\"{2:.1}\" y=\"{3:.1}\" text-anchor=\"end\">{4}</text>",
            LEFT + w,
            sy(y),
            LEFT - 6.0,
            sy(y) + 4.0,
            tick_label(y)
        );
        y += y_step;
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        LEFT + w / 2.0,
        HEIGHT - 8.0,
        escape(x_label),
        TOP + h / 2.0,
        escape(y_label)
    );
    for (i, line) in lines.iter().enumerate() {
        let points: Vec<String> = line.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{0}\" stroke-width=\"1.8\" points=\"{1}\"/>\
             <rect x=\"{2:.1}\" y=\"{3:.1}\" width=\"12\" height=\"3\" fill=\"{0}\"/><text x=\"{4:.1}\" y=\"{5:.1}\">{6}</text>",
            line.colour,
            points.join(" "),
            LEFT + 10.0,
            TOP + 10.0 + 14.0 * i as f64,
            LEFT + 26.0,
            TOP + 14.0 + 14.0 * i as f64,
            escape(line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

fn tick_label(y: f64) -> String {
    if y >= 1000.0 || y == y.trunc() { group(y) } else { format!("{y:.2}") }
}

/// Text and attribute escaping for the five characters HTML gives meaning to.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(4100.0), 5000.0);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn a_plot_is_an_svg_with_a_polyline_per_line() {
        let lines = [
            Line { name: "a", colour: "#000", points: vec![(0.0, 1.0), (1.0, 3.0)] },
            Line { name: "b<", colour: "#111", points: vec![(0.5, 2.0)] },
        ];
        let svg = plot("x", "y", &[(0.0, "0".into()), (1.0, "1".into())], &lines);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("b&lt;"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}

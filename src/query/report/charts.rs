//! The report's kinds of chart, each a function from figures to an `Svg`: stacked bars per
//! day, percentile lines per day, a latency histogram, rates per day with their intervals, and
//! horizontal bars. They know nothing of the archive; `page` hands them numbers.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::svg::{draw_y_axis, tick_label, Area, DayAxis, Scale, Svg};

/// A chart across the page.
pub const WIDE: (f64, f64) = (960.0, 300.0);
/// One of a grid of small charts (one per agent).
pub const SMALL: (f64, f64) = (470.0, 230.0);

fn area_of(width: f64, height: f64) -> Area {
    Area {
        left: 56.0,
        top: 34.0,
        right: width - 14.0,
        bottom: height - 28.0,
    }
}

/// A series of values per day, drawn in CSS class `class`.
pub struct DaySeries {
    pub name: String,
    pub class: String,
    pub values: BTreeMap<NaiveDate, f64>,
}

/// Bars per day, the series stacked in order (first at the bottom).
pub fn stacked_days(
    label: &str,
    y_title: &str,
    days: (NaiveDate, NaiveDate),
    series: &[DaySeries],
    unit: &str,
    empty: &str,
) -> Svg {
    let (width, height) = WIDE;
    let mut svg = Svg::new(width, height, label);
    let area = area_of(width, height);
    let axis = DayAxis::new(days.0, days.1, area.left, area.right);
    let mut totals: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for s in series {
        for (day, v) in &s.values {
            *totals.entry(*day).or_default() += v;
        }
    }
    let max = totals.values().copied().fold(0.0, f64::max);
    let y = Scale::linear(0.0, max, area.bottom, area.top);
    draw_y_axis(&mut svg, &area, &y, y_title, tick_label);
    if series.is_empty() || max <= 0.0 {
        svg.empty(empty);
    }
    // A bar fills most of its day, but no more than a bar's width when the days are few.
    let band = axis.band();
    let bar = if band > 4.0 { band * 0.85 } else { band }.min(36.0);
    let mut base: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for s in series {
        for (day, v) in &s.values {
            if *v <= 0.0 {
                continue;
            }
            let below = base.entry(*day).or_default();
            let x = axis.center(*day) - bar / 2.0;
            svg.rect(
                (x, y.at(*below)),
                (x + bar, y.at(*below + v)),
                s.class.clone(),
                Some(format!("{day} {}: {} {unit}", s.name, tick_label(*v))),
            );
            *below += v;
        }
    }
    axis.draw(&mut svg, &area);
    let legend: Vec<(String, String)> = series
        .iter()
        .map(|s| (s.name.clone(), s.class.clone()))
        .collect();
    svg.legend(area.right, 14.0, &legend);
    svg
}

/// One line per series over the days, on a y scale shared by the caller's charts. A day
/// without a value breaks the line; a value with no neighbour is drawn as a dot.
pub fn day_lines(
    label: &str,
    title: &str,
    days: (NaiveDate, NaiveDate),
    y: Scale,
    series: &[DaySeries],
    y_title: &str,
) -> Svg {
    let (width, height) = SMALL;
    let mut svg = Svg::new(width, height, label);
    let area = area_of(width, height);
    let y = Scale {
        from: area.bottom,
        to: area.top,
        ..y
    };
    let axis = DayAxis::new(days.0, days.1, area.left, area.right);
    draw_y_axis(&mut svg, &area, &y, y_title, tick_label);
    for s in series {
        let points: Vec<Option<(f64, f64)>> = axis
            .each()
            .map(|d| s.values.get(&d).map(|v| (axis.center(d), y.at(*v))))
            .collect();
        for (i, point) in points.iter().enumerate() {
            let lonely = i.checked_sub(1).is_none_or(|j| points[j].is_none())
                && points.get(i + 1).is_none_or(|p| p.is_none());
            if let (Some(p), true) = (point, lonely) {
                svg.circle(*p, 1.8, format!("dot {}", s.class), None);
            }
        }
        svg.polyline(points, format!("line {}", s.class), Some(s.name.clone()));
    }
    axis.draw(&mut svg, &area);
    svg.text((area.right, 14.0), "end", "chart-title", title);
    let legend: Vec<(String, String)> = series
        .iter()
        .map(|s| (s.name.clone(), s.class.clone()))
        .collect();
    svg.legend(area.right, 28.0, &legend);
    svg
}

/// How a histogram spaces its bins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bins {
    Linear,
    /// Equal ratios: a long tail stays readable next to the bulk.
    Log,
}

/// Bins for `sorted` samples: logarithmic where the tail is long (the slowest sample more
/// than eight times the median, and every sample positive), else linear from zero.
pub fn bins_for(sorted: &[f64]) -> Bins {
    let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
        return Bins::Linear;
    };
    let median = sorted[sorted.len() / 2];
    if *first > 0.0 && median > 0.0 && *last > 8.0 * median {
        Bins::Log
    } else {
        Bins::Linear
    }
}

/// The number of bins of a histogram.
const BINS: usize = 40;

/// A histogram of `sorted` samples with vertical markers at named values (percentiles).
pub fn histogram(
    label: &str,
    title: &str,
    sorted: &[f64],
    bins: Bins,
    markers: &[(&str, f64)],
    x_title: &str,
) -> Svg {
    let (width, height) = SMALL;
    let mut svg = Svg::new(width, height, label);
    let mut area = area_of(width, height);
    area.bottom -= 12.0;
    svg.text((area.right, 14.0), "end", "chart-title", title);
    let (Some(first), Some(last)) = (sorted.first().copied(), sorted.last().copied()) else {
        svg.empty("no samples");
        return svg;
    };
    let x = match bins {
        Bins::Log => Scale::log(first, last, area.left, area.right),
        Bins::Linear => Scale::linear(first.min(0.0), last, area.left, area.right),
    };
    // Bin edges in pixels are equal either way; a sample's bin is where the scale puts it.
    let mut counts = [0u64; BINS];
    let bin_width = area.width() / BINS as f64;
    for v in sorted {
        let bin = ((x.at(*v) - area.left) / bin_width) as usize;
        counts[bin.min(BINS - 1)] += 1;
    }
    let most = counts.iter().copied().max().unwrap_or(0) as f64;
    let y = Scale::linear(0.0, most, area.bottom, area.top);
    draw_y_axis(&mut svg, &area, &y, "calls' samples", tick_label);
    let value_at = |px: f64| {
        let t = (px - x.from) / (x.to - x.from);
        if x.log {
            10f64.powf(x.min.log10() + t * (x.max.log10() - x.min.log10()))
        } else {
            x.min + t * (x.max - x.min)
        }
    };
    for (i, count) in counts.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        let left = area.left + i as f64 * bin_width;
        svg.rect(
            (left + 0.5, y.at(*count as f64)),
            (left + bin_width - 0.5, area.bottom),
            "s0".into(),
            Some(format!(
                "{}–{} ms: {count}",
                tick_label(value_at(left)),
                tick_label(value_at(left + bin_width))
            )),
        );
    }
    for (name, value) in markers {
        let px = x.at(*value);
        svg.line((px, area.top), (px, area.bottom), marker_class(name));
        svg.text((px + 3.0, area.top + 10.0), "start", "marker-label", *name);
    }
    for v in x.ticks() {
        let px = x.at(v);
        svg.line((px, area.bottom), (px, area.bottom + 4.0), "axis");
        svg.text((px, area.bottom + 16.0), "middle", "tick", tick_label(v));
    }
    svg.line((area.left, area.bottom), (area.right, area.bottom), "axis");
    let scale_name = if x.log { "log scale" } else { "linear scale" };
    svg.text(
        (area.right, height - 6.0),
        "end",
        "axis-title",
        format!("{x_title} ({scale_name})"),
    );
    svg
}

fn marker_class(name: &str) -> &'static str {
    match name {
        "p50" => "marker p50",
        "p95" => "marker p95",
        _ => "marker p99",
    }
}

/// A rate on one day: its sample size and its 95% interval.
pub struct DayRate {
    pub day: NaiveDate,
    pub n: i64,
    pub hits: i64,
    pub interval: (f64, f64),
}

/// Rates per day as dots with their 95% interval: a rate from few samples shows as a long
/// bar, so it looks as uncertain as it is.
pub fn day_rates(
    label: &str,
    title: &str,
    days: (NaiveDate, NaiveDate),
    y_max: f64,
    rates: &[DayRate],
) -> Svg {
    let (width, height) = SMALL;
    let mut svg = Svg::new(width, height, label);
    let area = area_of(width, height);
    let axis = DayAxis::new(days.0, days.1, area.left, area.right);
    let y = Scale::linear(0.0, y_max, area.bottom, area.top);
    draw_y_axis(&mut svg, &area, &y, "rate", |v| {
        format!("{}%", tick_label(v * 100.0))
    });
    for r in rates {
        let x = axis.center(r.day);
        let rate = r.hits as f64 / r.n as f64;
        svg.line((x, y.at(r.interval.0)), (x, y.at(r.interval.1)), "interval");
        svg.circle(
            (x, y.at(rate)),
            (1.2 + (r.n as f64).sqrt() / 2.0).min(4.0),
            "dot s5".into(),
            Some(format!(
                "{}: {} of {} ({}, 95% interval {}–{})",
                r.day,
                r.hits,
                r.n,
                percent(rate),
                percent(r.interval.0),
                percent(r.interval.1)
            )),
        );
    }
    axis.draw(&mut svg, &area);
    svg.text((area.right, 14.0), "end", "chart-title", title);
    svg
}

/// A rate as a percentage with one decimal.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// One bar of a horizontal bar chart: segments laid end to end, an optional interval, and a
/// note after the bar.
pub struct HBar {
    pub label: String,
    /// (length, CSS class, hover text).
    pub segments: Vec<(f64, String, String)>,
    pub interval: Option<(f64, f64)>,
    pub note: String,
}

/// Horizontal bars on one scale from zero to `max`.
pub fn hbars(
    label: &str,
    x_title: &str,
    max: f64,
    bars: &[HBar],
    format: impl Fn(f64) -> String,
    legend: &[(String, String)],
) -> Svg {
    let row = 22.0;
    let width = WIDE.0;
    let height = 58.0 + row * bars.len().max(1) as f64;
    let mut svg = Svg::new(width, height, label);
    let label_width = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(44) as f64
        * 6.2;
    let area = Area {
        left: 16.0 + label_width,
        top: 34.0,
        right: width - 150.0,
        bottom: height - 24.0,
    };
    let x = Scale::linear(0.0, max, area.left, area.right);
    for v in x.ticks() {
        let px = x.at(v);
        svg.line((px, area.top), (px, area.bottom), "grid");
        svg.text((px, area.bottom + 14.0), "middle", "tick", format(v));
    }
    svg.text((area.left, area.top - 10.0), "start", "axis-title", x_title);
    if bars.is_empty() {
        svg.empty("nothing to show");
    }
    for (i, bar) in bars.iter().enumerate() {
        let top = area.top + 4.0 + i as f64 * row;
        let mid = top + (row - 6.0) / 2.0;
        let text: String = bar.label.chars().take(44).collect();
        svg.text((area.left - 6.0, mid + 4.0), "end", "tick", text);
        let mut at = 0.0;
        for (length, class, title) in &bar.segments {
            if *length > 0.0 {
                svg.rect(
                    (x.at(at), top),
                    (x.at(at + length), top + row - 6.0),
                    class.clone(),
                    Some(title.clone()),
                );
            }
            at += length;
        }
        let mut end = x.at(at);
        if let Some((lo, hi)) = bar.interval {
            svg.line((x.at(lo), mid), (x.at(hi), mid), "interval");
            svg.line((x.at(lo), mid - 4.0), (x.at(lo), mid + 4.0), "interval");
            svg.line((x.at(hi), mid - 4.0), (x.at(hi), mid + 4.0), "interval");
            end = end.max(x.at(hi));
        }
        svg.text((end + 6.0, mid + 4.0), "start", "note", bar.note.clone());
    }
    svg.line((area.left, area.top), (area.left, area.bottom), "axis");
    svg.legend(width - 14.0, 14.0, legend);
    svg
}

/// The Wilson score interval of `hits` of `n` at 95%: it stays inside 0..1 and widens as `n`
/// shrinks, unlike the normal approximation.
pub fn wilson_interval(hits: i64, n: i64) -> (f64, f64) {
    if n <= 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let n = n as f64;
    let p = hits as f64 / n;
    let z2n = z * z / n;
    let center = (p + z2n / 2.0) / (1.0 + z2n);
    let half = z / (1.0 + z2n) * (p * (1.0 - p) / n + z2n / (4.0 * n)).sqrt();
    ((center - half).max(0.0), (center + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_the_textbook() {
        // 3 of 10: 0.108 to 0.603 (Wilson, 95%).
        let (lo, hi) = wilson_interval(3, 10);
        assert!(
            (lo - 0.1078).abs() < 1e-3 && (hi - 0.6032).abs() < 1e-3,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 4);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.4, "few samples, wide interval: {hi}");
        let (lo, hi) = wilson_interval(500, 1000);
        assert!(hi - lo < 0.07);
    }

    #[test]
    fn long_tails_get_log_bins() {
        assert_eq!(bins_for(&[100.0, 110.0, 120.0, 130.0, 2000.0]), Bins::Log);
        assert_eq!(bins_for(&[100.0, 110.0, 120.0, 130.0, 300.0]), Bins::Linear);
        assert_eq!(bins_for(&[0.0, 110.0, 120.0, 130.0, 2000.0]), Bins::Linear);
        assert_eq!(bins_for(&[]), Bins::Linear);
    }

    #[test]
    fn a_histogram_counts_every_sample() {
        let samples: Vec<f64> = (1..=500).map(|i| i as f64 * 3.0).collect();
        let svg = histogram("h", "t", &samples, Bins::Linear, &[("p50", 750.0)], "ms");
        let counted: u64 = svg
            .rects
            .iter()
            .filter_map(|r| r.title.as_ref())
            .map(|t| t.rsplit(": ").next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(counted, 500);
    }
}

//! Inline SVG drawn by hand: a chart is a list of shapes (`Svg`) rendered by the `chart.svg`
//! template, plus the scales and axes that place them.
//!
//! No chart crate: the report needs four simple kinds of chart, and drawing them here keeps
//! every pixel's meaning in code that reads like the chart (a bar is a `Rect` from the axis to
//! its value). Text is SVG `<text>` in the page's font (no font file is embedded or fetched),
//! colours are CSS classes of the page (`s0`..`s7`, `p50`/`p95`/`p99`), so print styles and
//! the legend apply to every chart alike. Coordinates are printed with one decimal.

use std::fmt;

use askama::Template;
use chrono::{Datelike, NaiveDate};

/// A coordinate or length, printed with one decimal and no trailing `.0`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Px(pub f64);

impl fmt::Display for Px {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0 * 10.0).round();
        if tenths % 10.0 == 0.0 {
            write!(f, "{}", tenths / 10.0)
        } else {
            write!(f, "{:.1}", tenths / 10.0)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub x1: Px,
    pub y1: Px,
    pub x2: Px,
    pub y2: Px,
    pub class: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rect {
    pub x: Px,
    pub y: Px,
    pub w: Px,
    pub h: Px,
    pub class: String,
    /// Shown on hover.
    pub title: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub d: String,
    pub class: String,
    pub title: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Circle {
    pub cx: Px,
    pub cy: Px,
    pub r: Px,
    pub class: String,
    pub title: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Text {
    pub x: Px,
    pub y: Px,
    /// `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub class: &'static str,
    pub text: String,
}

/// One chart: its size, what it shows (for screen readers) and its shapes, drawn in the order
/// grid and axes, bars, lines, points, text.
#[derive(Clone, Debug, PartialEq, Template)]
#[template(path = "chart.svg", config = "src/query/report/askama.toml")]
pub struct Svg {
    pub width: Px,
    pub height: Px,
    pub label: String,
    pub lines: Vec<Line>,
    pub rects: Vec<Rect>,
    pub paths: Vec<Path>,
    pub circles: Vec<Circle>,
    pub texts: Vec<Text>,
}

impl Svg {
    pub fn new(width: f64, height: f64, label: impl Into<String>) -> Svg {
        Svg {
            width: Px(width),
            height: Px(height),
            label: label.into(),
            lines: Vec::new(),
            rects: Vec::new(),
            paths: Vec::new(),
            circles: Vec::new(),
            texts: Vec::new(),
        }
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), class: &'static str) {
        self.lines.push(Line {
            x1: Px(x1),
            y1: Px(y1),
            x2: Px(x2),
            y2: Px(y2),
            class,
        });
    }

    pub fn text(
        &mut self,
        (x, y): (f64, f64),
        anchor: &'static str,
        class: &'static str,
        text: impl Into<String>,
    ) {
        self.texts.push(Text {
            x: Px(x),
            y: Px(y),
            anchor,
            class,
            text: text.into(),
        });
    }

    /// A rectangle between two corners, in any order.
    pub fn rect(
        &mut self,
        (x1, y1): (f64, f64),
        (x2, y2): (f64, f64),
        class: String,
        title: Option<String>,
    ) {
        self.rects.push(Rect {
            x: Px(x1.min(x2)),
            y: Px(y1.min(y2)),
            w: Px((x2 - x1).abs()),
            h: Px((y2 - y1).abs()),
            class,
            title,
        });
    }

    /// A polyline through `points`; a gap (`None`) starts a new piece.
    pub fn polyline(
        &mut self,
        points: impl IntoIterator<Item = Option<(f64, f64)>>,
        class: String,
        title: Option<String>,
    ) {
        let mut d = String::new();
        let mut pen_down = false;
        for point in points {
            match point {
                Some((x, y)) => {
                    let command = if pen_down { 'L' } else { 'M' };
                    d.push_str(&format!("{command}{},{}", Px(x), Px(y)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            self.paths.push(Path { d, class, title });
        }
    }

    pub fn circle(&mut self, (cx, cy): (f64, f64), r: f64, class: String, title: Option<String>) {
        self.circles.push(Circle {
            cx: Px(cx),
            cy: Px(cy),
            r: Px(r),
            class,
            title,
        });
    }

    /// A legend row at the top right: a swatch and a name per entry.
    pub fn legend(&mut self, right: f64, y: f64, entries: &[(String, String)]) {
        let mut x = right;
        for (name, class) in entries.iter().rev() {
            let width = 14.0 + 6.5 * name.chars().count() as f64;
            x -= width + 10.0;
            self.rect((x, y - 8.0), (x + 10.0, y + 2.0), class.clone(), None);
            self.text((x + 14.0, y + 1.0), "start", "legend", name.clone());
        }
    }

    /// A message in the middle of an empty chart.
    pub fn empty(&mut self, message: &str) {
        self.text(
            (self.width.0 / 2.0, self.height.0 / 2.0),
            "middle",
            "empty",
            message,
        );
    }
}

/// Where the drawing area lies inside a chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl Area {
    pub fn width(&self) -> f64 {
        self.right - self.left
    }
}

/// Maps values to one axis of the drawing area: linear, or logarithmic for a long tail.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub min: f64,
    pub max: f64,
    /// Pixel positions of `min` and `max`.
    pub from: f64,
    pub to: f64,
    pub log: bool,
}

impl Scale {
    /// A linear scale from `min` to a round number at or above `max`.
    pub fn linear(min: f64, max: f64, from: f64, to: f64) -> Scale {
        let max = if max > min { max } else { min + 1.0 };
        let step = nice_step((max - min) / 5.0);
        Scale {
            min,
            max: (max / step).ceil() * step,
            from,
            to,
            log: false,
        }
    }

    /// A log scale from the power of ten at or below `min` to the one at or above `max`.
    pub fn log(min: f64, max: f64, from: f64, to: f64) -> Scale {
        let min = min.max(f64::MIN_POSITIVE);
        let max = max.max(min * 10.0);
        Scale {
            min: 10f64.powf(min.log10().floor()),
            max: 10f64.powf(max.log10().ceil()),
            from,
            to,
            log: true,
        }
    }

    /// The pixel position of `value`, clamped to the scale.
    pub fn at(&self, value: f64) -> f64 {
        let t = if self.log {
            let v = value.max(self.min);
            (v.log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (value - self.min) / (self.max - self.min)
        };
        self.from + t.clamp(0.0, 1.0) * (self.to - self.from)
    }

    /// Round values to label: about five on a linear scale; 1, 2, 5 of each power of ten on a
    /// log scale (only the powers when that would be crowded).
    pub fn ticks(&self) -> Vec<f64> {
        if self.log {
            let decades = (self.max.log10() - self.min.log10()).round() as i32;
            let first = self.min.log10().round() as i32;
            let steps: &[f64] = if decades > 3 {
                &[1.0]
            } else {
                &[1.0, 2.0, 5.0]
            };
            let mut ticks = Vec::new();
            for power in first..=first + decades {
                for step in steps {
                    let v = step * 10f64.powi(power);
                    if v <= self.max * 1.0001 {
                        ticks.push(v);
                    }
                }
            }
            return ticks;
        }
        let step = nice_step((self.max - self.min) / 5.0);
        let mut ticks = Vec::new();
        let mut v = (self.min / step).ceil() * step;
        while v <= self.max + step * 1e-9 {
            ticks.push(v);
            v += step;
        }
        ticks
    }
}

/// 1, 2 or 5 times a power of ten, at or above `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * 0.999)
        .unwrap_or(10.0 * power)
}

/// A number for an axis label: no more decimals than it needs, thousands as `k`.
pub fn tick_label(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{}k", Px(v / 1000.0))
    } else if v.abs() >= 10.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// UTC days along the x axis, each a band of equal width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DayAxis {
    pub first: NaiveDate,
    pub days: i64,
    pub from: f64,
    pub to: f64,
}

impl DayAxis {
    pub fn new(first: NaiveDate, last: NaiveDate, from: f64, to: f64) -> DayAxis {
        DayAxis {
            first,
            days: (last - first).num_days().max(0) + 1,
            from,
            to,
        }
    }

    pub fn band(&self) -> f64 {
        (self.to - self.from) / self.days as f64
    }

    /// The left edge of `day`'s band.
    pub fn left(&self, day: NaiveDate) -> f64 {
        self.from + (day - self.first).num_days() as f64 * self.band()
    }

    pub fn center(&self, day: NaiveDate) -> f64 {
        self.left(day) + self.band() / 2.0
    }

    /// Every day of the axis.
    pub fn each(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first.iter_days().take(self.days as usize)
    }

    /// At most about eight labelled days: every day, 2 days, week, fortnight, or the first of
    /// each month (or quarter).
    pub fn ticks(&self) -> Vec<(NaiveDate, String)> {
        let label = |d: NaiveDate| d.format("%b %-d").to_string();
        for step in [1, 2, 7, 14] {
            if self.days <= 8 * step {
                return self
                    .each()
                    .step_by(step as usize)
                    .map(|d| (d, label(d)))
                    .collect();
            }
        }
        let months = self.days / 30;
        let every = if months <= 8 {
            1
        } else if months <= 24 {
            3
        } else {
            12
        };
        self.each()
            .filter(|d| d.day() == 1 && d.month0() % every == 0)
            .map(|d| (d, d.format("%b %Y").to_string()))
            .collect()
    }

    /// The labelled days below `area`, with ticks.
    pub fn draw(&self, svg: &mut Svg, area: &Area) {
        for (day, label) in self.ticks() {
            let x = self.center(day);
            svg.line((x, area.bottom), (x, area.bottom + 4.0), "axis");
            svg.text((x, area.bottom + 16.0), "middle", "tick", label);
        }
        svg.line((area.left, area.bottom), (area.right, area.bottom), "axis");
    }
}

/// Horizontal grid lines with labels at `scale`'s ticks, left of `area`, and the axis title.
pub fn draw_y_axis(
    svg: &mut Svg,
    area: &Area,
    scale: &Scale,
    title: &str,
    format: impl Fn(f64) -> String,
) {
    for v in scale.ticks() {
        let y = scale.at(v);
        svg.line((area.left, y), (area.right, y), "grid");
        svg.text((area.left - 6.0, y + 4.0), "end", "tick", format(v));
    }
    svg.text((area.left, area.top - 10.0), "start", "axis-title", title);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_print_one_decimal() {
        assert_eq!(Px(12.0).to_string(), "12");
        assert_eq!(Px(12.345).to_string(), "12.3");
        assert_eq!(Px(-0.06).to_string(), "-0.1");
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_data() {
        let scale = Scale::linear(0.0, 2673.6, 100.0, 0.0);
        assert_eq!(scale.max, 3000.0);
        assert_eq!(scale.ticks(), vec![0.0, 1000.0, 2000.0, 3000.0]);
        assert_eq!(scale.at(0.0), 100.0);
        assert_eq!(scale.at(3000.0), 0.0);
        assert_eq!(scale.at(1e9), 0.0, "clamped");
    }

    #[test]
    fn log_ticks_span_powers_of_ten() {
        let scale = Scale::log(35.0, 4200.0, 0.0, 300.0);
        assert_eq!((scale.min, scale.max), (10.0, 10_000.0));
        assert_eq!(scale.ticks().first(), Some(&10.0));
        assert!(scale.ticks().contains(&500.0));
        assert!((scale.at(100.0) - 100.0).abs() < 1e-9);
        assert_eq!(
            scale.at(0.0),
            0.0,
            "values at or below zero sit at the bottom"
        );
    }

    #[test]
    fn day_ticks_stay_few() {
        let first = NaiveDate::from_ymd_opt(2026, 8, 3).unwrap();
        for days in [1, 5, 20, 60, 121, 400, 1200] {
            let last = first + chrono::Days::new(days - 1);
            let axis = DayAxis::new(first, last, 0.0, 900.0);
            let ticks = axis.ticks();
            assert!(ticks.len() <= 14, "{days} days: {}", ticks.len());
            assert!(!ticks.is_empty() || days > 300, "{days} days");
        }
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(1500.0), "1500");
        assert_eq!(tick_label(25_000.0), "25k");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(2.0), "2");
    }
}

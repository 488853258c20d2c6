//! `callvault report`: one self-contained HTML page with the charts people look at (freshness,
//! calls per day, latency percentiles per agent and day, latency distributions, hallucination
//! rates with their intervals, goal success and evaluation coverage, deletions by mode, the
//! slowest calls), each with its figures as tables.
//!
//! Files by concern: `data` reads the archive (every figure through `stats::read`, the code
//! `stats` prints from), `page` is the page's model (sections, charts, tables, cells) and puts
//! it together, `archive` and `agents` build its sections (what the archive holds; how the
//! agents do), `charts` draws each kind of chart, `svg` holds shapes, scales and axes; `page.html` and `chart.svg` are the askama
//! templates (checked at build time, HTML-escaping every value).
//!
//! The page needs nothing else: no script, no font file, no image, no network. Charts are
//! inline SVG, styles are inline CSS, and a Content-Security-Policy meta tag forbids loading
//! anything (`default-src 'none'`), so a stray URL could not be fetched even if one slipped in.
//! It carries the archive's snapshot time and callvault's version, and prints on paper.

mod agents;
mod archive;
mod charts;
mod data;
mod page;
mod svg;

use askama::Template;
use rusqlite::Connection;

use super::stats::CallFilter;
use super::QueryError;

/// A rendered report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub html: String,
    /// Charts on the page (each one inline `<svg>`).
    pub charts: usize,
}

/// Reads the calls `filter` keeps and renders the page.
pub fn render(conn: &Connection, filter: &CallFilter) -> Result<Report, QueryError> {
    let data = data::read(conn, filter)?;
    let page = page::build(&data);
    let charts = page::chart_count(&page);
    let html = page.render()?;
    Ok(Report { html, charts })
}

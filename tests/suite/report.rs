//! `callvault report`: the page of an archive synced from every platform of the simulator,
//! rendered by headless Chromium (a screenshot that is not blank, every section and one SVG
//! per chart in the DOM, nothing loaded from any network), with every number of its tables
//! equal to what `stats --format json` prints for the same archive; and its filters, its
//! refusals, and the call content it never shows.
//!
//! The browser test skips, loudly, only where no `chromium` binary exists (`.ci/run`
//! installs Debian's package where it is missing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use callvault::providers::ProviderKind;
use serde_json::Value;

use crate::util::*;

const SECTIONS: [&str; 8] = [
    "freshness",
    "calls",
    "latency",
    "distribution",
    "hallucination",
    "outcomes",
    "deletions",
    "slowest",
];

/// An archive synced from every platform, with deletions in every mode.
fn synced() -> Fixture {
    let fx = Fixture::new(sim_config(600, 3));
    for provider in ["bluejay", "cartesia", "clarion", "ultravox"] {
        let out = fx.sync_of(provider, &[]).output().unwrap();
        assert!(out.status.success(), "{provider}: {}", stderr_of(&out));
    }
    for (select, mode) in [
        ("provider = 'bluejay' ORDER BY id LIMIT 6", "full"),
        (
            "provider = 'bluejay' ORDER BY id LIMIT 4 OFFSET 20",
            "recording-only",
        ),
        ("provider = 'cartesia' ORDER BY id LIMIT 5", "redact"),
    ] {
        let sql = format!("SELECT provider, id AS call_id FROM calls WHERE {select}");
        let out = fx
            .cmd()
            .args(["delete", "--select", &sql, "--mode", mode, "--yes"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {}", stderr_of(&out));
    }
    // Deleted at Ultravox by someone else: the next sync's tombstones record `upstream`.
    assert_eq!(
        fx.server
            .sim
            .delete_upstream(ProviderKind::Ultravox, 3)
            .len(),
        3
    );
    let out = fx.sync_of("ultravox", &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let modes = strings(
        &open(&fx.db()),
        "SELECT DISTINCT mode FROM deleted_calls ORDER BY mode",
    );
    assert_eq!(modes, ["full", "recording-only", "redact", "upstream"]);
    fx
}

fn report(fx: &Fixture, extra: &[&str]) -> (PathBuf, String) {
    let page = fx.dir.path().join(format!("report-{}.html", extra.len()));
    let out = fx
        .cmd()
        .arg("report")
        .arg("--out")
        .arg(&page)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "the page goes to --out, not stdout");
    assert!(stderr_of(&out).contains(" charts)"), "{}", stderr_of(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    (page, html)
}

fn stats(fx: &Fixture, args: &[&str]) -> Vec<Value> {
    let out = fx
        .cmd()
        .arg("stats")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Debian's `chromium` on PATH, if there is one.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
}

/// Headless Chromium on `page` with `args`, isolated from any profile and from the network's
/// background services; its stdout.
fn run_chromium(binary: &Path, page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", stderr_of(&out));
    stdout_of(&out)
}

/// A table of the page: its column keys (`data-col`) and its cells.
struct PageTable {
    columns: Vec<String>,
    rows: Vec<Vec<PageCell>>,
}

struct PageCell {
    text: String,
    /// `data-v`: the exact value the text rounds.
    exact: Option<String>,
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in a tag's attribute text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// The parts of `text` between each `open` and the next `close`, each with the tag's
/// attribute text.
fn elements<'t>(text: &'t str, open: &str, close: &str) -> Vec<(&'t str, &'t str)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len()..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let Some(end) = after.find(close) else {
            break;
        };
        found.push((&after[..tag_end], &after[tag_end + 1..end]));
        rest = &after[end + close.len()..];
    }
    found
}

fn page_table(html: &str, id: &str) -> PageTable {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let end = start + html[start..].find("</table>").unwrap();
    let table = &html[start..end];
    let columns = elements(table, "<th ", "</th>")
        .into_iter()
        .map(|(tag, _)| attribute(tag, "data-col").expect("each column names its figure"))
        .collect();
    let body = &table[table.find("<tbody>").unwrap()..];
    let rows = elements(body, "<tr", "</tr>")
        .into_iter()
        .map(|(_, row)| {
            elements(row, "<td", "</td>")
                .into_iter()
                .map(|(tag, text)| PageCell {
                    text: unescape(text),
                    exact: attribute(tag, "data-v"),
                })
                .collect()
        })
        .collect();
    PageTable { columns, rows }
}

impl PageTable {
    fn cell(&self, row: usize, column: &str) -> &PageCell {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .unwrap_or_else(|| panic!("no column {column} in {:?}", self.columns));
        &self.rows[row][i]
    }
}

/// The shown text is the exact value rounded: as a percentage (one decimal) or with as many
/// decimals as it shows.
fn assert_rounds(cell: &PageCell, exact: f64, what: &str) {
    let (shown, scale) = match cell.text.strip_suffix('%') {
        Some(p) => (p, 100.0),
        None => (cell.text.as_str(), 1.0),
    };
    let decimals = shown.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let value: f64 = shown
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {}", cell.text));
    assert!(
        (value - exact * scale).abs() <= 0.5 * 10f64.powi(-decimals) + 1e-9,
        "{what}: {} shows {exact}",
        cell.text
    );
}

/// Every field of every `stats` row equals the page's cell in the same row and column: text
/// as text, integers as shown, other numbers exactly (`data-v`), NULL as a dash.
fn assert_table_is_stats(table: &PageTable, rows: &[Value], what: &str) {
    assert_eq!(
        table.rows.len(),
        rows.len(),
        "{what}: one page row per stats row"
    );
    assert!(!rows.is_empty(), "{what}: something to compare");
    for (i, row) in rows.iter().enumerate() {
        for (key, value) in row.as_object().unwrap() {
            let cell = table.cell(i, key);
            let at = format!("{what} row {i} {key}");
            match value {
                Value::Null => assert_eq!(cell.text, "–", "{at}"),
                Value::String(s) => assert_eq!(&cell.text, s, "{at}"),
                Value::Number(n) if n.is_i64() => {
                    assert_eq!(cell.text, n.to_string(), "{at}");
                }
                Value::Number(n) => {
                    let exact = cell
                        .exact
                        .as_deref()
                        .unwrap_or_else(|| panic!("{at}: no data-v"));
                    assert_eq!(exact.parse::<f64>().unwrap(), n.as_f64().unwrap(), "{at}");
                    assert_rounds(cell, n.as_f64().unwrap(), &at);
                }
                other => panic!("{at}: {other}"),
            }
        }
    }
}

#[test]
fn the_report_renders_in_a_real_browser_with_the_figures_of_stats() {
    let fx = synced();
    let (page, _) = report(&fx, &[]);
    let Some(browser) = chromium() else {
        eprintln!(
            "\n!!!!! SKIPPED the_report_renders_in_a_real_browser: no `chromium` on PATH. \
             Install Debian's package (apt-get install -y chromium); .ci/run does. !!!!!\n"
        );
        return;
    };

    // A screenshot that shows something: many colours, ink on a good part of the page, and
    // the providers' colours of the charts.
    let shot = fx.dir.path().join("report.png");
    run_chromium(
        &browser,
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
        ],
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1200, 3000));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb: Vec<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let colours: BTreeSet<[u8; 3]> = rgb.iter().copied().collect();
    let inked = rgb.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(colours.len() > 64, "{} colours", colours.len());
    assert!(
        inked * 20 > rgb.len(),
        "{inked} of {} pixels drawn",
        rgb.len()
    );
    for (provider, colour) in [
        ("bluejay", [0x00, 0x72, 0xb2]),
        ("cartesia", [0xe6, 0x9f, 0x00]),
    ] {
        let near = |p: &[u8; 3]| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 6);
        assert!(
            rgb.iter().filter(|p| near(p)).count() > 500,
            "{provider}'s bars"
        );
    }

    // The DOM as the browser built it.
    let dom = run_chromium(&browser, &page, &["--dump-dom"]);
    assert!(
        dom.contains("callvault report"),
        "{}",
        &dom[..dom.len().min(500)]
    );
    for id in SECTIONS {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "section {id}"
        );
    }
    let latency = stats(&fx, &["latency", "--by", "agent"]);
    let hallucination = stats(&fx, &["hallucination", "--by", "agent"]);
    // freshness, calls, goal, coverage, deletions; a latency line chart and a histogram per
    // agent and measure; a rate chart per agent with verdicts.
    let expected_charts = 5 + 2 * latency.len() + hallucination.len();
    let figures = elements(&dom, "<figure", "</figure>");
    assert_eq!(figures.len(), expected_charts);
    for (tag, figure) in &figures {
        assert_eq!(figure.matches("<svg").count(), 1, "one SVG in figure {tag}");
        assert!(figure.contains("<figcaption>"), "{tag}");
    }
    assert_eq!(dom.matches("<svg").count(), expected_charts);
    assert!(dom.contains("class=\"line p95\""), "p95 lines drawn");

    // Nothing to load: no script, stylesheet link, image, frame or font; every reference is
    // an anchor in the page; and a policy that would refuse anything else.
    assert!(dom.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'\">"
    ));
    for tag in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "@import",
        "@font-face",
        "<base",
    ] {
        assert!(!dom.contains(tag), "{tag}");
    }
    for attr in ["src=\"", "href=\"", "action=\"", "url("] {
        for (i, _) in dom.match_indices(attr) {
            let value = &dom[i + attr.len()..];
            assert!(
                value.starts_with('#'),
                "{attr}{}",
                &value[..value.len().min(60)]
            );
        }
    }

    // The tables' numbers are stats' numbers.
    assert_table_is_stats(
        &page_table(&dom, "latency-by-agent"),
        &latency,
        "latency --by agent",
    );
    assert_table_is_stats(
        &page_table(&dom, "latency-by-agent-day"),
        &stats(&fx, &["latency", "--by", "agent,day"]),
        "latency --by agent,day",
    );
    assert!(latency
        .iter()
        .any(|r| r["measure"] == "agent_latency_per_evaluation"));
    assert!(latency.iter().any(|r| r["measure"] == "tts_ttfb_per_turn"));
    assert_table_is_stats(
        &page_table(&dom, "hallucination-by-agent"),
        &hallucination,
        "hallucination --by agent",
    );
    assert_table_is_stats(
        &page_table(&dom, "hallucination-by-agent-day"),
        &stats(&fx, &["hallucination", "--by", "agent,day"]),
        "hallucination --by agent,day",
    );
    let summary = stats(&fx, &["summary", "--by", "agent"]);
    let summary_table = page_table(&dom, "summary-by-agent");
    assert_table_is_stats(&summary_table, &summary, "summary --by agent");
    for (i, row) in summary.iter().enumerate() {
        let unevaluated = row["calls"].as_i64().unwrap() - row["evaluated_calls"].as_i64().unwrap();
        assert_eq!(
            summary_table.cell(i, "unevaluated_calls").text,
            unevaluated.to_string()
        );
    }
    assert!(summary.iter().any(|r| r["goal_success_rate"].is_f64()));
    assert!(
        summary.iter().any(|r| r["evaluated_calls"] == 0),
        "unevaluated agents shown too"
    );

    // The histograms' table: the same percentiles, and min and max of the same samples.
    let spread = page_table(&dom, "latency-distribution");
    assert_eq!(spread.rows.len(), latency.len());
    for (i, row) in latency.iter().enumerate() {
        for key in ["provider", "agent_id", "measure"] {
            assert_eq!(spread.cell(i, key).text, row[key].as_str().unwrap());
        }
        assert_eq!(spread.cell(i, "n").text, row["n"].to_string());
        for key in ["p50", "p95", "p99"] {
            let exact: f64 = spread
                .cell(i, key)
                .exact
                .as_deref()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(exact, row[key].as_f64().unwrap(), "{key}");
        }
        let min: f64 = spread
            .cell(i, "min")
            .exact
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        let max: f64 = spread
            .cell(i, "max")
            .exact
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        assert!(min <= row["p50"].as_f64().unwrap() && row["p99"].as_f64().unwrap() <= max);
    }

    // Calls per day and provider: stats summary --by agent,day, summed over the agents.
    let mut per_day: BTreeMap<(String, String), i64> = BTreeMap::new();
    for row in stats(&fx, &["summary", "--by", "agent,day"]) {
        let key = (
            row["day"].as_str().unwrap().to_string(),
            row["provider"].as_str().unwrap().to_string(),
        );
        *per_day.entry(key).or_default() += row["calls"].as_i64().unwrap();
    }
    let calls = page_table(&dom, "calls-by-day");
    let days: BTreeSet<&String> = per_day.keys().map(|(d, _)| d).collect();
    assert_eq!(calls.rows.len(), days.len());
    for (i, day) in days.iter().enumerate() {
        assert_eq!(&&calls.cell(i, "day").text, day);
        for provider in ["bluejay", "cartesia", "clarion", "ultravox"] {
            let want = per_day
                .get(&((*day).clone(), provider.to_string()))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                calls.cell(i, provider).text,
                want.to_string(),
                "{day} {provider}"
            );
        }
    }
    let conn = open(&fx.db());
    let totals = page_table(&dom, "calls-by-provider");
    for (i, provider) in ["bluejay", "cartesia", "clarion", "ultravox"]
        .iter()
        .enumerate()
    {
        assert_eq!(totals.cell(i, "provider").text, *provider);
        let n = count(
            &conn,
            &format!("SELECT count(*) FROM calls WHERE provider = '{provider}'"),
        );
        assert_eq!(totals.cell(i, "calls").text, n.to_string());
    }

    // Deletions by mode and provider, as the audit trail holds them.
    let deletions = page_table(&dom, "deletions-by-mode");
    let audit = strings(
        &conn,
        "SELECT mode || ' ' || provider || ' ' || count(*) FROM deleted_calls
         GROUP BY mode, provider ORDER BY mode, provider",
    );
    let shown: Vec<String> = (0..deletions.rows.len())
        .map(|i| {
            ["mode", "provider", "calls"]
                .map(|c| deletions.cell(i, c).text.clone())
                .join(" ")
        })
        .collect();
    assert_eq!(shown, audit);

    // Freshness: every stream, with the calls `status` counts for it.
    let freshness = page_table(&dom, "freshness");
    assert_eq!(
        freshness.rows.len() as i64,
        count(&conn, "SELECT count(*) FROM sync_state")
    );
    for i in 0..freshness.rows.len() {
        let provider = &freshness.cell(i, "provider").text;
        let scope = &freshness.cell(i, "scope").text;
        let agent = if scope == "*" {
            String::new()
        } else {
            format!(" AND agent_id = '{scope}'")
        };
        let n = count(
            &conn,
            &format!("SELECT count(*) FROM calls WHERE provider = '{provider}'{agent}"),
        );
        assert_eq!(
            freshness.cell(i, "calls").text,
            n.to_string(),
            "{provider} {scope}"
        );
        assert!(freshness
            .cell(i, "last_complete_started_at")
            .text
            .starts_with("20"));
    }

    // The slowest calls of each measure, by the mean of their samples.
    for (measure, samples) in [
        (
            "agent_latency_per_evaluation",
            "SELECT call_seq, avg_agent_latency FROM evaluations WHERE avg_agent_latency IS NOT NULL",
        ),
        (
            "tts_ttfb_per_turn",
            "SELECT call_seq, tts_ttfb_ms FROM transcript_turns WHERE tts_ttfb_ms IS NOT NULL",
        ),
    ] {
        let slowest = page_table(&dom, &format!("slowest-{measure}"));
        let want = strings(
            &conn,
            &format!(
                "SELECT c.id FROM ({samples}) s JOIN calls c ON c.seq = s.call_seq
                 GROUP BY c.seq ORDER BY avg(s.{}) DESC, c.seq LIMIT 20",
                if measure == "tts_ttfb_per_turn" { "tts_ttfb_ms" } else { "avg_agent_latency" }
            ),
        );
        let shown: Vec<String> = (0..slowest.rows.len())
            .map(|i| slowest.cell(i, "call_id").text.clone())
            .collect();
        assert_eq!(shown, want, "{measure}");
    }
}

#[test]
fn filters_narrow_every_figure_and_no_call_content_is_shown() {
    let fx = synced();
    let conn = open(&fx.db());
    let days = strings(
        &conn,
        "SELECT DISTINCT substr(created_at, 1, 10) FROM calls ORDER BY 1",
    );
    let since = days[days.len() / 2].clone();

    // --since with --provider: the rows of those providers that stats --since prints.
    let narrowed = [
        "--since",
        &since,
        "--provider",
        "bluejay",
        "--provider",
        "cartesia",
    ];
    let (_, html) = report(&fx, &narrowed);
    let kept = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .filter(|r| ["bluejay", "cartesia"].contains(&r["provider"].as_str().unwrap()))
            .collect()
    };
    for (table, figure) in [
        ("latency-by-agent", "latency"),
        ("hallucination-by-agent", "hallucination"),
        ("summary-by-agent", "summary"),
    ] {
        let rows = kept(stats(&fx, &[figure, "--by", "agent", "--since", &since]));
        assert_table_is_stats(
            &page_table(&html, table),
            &rows,
            &format!("{figure} --since"),
        );
        // stats takes the same flags and keeps the same rows.
        let filtered = stats(&fx, &[&[figure, "--by", "agent"][..], &narrowed].concat());
        assert!(!filtered.is_empty());
        assert_eq!(filtered, rows, "stats {figure} --provider");
    }
    assert!(html.contains(&format!("calls created on or after {since}")));

    // --until and --agent: one agent's calls up to a day.
    let agent = strings(
        &conn,
        "SELECT agent_id FROM calls WHERE provider = 'bluejay' LIMIT 1",
    )
    .remove(0);
    let until = days[days.len() / 3].clone();
    let (_, html) = report(&fx, &["--until", &until, "--agent", &agent]);
    let summary = page_table(&html, "summary-by-agent");
    assert_eq!(summary.rows.len(), 1);
    let calls = count(
        &conn,
        &format!(
            "SELECT count(*) FROM calls WHERE agent_id = '{agent}' AND substr(created_at, 1, 10) <= '{until}'"
        ),
    );
    assert!(calls > 0);
    assert_eq!(summary.cell(0, "calls").text, calls.to_string());
    let stats_rows = stats(
        &fx,
        &[
            "summary", "--by", "agent", "--until", &until, "--agent", &agent,
        ],
    );
    assert_eq!(stats_rows.len(), 1);
    assert_eq!(stats_rows[0]["calls"].as_i64(), Some(calls));
    let per_day = page_table(&html, "calls-by-day");
    assert!(per_day.rows.iter().all(|r| r[0].text <= until));

    // No transcript text, summary or recording address of any call.
    let (_, html) = report(&fx, &[]);
    let content = strings(
        &conn,
        "SELECT text FROM transcript_turns WHERE length(text) > 24
         UNION ALL SELECT summary FROM calls WHERE length(summary) > 24
         UNION ALL SELECT recording_url FROM calls WHERE recording_url IS NOT NULL",
    );
    assert!(content.len() > 100, "{}", content.len());
    for text in &content {
        assert!(
            !html.contains(text.as_str()),
            "call content in the page: {text}"
        );
    }
}

#[test]
fn bad_report_arguments_are_usage_errors() {
    let fx = Fixture::new(sim_config(20, 1));
    let out = fx.sync_of("bluejay", &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let page = fx.dir.path().join("r.html");
    for (args, says) in [
        (
            vec!["--since", "2026-03-02", "--until", "2026-03-01"],
            "is after --until",
        ),
        (vec!["--provider", "acme"], "acme"),
        (vec!["--since", "yesterday"], "is not a date"),
    ] {
        let out = fx
            .cmd()
            .arg("report")
            .arg("--out")
            .arg(&page)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr_of(&out).contains(says),
            "{args:?}: {}",
            stderr_of(&out)
        );
        assert!(!page.exists(), "nothing written");
    }
    // An archive that is not there is an error naming it, and writes nothing.
    let out = callvault()
        .arg("--db")
        .arg(fx.dir.path().join("missing.db"))
        .arg("report")
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("missing.db"),
        "{}",
        stderr_of(&out)
    );
    assert!(!page.exists());
}

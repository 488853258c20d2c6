//! Named queries: SQL files users run by name (`callvault query slowest_calls`,
//! `callvault delete --query calls_older_than --param days=90`).
//!
//! The queries in the repository's `queries/` folder are built into the binary; a `queries/`
//! folder beside the archive or in the working directory adds more (a file there with a
//! built-in's name replaces it). Each file opens with a `--` line saying what it answers,
//! which `query --list` shows. Parameters are SQLite named parameters (`:days`, `:agent`),
//! bound from `--param name=value` and never spliced into the SQL text. This module reads
//! query files but never prints; running goes through `super::prepare_read_only`'s checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use rusqlite::types::Value;
use rusqlite::{Connection, Statement};

use super::QueryError;

/// The queries shipped with callvault: (name, SQL).
const BUILTIN: &[(&str, &str)] = &[
    ("agent_calls", include_str!("../../queries/agent_calls.sql")),
    (
        "calls_older_than",
        include_str!("../../queries/calls_older_than.sql"),
    ),
    (
        "hallucinated_calls",
        include_str!("../../queries/hallucinated_calls.sql"),
    ),
    (
        "hallucination_by_agent_day",
        include_str!("../../queries/hallucination_by_agent_day.sql"),
    ),
    (
        "latency_by_agent_day",
        include_str!("../../queries/latency_by_agent_day.sql"),
    ),
    (
        "slowest_calls",
        include_str!("../../queries/slowest_calls.sql"),
    ),
    ("tool_usage", include_str!("../../queries/tool_usage.sql")),
    (
        "unevaluated_calls",
        include_str!("../../queries/unevaluated_calls.sql"),
    ),
];

/// Where a named query came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuerySource {
    Builtin,
    File(PathBuf),
}

/// A query users run by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedQuery {
    pub name: String,
    /// The opening `--` line, without the dashes.
    pub description: String,
    pub sql: String,
    pub source: QuerySource,
    /// A file that took the name of a shipped query: callers say so, since a planted file
    /// would otherwise change what `delete --query` selects without a word.
    pub replaces_builtin: bool,
}

impl NamedQuery {
    fn new(name: &str, sql: String, source: QuerySource) -> NamedQuery {
        let description = sql
            .lines()
            .next()
            .and_then(|l| l.trim().strip_prefix("--"))
            .map(|d| d.trim().to_string())
            .unwrap_or_default();
        NamedQuery {
            name: name.to_string(),
            description,
            sql,
            source,
            replaces_builtin: false,
        }
    }

    /// Every named query: the built-in ones, then those in `dirs` (later ones win).
    pub fn list(dirs: &[PathBuf]) -> Result<Vec<NamedQuery>, QueryError> {
        let mut all: BTreeMap<String, NamedQuery> = BUILTIN
            .iter()
            .map(|(name, sql)| {
                let q = NamedQuery::new(name, (*sql).to_string(), QuerySource::Builtin);
                (name.to_string(), q)
            })
            .collect();
        for dir in dirs {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(QueryError::ReadFile {
                        path: dir.clone(),
                        source,
                    })
                }
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "sql"))
                .collect();
            files.sort();
            for path in files {
                let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                if !is_query_name(name) {
                    continue;
                }
                let sql =
                    std::fs::read_to_string(&path).map_err(|source| QueryError::ReadFile {
                        path: path.clone(),
                        source,
                    })?;
                let mut q = NamedQuery::new(name, sql, QuerySource::File(path.clone()));
                // The repository's own `queries/` (run from a checkout) changes nothing.
                q.replaces_builtin = BUILTIN
                    .iter()
                    .any(|(shipped, text)| *shipped == name && *text != q.sql);
                all.insert(name.to_string(), q);
            }
        }
        Ok(all.into_values().collect())
    }

    /// The query called `name`; an unknown name's error lists the available ones.
    pub fn find(name: &str, dirs: &[PathBuf]) -> Result<NamedQuery, QueryError> {
        let all = NamedQuery::list(dirs)?;
        let available = all.iter().map(|q| q.name.clone()).collect();
        all.into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| QueryError::UnknownQuery {
                name: name.to_string(),
                available,
            })
    }
}

impl NamedQuery {
    /// Where the query comes from, for messages: `built-in` or the file's path.
    pub fn origin(&self) -> String {
        match &self.source {
            QuerySource::Builtin => "built-in".into(),
            QuerySource::File(path) => path.display().to_string(),
        }
    }
}

/// Whether `text` looks like a query name (letters, digits, `_`, `-`) rather than SQL.
pub fn is_query_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The folders whose `queries/` add named queries: beside the archive, then the working
/// directory (which wins).
pub fn search_dirs(archive: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let beside = match archive.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("queries"),
        _ => PathBuf::from("queries"),
    };
    dirs.push(beside);
    let cwd = PathBuf::from("queries");
    if !dirs
        .iter()
        .any(|d| same_dir(d, &cwd).unwrap_or(d.as_path() == cwd.as_path()))
    {
        dirs.push(cwd);
    }
    dirs
}

fn same_dir(a: &Path, b: &Path) -> Option<bool> {
    Some(std::fs::canonicalize(a).ok()? == std::fs::canonicalize(b).ok()?)
}

/// Parses one `--param name=value` (a leading `:` on the name is allowed).
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not name=value"))?;
    let name = name.trim().trim_start_matches(':');
    if !is_query_name(name) {
        return Err(format!("'{name}' is not a parameter name"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// How a parameter's text is bound: whole numbers as integers, other numbers as reals,
/// anything else as text (write `CAST(:p AS TEXT)` in the SQL to compare as text).
fn param_value(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        Value::Integer(i)
    } else if let Some(f) = text.parse::<f64>().ok().filter(|f| f.is_finite()) {
        Value::Real(f)
    } else {
        Value::Text(text.to_string())
    }
}

/// Runs one read-only statement with named parameters bound from `params` and returns its
/// rows as a frame.
pub fn run(
    conn: &Connection,
    sql: &str,
    params: &[(String, String)],
) -> Result<DataFrame, QueryError> {
    let mut stmt = super::prepare_read_only(conn, sql)?;
    bind_params(&mut stmt, params)?;
    super::frame_of(&mut stmt)
}

/// Runs one read-only statement with named parameters bound from `params` and writes its
/// rows to `out` as they are read (see `stream`); returns how many.
pub fn write(
    conn: &Connection,
    sql: &str,
    params: &[(String, String)],
    format: super::output::OutputFormat,
    provenance: &super::output::Provenance,
    out: &mut dyn std::io::Write,
) -> Result<u64, QueryError> {
    let mut stmt = super::prepare_read_only(conn, sql)?;
    bind_params(&mut stmt, params)?;
    super::stream::write_rows(&mut stmt, format, provenance, out)
}

/// Binds `params` to a statement's named parameters (for callers that read the rows
/// themselves with `stmt.raw_query()`, like `delete --query`). Every parameter the SQL names
/// must be given, and every one given must be used.
pub fn bind_params(
    stmt: &mut Statement<'_>,
    params: &[(String, String)],
) -> Result<(), QueryError> {
    let mut used = vec![false; params.len()];
    for index in 1..=stmt.parameter_count() {
        let Some(name) = stmt.parameter_name(index).map(str::to_string) else {
            return Err(QueryError::PositionalParameter);
        };
        let bare = name.trim_start_matches([':', '@', '$']);
        let Some(pos) = params.iter().position(|(n, _)| n == bare) else {
            return Err(QueryError::MissingParameter(bare.to_string()));
        };
        used[pos] = true;
        stmt.raw_bind_parameter(index, param_value(&params[pos].1))?;
    }
    if let Some(pos) = used.iter().position(|u| !u) {
        return Err(QueryError::UnusedParameter(params[pos].0.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_description_and_prepares() {
        let dir = tempfile::tempdir().unwrap();
        let archive = crate::store::Archive::open(&dir.path().join("a.db")).unwrap();
        let conn = archive.connection();
        let all = NamedQuery::list(&[]).unwrap();
        assert_eq!(all.len(), BUILTIN.len());
        for q in &all {
            assert!(!q.description.is_empty(), "{} has no description", q.name);
            super::super::prepare_read_only(conn, &q.sql)
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
        }
    }

    #[test]
    fn folders_add_and_replace_queries_and_unknown_names_list_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.sql"), "-- Mine.\nSELECT 1 AS one").unwrap();
        std::fs::write(dir.path().join("tool_usage.sql"), "-- Replaced.\nSELECT 2").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let mine = NamedQuery::find("mine", &dirs).unwrap();
        assert_eq!(mine.description, "Mine.");
        let tools = NamedQuery::find("tool_usage", &dirs).unwrap();
        assert_eq!(tools.description, "Replaced.");
        let err = NamedQuery::find("nope", &dirs).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("mine") && err.contains("slowest_calls"));
    }

    #[test]
    fn parameters_are_bound_never_spliced() {
        let conn = Connection::open_in_memory().unwrap();
        let p = |n: &str, v: &str| (n.to_string(), v.to_string());
        let df = run(
            &conn,
            "SELECT :a + 1 AS x, :b AS y",
            &[p("a", "41"), p("b", "x'; --")],
        )
        .unwrap();
        assert_eq!(
            df.column("x").unwrap().get(0).unwrap().extract::<i64>(),
            Some(42)
        );
        assert_eq!(
            df.column("y").unwrap().get(0).unwrap().get_str(),
            Some("x'; --")
        );
        assert!(matches!(
            run(&conn, "SELECT :a", &[]),
            Err(QueryError::MissingParameter(n)) if n == "a"
        ));
        assert!(matches!(
            run(&conn, "SELECT 1", &[p("a", "1")]),
            Err(QueryError::UnusedParameter(n)) if n == "a"
        ));
        assert!(matches!(
            run(&conn, "SELECT ?", &[]),
            Err(QueryError::PositionalParameter)
        ));
        assert_eq!(parse_param(":days=90"), Ok(("days".into(), "90".into())));
        assert!(parse_param("days").is_err());
    }
}

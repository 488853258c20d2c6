"""Reads a callvault export with DuckDB and the archive with Python's sqlite3.

Usage: interop_duckdb.py EXPORT_DIR ARCHIVE.db
Prints one JSON object: row counts per table from SQLite and from the Parquet files, the
p95 agent latency per agent computed by DuckDB's quantile_cont over the Parquet files, and
the key-value metadata of one calls file and the compression codecs of the calls files.
"""

import json
import sqlite3
import sys

import duckdb

export_dir, archive = sys.argv[1], sys.argv[2]
tables = ["calls", "evaluations", "tool_calls", "call_tags"]

lite = sqlite3.connect(f"file:{archive}?mode=ro", uri=True)
sqlite_counts = {t: lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}

db = duckdb.connect()


def scan(table):
    return f"read_parquet('{export_dir}/{table}/**/*.parquet', hive_partitioning = true)"


parquet_counts = {t: db.execute(f"SELECT count(*) FROM {scan(t)}").fetchone()[0] for t in tables}

p95 = {
    f"{provider}/{agent}": value
    for provider, agent, value in db.execute(
        f"""SELECT c.provider, c.agent_id, quantile_cont(e.avg_agent_latency, 0.95)
            FROM {scan('evaluations')} e JOIN {scan('calls')} c
              ON c.provider = e.provider AND c.id = e.call_id
            WHERE e.avg_agent_latency IS NOT NULL
            GROUP BY ALL"""
    ).fetchall()
}

created_type = db.execute(
    f"SELECT typeof(created_at) FROM {scan('calls')} LIMIT 1"
).fetchone()[0]

kv = {
    key.decode(): value.decode()
    for key, value in db.execute(
        f"SELECT key, value FROM parquet_kv_metadata('{export_dir}/calls/**/*.parquet')"
    ).fetchall()
}

codecs = sorted(
    row[0]
    for row in db.execute(
        f"SELECT DISTINCT compression FROM parquet_metadata('{export_dir}/calls/**/*.parquet')"
    ).fetchall()
)

print(
    json.dumps(
        {
            "sqlite_counts": sqlite_counts,
            "parquet_counts": parquet_counts,
            "p95": p95,
            "created_at_type": created_type,
            "kv": kv,
            "codecs": codecs,
        }
    )
)

"""Query, stats and export figures, side by side in one run: callvault vs DuckDB vs pandas.

usage: python3 bench/query.py [--calls N] [--db ARCHIVE] [--bin CALLVAULT] [--runs R]

Without --db it builds an archive of N calls (default 1,000,000; 3 agents) by syncing from
`callvault sim` (concurrency 8). Then it prints:
  stats     `callvault stats latency --by agent,day` wall time (median of R runs) and peak RSS
  duckdb    the same figure (quantile_cont p50/p90/p95/p99 per provider, agent, UTC day) by
            DuckDB over the same rows (the calls and evaluations tables exported to Parquet;
            DuckDB's sqlite extension needs a download), query time only, median of R runs
  stats     `stats hallucination --by agent,day` and `stats summary --by agent`, each beside
            the same figure by DuckDB over the same Parquet rows
  pandas    pandas.read_sql of the same join from the SQLite file + groupby quantile
  export    `callvault export --tables calls` to Parquet: seconds and peak RSS, unpartitioned
            and --partition-by provider,day
and checks that callvault's and DuckDB's p95 agree on every group.
Dependencies: pip install -r bench/query-requirements.txt (duckdb, pandas).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-key"
JOIN = """SELECT c.provider, c.agent_id, substr(c.created_at, 1, 10) AS day, e.avg_agent_latency
          FROM evaluations e JOIN calls c ON c.seq = e.call_seq
          WHERE e.avg_agent_latency IS NOT NULL"""


def timed(cmd, env=None):
    """Runs cmd under GNU time; returns (seconds, peak RSS MB, stdout)."""
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M"] + cmd, capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    rss = int(re.search(r"MAXRSS_KB=(\d+)", proc.stderr).group(1)) / 1024
    return seconds, rss, proc.stdout


def build_archive(binary, calls, db):
    sim = subprocess.Popen([binary, "sim", "--addr", "127.0.0.1:0", "--calls", str(calls),
                            "--agents", "3", "--api-key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        url = sim.stdout.readline().split()[-1]
        agents = sim.stdout.readline().split()[1:]
        cmd = [binary, "--db", db, "-q", "sync", "bluejay", "--base-url", url, "--concurrency", "8"]
        for a in agents:
            cmd += ["--agent", a]
        seconds, rss, _ = timed(cmd, {"BLUEJAY_API_KEY": KEY})
        print(f"archive   {calls:,} calls synced in {seconds:.1f} s (peak RSS {rss:.0f} MB)")
    finally:
        sim.terminate()
        sim.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--db")
    ap.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "callvault"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    import duckdb
    import pandas as pd
    import sqlite3

    work = tempfile.mkdtemp(prefix="callvault-query-bench-")
    try:
        db = args.db or os.path.join(work, "bench.db")
        if not args.db:
            build_archive(args.bin, args.calls, db)
        lite = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        calls = lite.execute("SELECT count(*) FROM calls").fetchone()[0]
        evals = lite.execute("SELECT count(*) FROM evaluations").fetchone()[0]
        print(f"data      {calls:,} calls, {evals:,} evaluations ({os.path.getsize(db) / 1e9:.2f} GB)")

        runs = []
        for _ in range(args.runs):
            seconds, rss, out = timed([args.bin, "--db", db, "stats", "latency", "--by", "agent,day",
                                       "--format", "csv"])
            runs.append(seconds)
        ours = {}
        lines = out.splitlines()
        header = lines[0].split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            ours[(row["provider"], row["agent_id"], row["day"])] = float(row["p95"])
        stats_s = statistics.median(runs)
        print(f"stats     callvault stats latency --by agent,day: {stats_s:.3f} s median of {args.runs}"
              f" (peak RSS {rss:.0f} MB), {len(ours)} groups")

        # Export: the calls table, unpartitioned and partitioned, then evaluations; medians of
        # R runs (the first run of each also warms the page cache for the next).
        out_dir = os.path.join(work, "export")

        def export(label, folder, *extra):
            runs = [timed([args.bin, "--db", db, "-q", "export", "--out", folder, *extra])
                    for _ in range(args.runs)]
            seconds = [r[0] for r in runs]
            print(f"export    {label}: {statistics.median(seconds):.2f} s median of {args.runs}"
                  f" ({min(seconds):.2f}-{max(seconds):.2f}),"
                  f" peak RSS {max(r[1] for r in runs):.0f} MB")
            return statistics.median(seconds), max(r[1] for r in runs)

        export_s, export_rss = export("calls -> Parquet", out_dir, "--tables", "calls")
        size = sum(os.path.getsize(os.path.join(d, f))
                   for d, _, fs in os.walk(os.path.join(out_dir, "calls")) for f in fs)
        print(f"export    calls Parquet size: {size / 2**20:.0f} MiB")
        export("calls -> Parquet by provider,day", os.path.join(work, "export-partitioned"),
               "--tables", "calls", "--partition-by", "provider,day")
        export("evaluations -> Parquet", out_dir, "--tables", "evaluations")

        # DuckDB over the same rows (the exported Parquet files).
        duck = duckdb.connect()
        q = f"""SELECT c.provider, c.agent_id, strftime(c.created_at AT TIME ZONE 'UTC', '%Y-%m-%d') AS day,
                       count(*) AS n,
                       quantile_cont(e.avg_agent_latency, [0.5, 0.9, 0.95, 0.99]) AS q
                FROM read_parquet('{out_dir}/evaluations/*.parquet') e
                JOIN read_parquet('{out_dir}/calls/*.parquet') c
                  ON c.provider = e.provider AND c.id = e.call_id
                WHERE e.avg_agent_latency IS NOT NULL
                GROUP BY ALL ORDER BY ALL"""
        duck_runs = []
        for _ in range(args.runs):
            started = time.monotonic()
            rows = duck.execute(q).fetchall()
            duck_runs.append(time.monotonic() - started)
        duck_s = statistics.median(duck_runs)
        print(f"duckdb    same figure over Parquet: {duck_s:.3f} s median of {args.runs}, {len(rows)} groups")
        mismatched = [r for r in rows if abs(ours.get((r[0], r[1], r[2]), float("nan")) - r[4][2]) > 1e-6 * max(1, abs(r[4][2]))]
        print(f"check     p95 per group, callvault vs DuckDB: {len(rows) - len(mismatched)} agree, {len(mismatched)} differ")

        # The other two figures, by callvault and by DuckDB over the same Parquet rows.
        others = {
            "hallucination --by agent,day": (
                ["stats", "hallucination", "--by", "agent,day"],
                f"""SELECT c.provider, c.agent_id,
                           strftime(c.created_at AT TIME ZONE 'UTC', '%Y-%m-%d') AS day,
                           count(e.hallucination) AS n,
                           sum(CAST(e.hallucination AS INTEGER)) AS flagged
                    FROM read_parquet('{out_dir}/evaluations/*.parquet') e
                    JOIN read_parquet('{out_dir}/calls/*.parquet') c
                      ON c.provider = e.provider AND c.id = e.call_id
                    GROUP BY ALL HAVING count(e.hallucination) > 0 ORDER BY ALL"""),
            "summary --by agent": (
                ["stats", "summary", "--by", "agent"],
                f"""SELECT c.provider, c.agent_id, count(*) AS calls,
                           count(e.call_id) AS evaluated_calls,
                           sum(e.goal_ok) / sum(e.goal_n) AS goal_success_rate,
                           sum(e.sentiment) / sum(e.sentiment_n) AS mean_sentiment_score
                    FROM read_parquet('{out_dir}/calls/*.parquet') c
                    LEFT JOIN (
                        SELECT provider, call_id,
                               sum(CAST(goal_success AS INTEGER)) AS goal_ok,
                               count(goal_success) AS goal_n,
                               sum(sentiment_score) AS sentiment,
                               count(sentiment_score) AS sentiment_n
                        FROM read_parquet('{out_dir}/evaluations/*.parquet')
                        GROUP BY ALL) e
                      ON c.provider = e.provider AND c.id = e.call_id
                    GROUP BY ALL ORDER BY ALL"""),
        }
        other_figures = []
        for label, (command, sql) in others.items():
            runs = [timed([args.bin, "--db", db, *command, "--format", "csv"])[0]
                    for _ in range(args.runs)]
            duck_runs = []
            for _ in range(args.runs):
                started = time.monotonic()
                rows = duck.execute(sql).fetchall()
                duck_runs.append(time.monotonic() - started)
            ours_s, theirs_s = statistics.median(runs), statistics.median(duck_runs)
            print(f"stats     {label}: {ours_s:.3f} s median of {args.runs}; DuckDB over Parquet"
                  f" {theirs_s:.3f} s, {len(rows)} groups")
            other_figures.append((label, ours_s, theirs_s))

        started = time.monotonic()
        frame = pd.read_sql(JOIN, lite)
        read_s = time.monotonic() - started
        grouped = frame.groupby(["provider", "agent_id", "day"])["avg_agent_latency"].quantile(
            [0.5, 0.9, 0.95, 0.99])
        pandas_s = time.monotonic() - started
        print(f"pandas    read_sql + groupby quantile: {pandas_s:.2f} s (read_sql {read_s:.2f} s), "
              f"{len(grouped) // 4} groups")

        print()
        print(f"{'figure':<44}{'value':>12}{'target':>16}")
        print(f"{'stats latency --by agent,day (s)':<44}{stats_s:>12.3f}{'<= 1':>16}")
        print(f"{'  vs DuckDB (x)':<44}{stats_s / duck_s:>12.2f}{'<= 1.5':>16}")
        print(f"{'  vs pandas (x faster)':<44}{pandas_s / stats_s:>12.1f}{'':>16}")
        for label, ours_s, theirs_s in other_figures:
            print(f"{'stats ' + label + ' (s)':<44}{ours_s:>12.3f}{'<= 1':>16}")
            print(f"{'  vs DuckDB (x)':<44}{ours_s / theirs_s:>12.2f}{'<= 1.5':>16}")
        print(f"{'export calls to Parquet (s, median)':<44}{export_s:>12.2f}{'<= 3':>16}")
        print(f"{'export calls peak RSS (MB)':<44}{export_rss:>12.0f}{'<= 1024':>16}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

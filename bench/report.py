"""The report's figures: time, peak memory and size of `callvault report` on a large archive.

usage: python3 bench/report.py [--calls N] [--db ARCHIVE] [--bin CALLVAULT] [--runs R]

Without --db it builds an archive of N calls (default 1,000,000; 3 Bluejay agents) by syncing
from `callvault sim` (concurrency 8), as bench/query.py does. Then it prints, for
`callvault report --out FILE.html`: wall time (median of R runs, and each run), peak RSS, the
page's size and its number of charts, next to `stats latency --by agent,day` on the same
archive for scale (the report computes that figure and the others in one read).
Targets (issue 15): report of the 1,000,000-call archive in <= 3 s and <= 5 MB of HTML.
Needs only the standard library.
"""
import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from query import ROOT, build_archive, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--db")
    ap.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "callvault"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="callvault-report-bench-")
    try:
        db = args.db or os.path.join(work, "bench.db")
        if not args.db:
            build_archive(args.bin, args.calls, db)
        page = os.path.join(work, "report.html")
        runs, rss, charts = [], 0.0, "?"
        for _ in range(args.runs):
            seconds, peak, _ = timed([args.bin, "--db", db, "report", "--out", page])
            runs.append(seconds)
            rss = max(rss, peak)
        stats_runs = [timed([args.bin, "--db", db, "stats", "latency", "--by", "agent,day",
                             "--format", "csv"])[0] for _ in range(args.runs)]
        size = os.path.getsize(page)
        with open(page, encoding="utf-8") as f:
            html = f.read()
        charts = len(re.findall(r"<svg ", html))
        print(f"report    {statistics.median(runs):.2f} s median of {args.runs} "
              f"({', '.join(f'{r:.2f}' for r in runs)}), peak RSS {rss:.0f} MB, "
              f"{size / 1e6:.2f} MB of HTML, {charts} charts")
        print(f"stats     latency --by agent,day {statistics.median(stats_runs):.2f} s "
              f"(same archive, for scale)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

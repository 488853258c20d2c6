"""callvault's benchmark suite: figures, medians and ratios, measured side by side in one run.

usage: python3 bench/bench.py [--calls N] [--runs R] [--memory-calls M] [--skip-python]

Sections (each prints a line; a table with ratios closes the run):
  sync      full sync of N calls (3 agents) from `callvault sim` on loopback into a new
            archive: calls/s and peak RSS, median of R runs
  no-change a no-change incremental sync of that archive: seconds and pages fetched
  store     the store-only limit (cargo bench --bench store): parsed calls written page by page
  python    the Python baseline (bench/baseline.py: requests + sqlite3 executemany) on the
            same simulator, one agent's calls
  memory    peak RSS of syncing M calls into an empty archive, again over the full archive,
            and M more calls into an archive already holding M (RSS must not grow)
"""
import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "bench-key"


def binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "callvault")


class Sim:
    def __init__(self, calls, agents=3, seed=1):
        self.proc = subprocess.Popen(
            [binary(), "sim", "--addr", "127.0.0.1:0", "--calls", str(calls), "--agents", str(agents),
             "--seed", str(seed), "--api-key", KEY],
            stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().split()[-1]
        self.agents = self.proc.stdout.readline().split()[1:]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def run_with_rss(cmd):
    """Runs cmd under GNU time; returns (seconds, peak RSS MB, stderr)."""
    started = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M"] + cmd, capture_output=True, text=True,
                          env={**os.environ, "BLUEJAY_API_KEY": KEY})
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    rss = int(re.search(r"MAXRSS_KB=(\d+)", proc.stderr).group(1)) / 1024
    return seconds, rss, proc.stderr


def sync_cmd(db, sim, extra=()):
    cmd = [binary(), "--db", db, "-q", "sync", "bluejay", "--base-url", sim.url, "--concurrency", "8"]
    for a in sim.agents:
        cmd += ["--agent", a]
    return cmd + list(extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory-calls", type=int, default=200_000)
    ap.add_argument("--skip-python", action="store_true")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="callvault-bench-")
    rows = []
    try:
        sim = Sim(args.calls)
        rates, rsss, db = [], [], None
        for r in range(args.runs):
            db = os.path.join(work, f"sync-{r}.db")
            seconds, rss, _ = run_with_rss(sync_cmd(db, sim))
            rates.append(args.calls / seconds)
            rsss.append(rss)
            print(f"sync run {r + 1}: {seconds:.2f} s, {args.calls / seconds:,.0f} calls/s, peak RSS {rss:.0f} MB", flush=True)
        sync_rate = statistics.median(rates)
        rows.append(("full sync, calls/s (median)", f"{sync_rate:,.0f}"))
        rows.append(("full sync, peak RSS MB (max)", f"{max(rsss):.0f}"))

        seconds, rss, _ = run_with_rss(sync_cmd(db, sim))
        pages = sqlite3.connect(db).execute("SELECT pages FROM sync_runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        print(f"no-change sync: {seconds:.2f} s, {pages} pages, peak RSS {rss:.0f} MB", flush=True)
        rows.append(("no-change incremental sync, s", f"{seconds:.2f}"))
        rows.append(("no-change incremental sync, pages", str(pages)))

        python_rate = None
        if not args.skip_python:
            pydb = os.path.join(work, "python.db")
            out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "baseline.py"), sim.url, pydb,
                                  sim.agents[0]], capture_output=True, text=True,
                                 env={**os.environ, "BLUEJAY_API_KEY": KEY})
            if out.returncode != 0:
                sys.exit(out.stderr)
            m = re.search(r"calls=(\d+) seconds=([\d.]+)", out.stdout)
            python_rate = int(m.group(1)) / float(m.group(2))
            print(f"python baseline: {m.group(1)} calls in {m.group(2)} s, {python_rate:,.0f} calls/s", flush=True)
            rows.append(("python baseline, calls/s", f"{python_rate:,.0f}"))
        sim.stop()

        store = subprocess.run(["cargo", "bench", "--quiet", "--bench", "store", "--", str(min(args.calls, 300_000)),
                                str(args.runs)], capture_output=True, text=True, cwd=ROOT)
        m = re.search(r"median_calls_per_s=(\d+)", store.stdout)
        if not m:
            sys.exit(store.stdout + store.stderr)
        store_rate = int(m.group(1))
        print(store.stdout.strip(), flush=True)
        rows.append(("store-only limit, calls/s (median)", f"{store_rate:,}"))

        mem = Sim(args.memory_calls, seed=2)
        mdb = os.path.join(work, "memory.db")
        _, rss_empty, _ = run_with_rss(sync_cmd(mdb, mem))
        _, rss_full, _ = run_with_rss(sync_cmd(mdb, mem, ["--full"]))
        mem.stop()
        more = Sim(args.memory_calls, seed=3)
        _, rss_more, _ = run_with_rss(sync_cmd(mdb, more))
        more.stop()
        print(f"memory: {args.memory_calls:,} calls into an empty archive {rss_empty:.0f} MB; full resync {rss_full:.0f} MB;"
              f" {args.memory_calls:,} more into the archive holding them {rss_more:.0f} MB", flush=True)
        rows.append((f"peak RSS MB, {args.memory_calls:,} calls into empty archive", f"{rss_empty:.0f}"))
        rows.append((f"peak RSS MB, full resync of {args.memory_calls:,}", f"{rss_full:.0f}"))
        rows.append((f"peak RSS MB, {args.memory_calls:,} more into a {args.memory_calls:,} archive", f"{rss_more:.0f}"))

        if python_rate:
            rows.append(("ratio callvault / python", f"{sync_rate / python_rate:.1f}x"))
        rows.append(("ratio callvault / store-only limit", f"{sync_rate / store_rate:.2f}"))
        width = max(len(r[0]) for r in rows)
        print()
        print(f"{'figure'.ljust(width)}  value")
        for name, value in rows:
            print(f"{name.ljust(width)}  {value}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

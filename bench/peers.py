"""Peers: callvault against dlt (and the plain Python baseline), side by side on one simulator.

usage: python3 bench/peers.py [--sizes 20000,100000] [--latencies 0,50] [--runs 3] [--dlt-runs 3,1]
                              [--destinations duckdb-parquet,sqlite:20000] [--dlt-timeout SECS]
                              [--dlt-parallelized] [--skip-python] [--json OUT]
(the binary: $CALLVAULT_BIN, else $CARGO_TARGET_DIR/release/callvault, else target/release/callvault;
dlt and its extras: pip install -r bench/peers-requirements.txt; `bench/run.sh --peers` does both)

For every size N and latency L, one `callvault sim --calls N --agents 3 --latency-ms L` serves
all the contenders in turn (run 1 of each, then run 2 of each, ...), each into a new temp dir:

  callvault   `callvault --db NEW -q sync bluejay --base-url URL --agent a --agent b --agent c
              --concurrency 8` (BLUEJAY_API_KEY set): the process's wall time
  dlt DEST    dlt's `rest_api` source: one resource per agent, all three into one table
              `call_logs`; page-number paginator (`page`, base 1, `total_pages`); page_size=100,
              last=all; the key in the X-API-Key header; write_disposition merge, primary_key id;
              `pipeline.run()` into DEST. The time is that of `pipeline.run()` alone (extract +
              normalize + load), so dlt's import and start-up (about a second) are not charged.
  python      bench/baseline.py (requests + sqlite3 executemany), as bench/bench.py runs it:
              the first agent's calls only; calls/s = its calls / its seconds.

DEST is `duckdb` or `sqlite` (dlt has no destination named sqlite: it is dlt's `sqlalchemy`
destination on `sqlite:///FILE`), each with its preferred loader file format (duckdb:
insert_values, sqlalchemy: typed-jsonl), or `-FORMAT` for another: `duckdb-parquet` is
`loader_file_format="parquet"`, which dlt's duckdb docs (0.5) suggested for speed. `NAME:MAXCALLS`
runs it only up to that size and `NAME:MAXCALLS:RUNS` that many times. The default,
`duckdb-parquet,sqlite:20000`, runs dlt's fastest setup at every size and SQLite at 20,000
(a 100,000-call SQLite load would take about 4 minutes a run); plain `duckdb:20000:1` adds
dlt's default duckdb format (84 calls/s and 9.5 GB at 20,000 calls, so not by default).
`--dlt-parallelized` passes `parallelized=True` to rest_api_source (its resources extracted
in a thread pool; off by default, as in dlt).

Each contender runs in its own process under GNU time (`/usr/bin/time -f %M`) for its peak
RSS. calls/s = calls / seconds; the figure is the median of the runs, the RSS the largest.
Every dlt load is checked: its `call_logs` table must hold N rows.

Internal: `peers.py _dlt URL DEST DIR AGENT...` runs one dlt load and prints
`seconds=S rows=R`.
"""
import argparse
import json
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


def binary():
    if os.environ.get("CALLVAULT_BIN"):
        return os.environ["CALLVAULT_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "callvault")


# ---------------------------------------------------------------------------------------------
# The dlt pipeline (runs in a child process, so its RSS is its own)


def dlt_load(url, dest, workdir, agents):
    # No telemetry (this machine reaches no analytics host), every file of the pipeline under
    # workdir, nothing read from a user's ~/.dlt.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["DLT_DATA_DIR"] = os.path.join(workdir, "dlt-data")
    os.environ["DLT_PROJECT_DIR"] = workdir
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source({
        "client": {
            "base_url": url.rstrip("/") + "/",
            "auth": {"type": "api_key", "name": "X-API-Key", "api_key": KEY, "location": "header"},
            "paginator": {"type": "page_number", "base_page": 1, "page_param": "page",
                          "total_path": "total_pages"},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "table_name": "call_logs",
            "endpoint": {"data_selector": "call_logs", "params": {"page_size": 100, "last": "all"}},
        },
        "resources": [
            {"name": f"calls_{i}", "endpoint": {"path": f"v1/retrieve-call-logs/{agent}"}}
            for i, agent in enumerate(agents)
        ],
    # dlt walks its resources one page at a time in turn unless told otherwise. (In dlt 1.31.0 a
    # `parallelized` key in the config, per resource or in resource_defaults, changed nothing
    # here; the source's argument does.)
    }, parallelized=os.environ.get("PEERS_DLT_PARALLELIZED") == "1")
    engine, _, file_format = dest.partition("-")
    if engine == "duckdb":
        destination = dlt.destinations.duckdb(os.path.join(workdir, "calls.duckdb"))
    elif engine == "sqlite":
        destination = dlt.destinations.sqlalchemy(f"sqlite:///{os.path.join(workdir, 'calls.db')}")
    else:
        sys.exit(f"unknown destination {dest}")
    pipeline = dlt.pipeline(pipeline_name="peers", destination=destination, dataset_name="bluejay",
                            pipelines_dir=os.path.join(workdir, "pipelines"))
    started = time.monotonic()
    pipeline.run(source, loader_file_format=file_format or None)
    seconds = time.monotonic() - started
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name('call_logs')}")[0][0]
    print(f"seconds={seconds:.3f} rows={rows}")


# ---------------------------------------------------------------------------------------------
# The harness


class Sim:
    def __init__(self, calls, latency_ms, seed):
        self.proc = subprocess.Popen(
            [binary(), "sim", "--addr", "127.0.0.1:0", "--calls", str(calls), "--agents", "3",
             "--seed", str(seed), "--api-key", KEY, "--latency-ms", str(latency_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().split()[-1]
        self.agents = self.proc.stdout.readline().split()[1:]
        if not self.url.startswith("http") or len(self.agents) != 3:
            sys.exit(f"the simulator did not start: {self.url!r} {self.agents!r}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Timeout(Exception):
    pass


def timed(cmd, timeout=None):
    """Runs cmd under GNU time: (wall seconds, peak RSS MB, stdout)."""
    started = time.monotonic()
    try:
        proc = subprocess.run(["/usr/bin/time", "-f", "MAXRSS_KB=%M"] + cmd, capture_output=True, text=True,
                              env={**os.environ, "BLUEJAY_API_KEY": KEY}, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Timeout()
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr[-4000:]}")
    rss = int(re.findall(r"MAXRSS_KB=(\d+)", proc.stderr)[-1]) / 1024
    return seconds, rss, proc.stdout


def run_callvault(sim, calls, work):
    db = os.path.join(work, "callvault.db")
    cmd = [binary(), "--db", db, "-q", "sync", "bluejay", "--base-url", sim.url, "--concurrency", "8"]
    for a in sim.agents:
        cmd += ["--agent", a]
    seconds, rss, _ = timed(cmd)
    return calls, seconds, rss


def run_dlt(sim, calls, work, dest, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "_dlt", sim.url, dest, work] + sim.agents
    _, rss, out = timed(cmd, timeout)
    m = re.search(r"seconds=([\d.]+) rows=(\d+)", out)
    if not m:
        sys.exit(f"dlt printed no figures:\n{out}")
    if int(m.group(2)) != calls:
        sys.exit(f"dlt {dest} loaded {m.group(2)} rows into call_logs, not {calls}")
    return calls, float(m.group(1)), rss


def run_python(sim, calls, work):
    cmd = [sys.executable, os.path.join(ROOT, "bench", "baseline.py"), sim.url, os.path.join(work, "python.db"),
           sim.agents[0]]
    _, rss, out = timed(cmd)
    m = re.search(r"calls=(\d+) seconds=([\d.]+)", out)
    return int(m.group(1)), float(m.group(2)), rss


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def parse_destinations(spec, default_runs):
    """`NAME[:MAXCALLS[:RUNS]],...` -> [(name, max calls or None, runs per size or None)]."""
    out = []
    for item in filter(None, spec.split(",")):
        name, *rest = item.split(":")
        engine, _, fmt = name.partition("-")
        if engine not in ("duckdb", "sqlite") or fmt not in ("", "parquet", "jsonl", "insert_values", "typed-jsonl"):
            sys.exit(f"unknown destination {name} (duckdb or sqlite, optionally -parquet, -jsonl, ...)")
        cap = int(rest[0]) if rest and rest[0] else None
        runs = [int(rest[1])] if len(rest) > 1 else default_runs
        out.append((name, cap, runs))
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_dlt":
        url, dest, workdir = sys.argv[2:5]
        dlt_load(url, dest, workdir, sys.argv[5:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="20000,100000", help="calls in the simulator, comma-separated")
    ap.add_argument("--latencies", default="0,50", help="the simulator's --latency-ms values")
    ap.add_argument("--runs", type=int, default=3, help="runs of callvault and the Python baseline")
    ap.add_argument("--dlt-runs", default="3,1", help="runs of each dlt destination: one number, or one per size")
    ap.add_argument("--dlt-timeout", type=float, default=900, help="seconds before a dlt run is stopped")
    ap.add_argument("--destinations", default="duckdb-parquet,sqlite:20000",
                    help="dlt destinations NAME[:MAXCALLS[:RUNS]]: duckdb or sqlite, with -FORMAT for a loader"
                         " file format other than the destination's preferred one")
    ap.add_argument("--dlt-parallelized", action="store_true",
                    help="rest_api_source(parallelized=True): its three resources extracted in a thread pool (off by default, as in dlt)")
    ap.add_argument("--skip-python", action="store_true")
    ap.add_argument("--json", help="write every run's figures here")
    args = ap.parse_args()
    if args.dlt_parallelized:
        os.environ["PEERS_DLT_PARALLELIZED"] = "1"
    sizes = [int(s) for s in args.sizes.split(",")]
    latencies = [int(s) for s in args.latencies.split(",")]
    dlt_runs = [int(s) for s in args.dlt_runs.split(",")]
    dests = parse_destinations(args.destinations, dlt_runs)
    if not os.path.exists(binary()):
        sys.exit(f"no binary at {binary()} (build it, or set CALLVAULT_BIN)")
    import dlt  # fail early, before any simulator starts
    versions = {"callvault": subprocess.run([binary(), "--version"], capture_output=True, text=True).stdout.strip(),
                "python": sys.version.split()[0], "dlt": dlt.__version__}
    for mod in ("duckdb", "sqlalchemy", "pyarrow", "requests"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), flush=True)
    print("load average at the start: %.2f %.2f %.2f" % os.getloadavg(), flush=True)

    names = ["callvault"] + [f"dlt {d}" for d, _, _ in dests] + ([] if args.skip_python else ["python"])
    results, runs_log = [], []
    started_all = time.monotonic()
    for si, size in enumerate(sizes):
        for latency in latencies:
            sim = Sim(size, latency, seed=1)
            figures = {n: [] for n in names}
            plan = {"callvault": (args.runs, lambda w: run_callvault(sim, size, w))}
            for d, cap, runs in dests:
                if cap is None or size <= cap:
                    n = runs[min(si, len(runs) - 1)]
                    plan[f"dlt {d}"] = (n, lambda w, d=d: run_dlt(sim, size, w, d, args.dlt_timeout))
            if not args.skip_python:
                plan["python"] = (args.runs, lambda w: run_python(sim, size, w))
            timed_out = set()
            try:
                for r in range(max(n for n, _ in plan.values())):
                    for name, (n, fn) in plan.items():  # one run of each in turn, so noise hits all alike
                        if r >= n or name in timed_out:
                            continue
                        work = tempfile.mkdtemp(prefix="callvault-peers-")
                        try:
                            calls, seconds, rss = fn(work)
                        except Timeout:
                            timed_out.add(name)
                            print(f"{size:>7,} calls {latency:>2} ms  {name:<18} run {r + 1}: stopped after"
                                  f" {args.dlt_timeout:.0f} s", flush=True)
                            continue
                        finally:
                            shutil.rmtree(work, ignore_errors=True)
                        rate = calls / seconds
                        figures[name].append((rate, rss))
                        runs_log.append({"size": size, "latency_ms": latency, "contender": name, "run": r + 1,
                                         "calls": calls, "seconds": seconds, "calls_per_s": rate, "rss_mb": rss})
                        print(f"{size:>7,} calls {latency:>2} ms  {name:<18} run {r + 1}: {calls:,} calls in"
                              f" {seconds:7.2f} s, {rate:7,.0f} calls/s, peak RSS {rss:6,.0f} MB", flush=True)
                        if args.json:  # every run as it ends, so a run that fails later loses nothing
                            with open(args.json, "w") as f:
                                json.dump({"versions": versions, "args": vars(args), "runs": runs_log}, f, indent=1)
            finally:
                sim.stop()
            row = {"size": size, "latency_ms": latency}
            for name, runs in figures.items():
                row[name] = None if not runs else {
                    "calls_per_s": statistics.median(r for r, _ in runs),
                    "rss_mb": max(m for _, m in runs), "runs": len(runs)}
            results.append(row)

    print(f"\n(all of it took {time.monotonic() - started_all:.0f} s; load average at the end:"
          " %.2f %.2f %.2f)\n" % os.getloadavg())
    header = ["calls", "latency"] + names + ["callvault / best dlt"] + (["callvault / python"] if not args.skip_python else [])
    lines = []
    for row in results:
        rate = {n: (row.get(n) or {}).get("calls_per_s") for n in names}
        cv = rate["callvault"]
        dlt_rates = [(rate[n], n) for n in names if n.startswith("dlt ") and rate[n]]
        best = max(dlt_rates) if dlt_rates else None
        row["best_dlt"] = best[1] if best else None
        row["ratio_best_dlt"] = cv / best[0] if best else None
        row["ratio_python"] = cv / rate["python"] if rate.get("python") else None
        line = [f"{row['size']:,}", f"{row['latency_ms']} ms"]
        for n in names:
            f = row.get(n)
            line.append("-" if not f else f"{f['calls_per_s']:,.0f} ({f['rss_mb']:,.0f} MB)")
        line.append(f"{row['ratio_best_dlt']:.1f}x ({best[1][4:]})" if best else "-")
        if not args.skip_python:
            line.append(f"{row['ratio_python']:.1f}x" if row["ratio_python"] else "-")
        lines.append(line)
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(l, widths)) + " |")
    print("\ncalls/s (peak RSS): median calls/s of the runs, largest peak RSS of the runs. Runs: "
          + "; ".join(f"{row['size']:,} at {row['latency_ms']} ms: "
                      + ", ".join(f"{n} {row[n]['runs']}" for n in names if row.get(n)) for row in results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"versions": versions, "args": vars(args), "results": results, "runs": runs_log}, f, indent=1)


if __name__ == "__main__":
    main()

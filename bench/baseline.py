"""The Python baseline: Bluejay's call logs mirrored the way a user would write it from the
provider's example -- `requests` page by page, `sqlite3` `executemany` into the same tables
(callvault's schema.sql), one commit per page.

usage: baseline.py BASE_URL DB AGENT [AGENT ...]   (key in $BLUEJAY_API_KEY)
prints: calls=N seconds=S
"""
import json
import os
import sqlite3
import sys
import time

import requests


def main():
    base, db, agents = sys.argv[1], sys.argv[2], sys.argv[3:]
    here = os.path.dirname(os.path.abspath(__file__))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with open(os.path.join(here, "..", "schema.sql")) as f:
        conn.executescript(f.read())
    session = requests.Session()
    session.headers["X-API-Key"] = os.environ["BLUEJAY_API_KEY"]
    started = time.monotonic()
    total = 0
    for agent in agents:
        page = 1
        while True:
            r = session.get(
                f"{base}/v1/retrieve-call-logs/{agent}",
                params={"page": page, "page_size": 100, "last": "all"},
                timeout=60,
            )
            r.raise_for_status()
            body = r.json()
            logs = body.get("call_logs") or []
            store(conn, logs)
            total += len(logs)
            if page >= body["total_pages"]:
                break
            page += 1
    print(f"calls={total} seconds={time.monotonic() - started:.3f}")


def store(conn, logs):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    calls, evals, parts, tools, events, tags, metrics = [], [], [], [], [], [], []
    for c in logs:
        cid = c["id"]
        calls.append((
            "bluejay", cid, c.get("agent_id"), c.get("external_agent_id"), c.get("status"),
            c.get("created_at"), c.get("start_time_utc"), c.get("duration_ms"),
            c.get("call_direction"), c.get("interface"), c.get("recording_url"),
            c.get("transcript_url"), c.get("conversation_ended_by"),
            json.dumps(c.get("metadata")), json.dumps(c), 0, now,
        ))
        for i, p in enumerate(c.get("participants") or []):
            parts.append(("bluejay", cid, i, p.get("role"), p.get("spoke_first"), p.get("name"), p.get("phone_number")))
        for i, t in enumerate(c.get("tool_calls") or []):
            tools.append(("bluejay", cid, i, t.get("name"), t.get("start_offset_ms"), t.get("description"),
                          json.dumps(t.get("parameters")), json.dumps(t.get("output"))))
        for i, e in enumerate(c.get("events") or []):
            events.append(("bluejay", cid, i, e.get("title"), e.get("description"), e.get("start_offset_ms"),
                           e.get("end_offset_ms"), json.dumps(e.get("tags")), json.dumps(e.get("metadata"))))
        for t in set(c.get("tags") or []):
            tags.append(("bluejay", cid, t))
        for e in c.get("evaluations") or []:
            lat = e.get("latency") or {}
            evals.append((
                "bluejay", e["id"], cid, e.get("created_at"), e.get("hallucination"),
                e.get("hallucination_reasoning"), e.get("redundancy"), e.get("goal_success"),
                lat.get("avg_agent_latency", e.get("avg_agent_latency")), lat.get("p50_agent_latency"),
                lat.get("p90_agent_latency"), lat.get("p95_agent_latency"), lat.get("p99_agent_latency"),
                lat.get("max_agent_latency"), e.get("sentiment_label"), e.get("sentiment_score"),
                e.get("num_turns"), json.dumps(e),
            ))
            for i, m in enumerate(e.get("custom_metrics") or []):
                metrics.append(("bluejay", cid, e["id"], i, m.get("name"), m.get("response_type"), m.get("response_value")))
    with conn:
        conn.executemany(
            "INSERT OR REPLACE INTO calls (provider, id, agent_id, external_agent_id, status, created_at,"
            " start_time, duration_ms, call_direction, interface, recording_url, transcript_url, ended_by,"
            " metadata_json, raw_json, raw_hash, synced_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", calls)
        conn.executemany(
            "INSERT OR REPLACE INTO evaluations (provider, id, call_id, created_at, hallucination,"
            " hallucination_reasoning, redundancy, goal_success, avg_agent_latency, p50_agent_latency,"
            " p90_agent_latency, p95_agent_latency, p99_agent_latency, max_agent_latency, sentiment_label,"
            " sentiment_score, num_turns, raw_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", evals)
        conn.executemany("INSERT OR REPLACE INTO participants VALUES (?,?,?,?,?,?,?)", parts)
        conn.executemany("INSERT OR REPLACE INTO tool_calls VALUES (?,?,?,?,?,?,?,?)", tools)
        conn.executemany("INSERT OR REPLACE INTO call_events VALUES (?,?,?,?,?,?,?,?,?)", events)
        conn.executemany("INSERT OR REPLACE INTO call_tags VALUES (?,?,?)", tags)
        conn.executemany(
            "INSERT OR REPLACE INTO custom_metrics (provider, call_id, evaluation_id, idx, name,"
            " response_type, response_value) VALUES (?,?,?,?,?,?,?)", metrics)


if __name__ == "__main__":
    main()

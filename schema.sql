-- callvault archive schema, version 1 (PRAGMA user_version = 1).
-- Applied on open of an empty archive. Later changes are numbered migrations in
-- src/store/migrations.rs; this file is never edited once shipped.
--
-- Times are RFC 3339 UTC text with milliseconds (2026-11-02T09:15:00.000Z), so they sort
-- as text. Booleans are 0/1/NULL. Latencies are milliseconds as the provider gives them.
-- raw_json keeps every record exactly as received; typed columns are derived from it.
-- calls and evaluations keep rowids: their rows are large, which WITHOUT ROWID handles badly.

CREATE TABLE calls (
    provider        TEXT NOT NULL,
    id              TEXT NOT NULL,
    agent_id        TEXT,
    external_agent_id TEXT,
    status          TEXT,
    created_at      TEXT,
    start_time      TEXT,
    end_time        TEXT,
    duration_ms     INTEGER,
    call_direction  TEXT,
    interface       TEXT,
    recording_url   TEXT,
    transcript_url  TEXT,
    summary         TEXT,
    end_reason      TEXT,
    ended_by        TEXT,
    redacted_at     TEXT,
    metadata_json   TEXT,
    annotations_json TEXT,
    extra_metrics_json TEXT,
    raw_json        TEXT NOT NULL,
    raw_hash        INTEGER NOT NULL,
    -- 1 once the provider will not change the call any more (final status, evaluated).
    settled         INTEGER NOT NULL DEFAULT 0,
    synced_at       TEXT NOT NULL,
    PRIMARY KEY (provider, id)
);
CREATE INDEX calls_agent_created ON calls (provider, agent_id, created_at);
CREATE INDEX calls_unsettled ON calls (provider, agent_id) WHERE settled = 0;

CREATE TABLE evaluations (
    provider        TEXT NOT NULL,
    id              TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    created_at      TEXT,
    hallucination   INTEGER,
    hallucination_reasoning TEXT,
    redundancy      INTEGER,
    redundancy_reasoning TEXT,
    goal_success    INTEGER,
    goal_reasoning  TEXT,
    agent_speak_percentage REAL,
    avg_agent_latency REAL,
    p50_agent_latency REAL,
    p90_agent_latency REAL,
    p95_agent_latency REAL,
    p99_agent_latency REAL,
    max_agent_latency REAL,
    avg_filler_ignored_latency REAL,
    p50_filler_ignored_latency REAL,
    p90_filler_ignored_latency REAL,
    p95_filler_ignored_latency REAL,
    p99_filler_ignored_latency REAL,
    num_turns       INTEGER,
    call_summary    TEXT,
    custom_evals_json TEXT,
    custom_evals_success_rate REAL,
    pronunciation_score REAL,
    pronunciation_reasoning TEXT,
    sentiment_label TEXT,
    sentiment_score REAL,
    sentiment_scores_json TEXT,
    raw_json        TEXT NOT NULL,
    PRIMARY KEY (provider, id),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
);
-- Finds a call's evaluations; carrying the agent latency makes it cover `stats latency`,
-- which then reads this narrow index instead of the wide evaluation rows.
CREATE INDEX evaluations_call ON evaluations (provider, call_id, avg_agent_latency);

CREATE TABLE participants (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    role            TEXT,
    spoke_first     INTEGER,
    name            TEXT,
    phone_number    TEXT,
    PRIMARY KEY (provider, call_id, idx),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE tool_calls (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    name            TEXT,
    start_offset_ms INTEGER,
    description     TEXT,
    parameters_json TEXT,
    output_json     TEXT,
    PRIMARY KEY (provider, call_id, idx),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE call_events (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    title           TEXT,
    description     TEXT,
    start_offset_ms INTEGER,
    end_offset_ms   INTEGER,
    tags_json       TEXT,
    metadata_json   TEXT,
    PRIMARY KEY (provider, call_id, idx),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE call_tags (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    tag             TEXT NOT NULL,
    PRIMARY KEY (provider, call_id, tag),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Custom metrics of an evaluation, one row each (evaluation_id names the evaluation).
CREATE TABLE custom_metrics (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    evaluation_id   TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    name            TEXT,
    description     TEXT,
    response_type   TEXT,
    response_value  TEXT,
    reasoning       TEXT,
    min_value       REAL,
    max_value       REAL,
    category        TEXT,
    tags_json       TEXT,
    scoring_guidance TEXT,
    enum_options_json TEXT,
    PRIMARY KEY (provider, call_id, evaluation_id, idx),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- Per-turn transcript text and timings, for providers that return them.
CREATE TABLE transcript_turns (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    role            TEXT,
    text            TEXT,
    start_ms        INTEGER,
    end_ms          INTEGER,
    stt_ttfb_ms     REAL,
    tts_ttfb_ms     REAL,
    PRIMARY KEY (provider, call_id, idx),
    FOREIGN KEY (provider, call_id) REFERENCES calls (provider, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- One row per stream (provider + scope, e.g. an agent). checkpoint_json is owned by the
-- provider's adapter; last_complete_started_at is when the last drift-free walk began.
CREATE TABLE sync_state (
    provider        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    base_url        TEXT NOT NULL,
    checkpoint_json TEXT,
    -- Set while a walk is under way; an interrupted walk resumes from its committed pages.
    walk_started_at TEXT,
    last_complete_started_at TEXT,
    last_synced_at  TEXT,
    PRIMARY KEY (provider, scope)
) WITHOUT ROWID;

-- Pages of the walk in progress already committed, so an interrupted walk can resume.
CREATE TABLE sync_walk_pages (
    provider        TEXT NOT NULL,
    scope           TEXT NOT NULL,
    cursor_json     TEXT NOT NULL,
    calls           INTEGER NOT NULL,
    walk_size       INTEGER,
    PRIMARY KEY (provider, scope, cursor_json)
) WITHOUT ROWID;

CREATE TABLE sync_runs (
    id              INTEGER PRIMARY KEY,
    provider        TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    outcome         TEXT NOT NULL CHECK (outcome IN ('running', 'complete', 'partial', 'failed', 'interrupted')),
    calls_new       INTEGER NOT NULL DEFAULT 0,
    calls_updated   INTEGER NOT NULL DEFAULT 0,
    calls_unchanged INTEGER NOT NULL DEFAULT 0,
    evaluations     INTEGER NOT NULL DEFAULT 0,
    pages           INTEGER NOT NULL DEFAULT 0,
    error           TEXT
);

-- A frozen delete plan. state: planned, running, complete, partial (some items failed),
-- stopped (a fatal error left items pending). pid is the process running it, while it runs.
CREATE TABLE delete_jobs (
    id              INTEGER PRIMARY KEY,
    created_at      TEXT NOT NULL,
    selection       TEXT NOT NULL,
    params_json     TEXT,
    mode            TEXT NOT NULL,
    state           TEXT NOT NULL,
    planned         INTEGER NOT NULL DEFAULT 0,
    pid             INTEGER,
    finished_at     TEXT
);

CREATE TABLE delete_items (
    job_id          INTEGER NOT NULL REFERENCES delete_jobs (id),
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    -- Kept for the audit row, which must not depend on the call still being archived.
    agent_id        TEXT,
    base_url        TEXT,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'gone', 'skipped', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    http_status     INTEGER,
    last_error      TEXT,
    -- 1 for a failure that may succeed if sent again (5xx, timeouts): `--resume` retries it.
    retryable       INTEGER NOT NULL DEFAULT 0,
    finished_at     TEXT,
    PRIMARY KEY (job_id, provider, call_id)
);
CREATE INDEX delete_items_state ON delete_items (job_id, state);

-- The audit trail of calls removed from the archive; it holds no call content.
CREATE TABLE deleted_calls (
    provider        TEXT NOT NULL,
    call_id         TEXT NOT NULL,
    agent_id        TEXT,
    mode            TEXT NOT NULL,
    job_id          INTEGER,
    deleted_at      TEXT NOT NULL
);
CREATE INDEX deleted_calls_call ON deleted_calls (provider, call_id);

//! Numbered schema changes. `schema.sql` is version 1 and is never edited; each step here
//! takes an archive from one version to the next, and a new archive runs them all after
//! `schema.sql`. A step runs in one transaction with its `user_version` bump, so an archive is
//! always at exactly one version.

/// `STEPS[i]` takes an archive from version `i + 1` to `i + 2`.
pub(crate) const STEPS: &[&str] = &[
    // 2: every typed column of `calls` in one index. A calls row also holds its raw JSON
    // (about 3 KB), so scanning typed columns read the whole table; a scan that needs only
    // typed columns (export without raw JSON, most analytics) now reads this index, about a
    // seventh of the size. It leads with (provider, created_at), which also serves time-range
    // selections such as retention, and keeps inserts near the newest entries.
    "CREATE INDEX calls_columns ON calls (
        provider, created_at, id, agent_id, external_agent_id, status, start_time, end_time,
        duration_ms, call_direction, interface, recording_url, transcript_url, summary,
        end_reason, ended_by, redacted_at, metadata_json, annotations_json,
        extra_metrics_json, settled, synced_at
    );",
    // 3: a call's parts are stored in the order calls arrive. Each call gets `seq`, one more
    // than the largest so far (unlike the rowid, VACUUM keeps it), and the tables of its parts
    // are keyed by (call_seq, ...) instead of the random (provider, call_id): a sync appends
    // them at the end of each table instead of writing into pages all over the file, which
    // had cut the store's rate from about 3,500 to 1,300 calls a second by 300,000 calls.
    // provider and call_id stay in every row, for joins. Evaluations keep their own
    // (provider, id) key and the (provider, call_id) index for lookups by call, and also get
    // call_seq: `stats` then meets each evaluation with its call's group by number
    // (evaluations_seq against calls_agent_created), not by comparing id strings, and reads
    // the figures it needs from that index rather than from rows carrying raw JSON.
    "ALTER TABLE calls ADD COLUMN seq INTEGER;
    UPDATE calls SET seq = rowid;
    CREATE UNIQUE INDEX calls_seq ON calls (seq);
    DROP INDEX calls_agent_created;
    CREATE INDEX calls_agent_created ON calls (provider, agent_id, created_at, seq);
    ALTER TABLE evaluations ADD COLUMN call_seq INTEGER;
    UPDATE evaluations SET call_seq = (
        SELECT c.seq FROM calls c WHERE c.provider = evaluations.provider AND c.id = evaluations.call_id
    );
    CREATE INDEX evaluations_seq ON evaluations (
        call_seq, avg_agent_latency, hallucination, goal_success, redundancy, sentiment_score
    );
    CREATE TABLE participants_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        role TEXT,
        spoke_first INTEGER,
        name TEXT,
        phone_number TEXT,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, idx),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO participants_v3 (provider, call_id, idx, role, spoke_first, name, phone_number, call_seq)
        SELECT t.provider, t.call_id, t.idx, t.role, t.spoke_first, t.name, t.phone_number, c.seq
        FROM calls c JOIN participants t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE participants;
    ALTER TABLE participants_v3 RENAME TO participants;
    CREATE TABLE tool_calls_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        name TEXT,
        start_offset_ms INTEGER,
        description TEXT,
        parameters_json TEXT,
        output_json TEXT,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, idx),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO tool_calls_v3 (provider, call_id, idx, name, start_offset_ms, description, parameters_json, output_json, call_seq)
        SELECT t.provider, t.call_id, t.idx, t.name, t.start_offset_ms, t.description, t.parameters_json, t.output_json, c.seq
        FROM calls c JOIN tool_calls t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE tool_calls;
    ALTER TABLE tool_calls_v3 RENAME TO tool_calls;
    CREATE TABLE call_events_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        title TEXT,
        description TEXT,
        start_offset_ms INTEGER,
        end_offset_ms INTEGER,
        tags_json TEXT,
        metadata_json TEXT,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, idx),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO call_events_v3 (provider, call_id, idx, title, description, start_offset_ms, end_offset_ms, tags_json, metadata_json, call_seq)
        SELECT t.provider, t.call_id, t.idx, t.title, t.description, t.start_offset_ms, t.end_offset_ms, t.tags_json, t.metadata_json, c.seq
        FROM calls c JOIN call_events t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE call_events;
    ALTER TABLE call_events_v3 RENAME TO call_events;
    CREATE TABLE call_tags_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        tag TEXT NOT NULL,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, tag),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO call_tags_v3 (provider, call_id, tag, call_seq)
        SELECT t.provider, t.call_id, t.tag, c.seq
        FROM calls c JOIN call_tags t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE call_tags;
    ALTER TABLE call_tags_v3 RENAME TO call_tags;
    CREATE TABLE custom_metrics_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        evaluation_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        name TEXT,
        description TEXT,
        response_type TEXT,
        response_value TEXT,
        reasoning TEXT,
        min_value REAL,
        max_value REAL,
        category TEXT,
        tags_json TEXT,
        scoring_guidance TEXT,
        enum_options_json TEXT,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, evaluation_id, idx),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO custom_metrics_v3 (provider, call_id, evaluation_id, idx, name, description, response_type, response_value, reasoning, min_value, max_value, category, tags_json, scoring_guidance, enum_options_json, call_seq)
        SELECT t.provider, t.call_id, t.evaluation_id, t.idx, t.name, t.description, t.response_type, t.response_value, t.reasoning, t.min_value, t.max_value, t.category, t.tags_json, t.scoring_guidance, t.enum_options_json, c.seq
        FROM calls c JOIN custom_metrics t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE custom_metrics;
    ALTER TABLE custom_metrics_v3 RENAME TO custom_metrics;
    CREATE TABLE transcript_turns_v3 (
        provider TEXT NOT NULL,
        call_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        role TEXT,
        text TEXT,
        start_ms INTEGER,
        end_ms INTEGER,
        stt_ttfb_ms REAL,
        tts_ttfb_ms REAL,
        call_seq INTEGER NOT NULL,
        PRIMARY KEY (call_seq, idx),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    ) WITHOUT ROWID;
    INSERT INTO transcript_turns_v3 (provider, call_id, idx, role, text, start_ms, end_ms, stt_ttfb_ms, tts_ttfb_ms, call_seq)
        SELECT t.provider, t.call_id, t.idx, t.role, t.text, t.start_ms, t.end_ms, t.stt_ttfb_ms, t.tts_ttfb_ms, c.seq
        FROM calls c JOIN transcript_turns t ON t.provider = c.provider AND t.call_id = c.id
        ORDER BY c.seq;
    DROP TABLE transcript_turns;
    ALTER TABLE transcript_turns_v3 RENAME TO transcript_turns;",
    // 4: sources. A source is one account of a provider at one address (`sources`); each
    // stream and run belongs to one, and each call remembers the source that last served it
    // (`calls.source_id`), so its delete goes there and nowhere else. Before this, one address
    // per provider was kept (the newest sync's): the calls archived then belong to that
    // address, which gets the lowest source id of its provider, and a NULL `source_id` reads
    // as that source (rewriting every calls row here would take minutes on a large archive).
    // Streams are keyed by source; a committed page also keeps the cursors it revealed, so
    // an interrupted cursor walk resumes its chain (rows from before have none and are
    // fetched again). `high_water` keeps how far a provider's ordering has been mirrored.
    "CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        provider TEXT NOT NULL,
        account TEXT NOT NULL,
        base_url TEXT NOT NULL,
        key_env TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (provider, account, base_url)
    );
    INSERT INTO sources (provider, account, base_url, key_env, created_at)
        SELECT provider, 'default', base_url, upper(provider) || '_API_KEY',
               min(coalesce(last_synced_at, walk_started_at, ''))
        FROM sync_state GROUP BY provider, base_url
        ORDER BY provider, max(coalesce(last_synced_at, '')) DESC;
    ALTER TABLE calls ADD COLUMN source_id INTEGER REFERENCES sources (id);
    CREATE TABLE sync_state_v4 (
        source_id INTEGER NOT NULL REFERENCES sources (id),
        scope TEXT NOT NULL,
        provider TEXT NOT NULL,
        checkpoint_json TEXT,
        walk_started_at TEXT,
        walk_high_water TEXT,
        last_complete_started_at TEXT,
        high_water TEXT,
        last_synced_at TEXT,
        PRIMARY KEY (source_id, scope)
    ) WITHOUT ROWID;
    INSERT INTO sync_state_v4 (source_id, scope, provider, checkpoint_json, walk_started_at,
                               last_complete_started_at, last_synced_at)
        SELECT o.id, s.scope, s.provider, s.checkpoint_json, s.walk_started_at,
               s.last_complete_started_at, s.last_synced_at
        FROM sync_state s JOIN sources o ON o.provider = s.provider AND o.base_url = s.base_url;
    CREATE TABLE sync_walk_pages_v4 (
        source_id INTEGER NOT NULL,
        scope TEXT NOT NULL,
        cursor_json TEXT NOT NULL,
        calls INTEGER NOT NULL,
        walk_size INTEGER,
        next_json TEXT,
        PRIMARY KEY (source_id, scope, cursor_json)
    ) WITHOUT ROWID;
    INSERT INTO sync_walk_pages_v4 (source_id, scope, cursor_json, calls, walk_size)
        SELECT o.id, p.scope, p.cursor_json, p.calls, p.walk_size
        FROM sync_walk_pages p
        JOIN sync_state s ON s.provider = p.provider AND s.scope = p.scope
        JOIN sources o ON o.provider = s.provider AND o.base_url = s.base_url;
    DROP TABLE sync_walk_pages;
    ALTER TABLE sync_walk_pages_v4 RENAME TO sync_walk_pages;
    DROP TABLE sync_state;
    ALTER TABLE sync_state_v4 RENAME TO sync_state;
    ALTER TABLE sync_runs ADD COLUMN source_id INTEGER REFERENCES sources (id);
    ALTER TABLE sync_runs ADD COLUMN deleted_upstream INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE delete_items ADD COLUMN key_env TEXT;",
    // 5: what `export --incremental` needs to know without reading every call. The archive
    // gets an identity (`archive_meta.archive_id`, random), which a lake's manifest keeps so a
    // lake is never updated from another archive. `partition_versions` holds one counter per
    // export partition, (provider, UTC day of the call's `created_at`; '' for none): every
    // write that changes what a partition exports (a call archived, updated, removed,
    // redacted, its recording cleared, an evaluation moving between calls) adds one to its
    // partition's counter in the same transaction, and a lake rewrites the partitions whose
    // counter moved since it last looked. A counter per partition rather than a row per change:
    // a sync's page adds no rows, only bumps a row of a table of a few hundred. Archived calls
    // start every partition at 1.
    "CREATE TABLE archive_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO archive_meta (key, value) VALUES ('archive_id', lower(hex(randomblob(16))));
    CREATE TABLE partition_versions (
        provider TEXT NOT NULL,
        day TEXT NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (provider, day)
    ) WITHOUT ROWID;
    INSERT INTO partition_versions (provider, day, version)
        SELECT provider, coalesce(substr(created_at, 1, 10), ''), 1 FROM calls GROUP BY 1, 2;",
    // 6: an evaluation's JSON is read from its call's. Every evaluation is part of its call's
    // JSON (Bluejay's `evaluations[i]`, Clarion's `analysis`), and a call's evaluations are
    // rewritten whenever the call is, so `evaluations.raw_json` was a second copy: about 2.4 KB
    // of the 11 KB a call took at 1,000,000 calls. A row now keeps `json_path`, where its JSON
    // is in the call's `raw_json`; the view `evaluation_json` reads it there. An evaluation
    // whose call's JSON does not hold it (possible only in archives written before, by hand
    // or by a tool) keeps its JSON in `unplaced_json`, so nothing is lost.
    // `evaluations_call` goes too: the write path reads a call's evaluations by `call_seq`
    // (`evaluations_seq`), and the index on random call ids cost an index page written per
    // call once the archive outgrew the cache (the store bench's last 100,000 calls of 400,000:
    // 3,934 calls/s with it and the copy, 5,662 without). The foreign key to the call follows
    // `call_seq` for the same reason.
    "CREATE TABLE evaluations_v6 (
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
        call_seq        INTEGER,
        json_path       TEXT,
        unplaced_json   TEXT,
        PRIMARY KEY (provider, id),
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    );
    INSERT INTO evaluations_v6 (provider, id, call_id, created_at, hallucination,
            hallucination_reasoning, redundancy, redundancy_reasoning, goal_success, goal_reasoning, agent_speak_percentage,
            avg_agent_latency, p50_agent_latency, p90_agent_latency, p95_agent_latency,
            p99_agent_latency, max_agent_latency, avg_filler_ignored_latency,
            p50_filler_ignored_latency, p90_filler_ignored_latency, p95_filler_ignored_latency,
            p99_filler_ignored_latency, num_turns, call_summary, custom_evals_json,
            custom_evals_success_rate, pronunciation_score, pronunciation_reasoning,
            sentiment_label, sentiment_score, sentiment_scores_json, call_seq,
            json_path, unplaced_json)
        SELECT provider, id, call_id, created_at, hallucination,
            hallucination_reasoning, redundancy, redundancy_reasoning, goal_success, goal_reasoning, agent_speak_percentage,
            avg_agent_latency, p50_agent_latency, p90_agent_latency, p95_agent_latency,
            p99_agent_latency, max_agent_latency, avg_filler_ignored_latency,
            p50_filler_ignored_latency, p90_filler_ignored_latency, p95_filler_ignored_latency,
            p99_filler_ignored_latency, num_turns, call_summary, custom_evals_json,
            custom_evals_success_rate, pronunciation_score, pronunciation_reasoning,
            sentiment_label, sentiment_score, sentiment_scores_json, call_seq,
            path, CASE WHEN path IS NULL THEN raw_json END
        FROM (SELECT e.*, CASE
            WHEN NOT json_valid(c.raw_json) THEN NULL
            -- Bluejay: the element of `evaluations` with this id, or (ids missing) this index;
            -- the last one when the id is listed twice, as the writer keeps.
            WHEN e.provider = 'bluejay' AND json_type(c.raw_json, '$.evaluations') = 'array'
            THEN (SELECT '$.evaluations[' || j.key || ']'
                  FROM json_each(c.raw_json, '$.evaluations') j
                  WHERE coalesce(CAST(j.value ->> '$.id' AS TEXT), c.id || '#evaluation-' || j.key)
                        = e.id
                  ORDER BY j.key DESC LIMIT 1)
            WHEN e.provider = 'clarion' AND json_type(c.raw_json, '$.analysis') IN ('object', 'text')
            THEN '$.analysis'
          END AS path
          FROM evaluations e LEFT JOIN calls c ON c.seq = e.call_seq
          ORDER BY e.rowid);
    DROP TABLE evaluations;
    ALTER TABLE evaluations_v6 RENAME TO evaluations;
    CREATE INDEX evaluations_seq ON evaluations (
        call_seq, avg_agent_latency, hallucination, goal_success, redundancy, sentiment_score
    );
    -- json() of the extracted value: Clarion may send `analysis` as a string of JSON. Each
    -- step is checked first, so one malformed row reads as NULL instead of failing the view.
    CREATE VIEW evaluation_json AS
        SELECT e.provider, e.id, e.call_id, e.call_seq,
            CASE WHEN e.unplaced_json IS NOT NULL THEN e.unplaced_json
                 WHEN json_valid(c.raw_json) AND json_valid(json_extract(c.raw_json, e.json_path))
                 THEN json(json_extract(c.raw_json, e.json_path))
            END AS raw_json
        FROM evaluations e LEFT JOIN calls c ON c.seq = e.call_seq;",
    // 7: evaluations are keyed by their call, not by their id. The primary key on
    // (provider, id) took every new evaluation at a random leaf: a commit of a few hundred calls
    // rewrote a few hundred 16 KB leaves of it, even in a small archive, and more of them missed
    // the cache as it grew (store bench to 1,000,000 calls: 9,505 calls/s with ids as random as
    // Bluejay's, 22,647 with ids that grow with time). An evaluation is part of its call, as
    // its JSON is (schema 6): unique within the call (`evaluations_call_id`, whose entries a
    // sync appends), and the same id listed by two calls is each call's own, where the key
    // had moved it to the call written last, away from the call whose JSON still lists it.
    // The table is rebuilt in the order of its calls; the view `evaluation_json` finds it again
    // by its name (steps run with the legacy rename, which leaves views alone).
    "CREATE TABLE evaluations_v7 (
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
        call_seq        INTEGER,
        json_path       TEXT,
        unplaced_json   TEXT,
        FOREIGN KEY (call_seq) REFERENCES calls (seq) ON DELETE CASCADE
    );
    INSERT INTO evaluations_v7 (provider, id, call_id, created_at, hallucination,
            hallucination_reasoning, redundancy, redundancy_reasoning, goal_success, goal_reasoning,
            agent_speak_percentage, avg_agent_latency, p50_agent_latency, p90_agent_latency,
            p95_agent_latency, p99_agent_latency, max_agent_latency, avg_filler_ignored_latency,
            p50_filler_ignored_latency, p90_filler_ignored_latency, p95_filler_ignored_latency,
            p99_filler_ignored_latency, num_turns, call_summary, custom_evals_json,
            custom_evals_success_rate, pronunciation_score, pronunciation_reasoning,
            sentiment_label, sentiment_score, sentiment_scores_json, call_seq, json_path,
            unplaced_json)
        SELECT provider, id, call_id, created_at, hallucination,
            hallucination_reasoning, redundancy, redundancy_reasoning, goal_success, goal_reasoning,
            agent_speak_percentage, avg_agent_latency, p50_agent_latency, p90_agent_latency,
            p95_agent_latency, p99_agent_latency, max_agent_latency, avg_filler_ignored_latency,
            p50_filler_ignored_latency, p90_filler_ignored_latency, p95_filler_ignored_latency,
            p99_filler_ignored_latency, num_turns, call_summary, custom_evals_json,
            custom_evals_success_rate, pronunciation_score, pronunciation_reasoning,
            sentiment_label, sentiment_score, sentiment_scores_json, call_seq, json_path,
            unplaced_json
        FROM evaluations ORDER BY call_seq, rowid;
    DROP TABLE evaluations;
    ALTER TABLE evaluations_v7 RENAME TO evaluations;
    CREATE INDEX evaluations_seq ON evaluations (
        call_seq, avg_agent_latency, hallucination, goal_success, redundancy, sentiment_score
    );
    CREATE UNIQUE INDEX evaluations_call_id ON evaluations (call_seq, id);",
];

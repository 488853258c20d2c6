"""Compares a callvault lake with a fresh export of the same archive, with DuckDB.

Usage: lake_duckdb.py LAKE_DIR FRESH_DIR TABLE...
Prints one JSON object: per table, the rows DuckDB reads from each folder and the rows of
each that the other lacks (EXCEPT ALL, so duplicates count); and the README's query over the
lake (calls per provider and day).
"""

import json
import sys

import duckdb

lake, fresh, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
db = duckdb.connect()


def scan(folder, table):
    return f"read_parquet('{folder}/{table}/**/*.parquet', hive_partitioning = true)"


def has_files(folder, table):
    pattern = f"{folder}/{table}/**/*.parquet"
    return db.execute(f"SELECT count(*) FROM glob('{pattern}')").fetchone()[0] > 0


def count(sql):
    return db.execute(sql).fetchone()[0]


result = {}
for table in tables:
    # Each side read once, into memory: the lake's many small files are opened once.
    for name, folder in (("lake", lake), ("fresh", fresh)):
        source = scan(folder, table) if has_files(folder, table) else None
        db.execute(f"DROP TABLE IF EXISTS {name}")
        if source:
            db.execute(f"CREATE TABLE {name} AS SELECT * FROM {source}")
    present = {
        name: count(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{name}'") > 0
        for name in ("lake", "fresh")
    }
    rows = {name: count(f"SELECT count(*) FROM {name}") if present[name] else 0 for name in present}
    if all(present.values()):
        only_lake = count("SELECT count(*) FROM (SELECT * FROM lake EXCEPT ALL SELECT * FROM fresh)")
        only_fresh = count("SELECT count(*) FROM (SELECT * FROM fresh EXCEPT ALL SELECT * FROM lake)")
    else:
        only_lake, only_fresh = rows["lake"], rows["fresh"]
    result[table] = {
        "lake": rows["lake"],
        "fresh": rows["fresh"],
        "only_lake": only_lake,
        "only_fresh": only_fresh,
    }

# The README's query, as printed there (run in the lake's parent folder).
README_QUERY = """
SELECT provider, day, count(*) AS calls
FROM read_parquet('lake/calls/**/*.parquet', hive_partitioning = true)
GROUP BY provider, day
ORDER BY provider, day
"""
readme = db.execute(README_QUERY.replace("'lake/", f"'{lake}/")).fetchall()

print(json.dumps({"tables": result, "per_day": [[p, str(d), n] for p, d, n in readme]}))

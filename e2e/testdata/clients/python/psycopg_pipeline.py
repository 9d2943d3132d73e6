"""psycopg 3 pipeline mode: each case sends its statements in one pipeline
(one Sync), on an autocommit connection, and reports the first error, how
many rows table pipeline_t kept and whether model m1 exists. Run by
TestClientsPsycopgPipeline through the proxy and directly, with the names of
the cases to run as arguments."""

import json
import os
import sys

import psycopg

MIGRATE_FAILS = """CALL migrate.add_field('nosuch', '{"name":"x","type":"Int"}')"""
MIGRATE_M1 = """CALL migrate.create_model('m1', '[{"name":"id","type":"Int"}]')"""

CASES = {
    "insert_insert": ["INSERT INTO pipeline_t VALUES (1)", "INSERT INTO pipeline_t VALUES (2)"],
    "insert_error": ["INSERT INTO pipeline_t VALUES (1)", "SELECT 1/0"],
    "error_insert": ["SELECT 1/0", "INSERT INTO pipeline_t VALUES (1)"],
    "insert_failing_migrate": ["INSERT INTO pipeline_t VALUES (1)", MIGRATE_FAILS],
    "insert_set_role": ["INSERT INTO pipeline_t VALUES (1)", "SET ROLE postgres"],
    "error_migrate": ["INSERT INTO pipeline_t VALUES (1)", "SELECT 1/0", MIGRATE_M1],
}

if not psycopg.Pipeline.is_supported():
    print(json.dumps({"unsupported": f"libpq {psycopg.pq.version()}"}))
    sys.exit(0)

with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
    for name in sys.argv[1:]:
        conn.execute("TRUNCATE pipeline_t")
        error = None
        try:
            with conn.pipeline():
                for statement in CASES[name]:
                    conn.execute(statement)
        except psycopg.Error as err:
            error = err.sqlstate
        kept = conn.execute("SELECT count(*) FROM pipeline_t").fetchone()[0]
        m1 = conn.execute("SELECT to_regclass('m1') IS NOT NULL").fetchone()[0]
        print(json.dumps({"step": name, "rows": [{"error": error, "kept": kept, "m1": m1}]}), flush=True)

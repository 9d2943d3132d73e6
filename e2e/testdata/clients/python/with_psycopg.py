"""psycopg 3 through pgmigrate-proxy: the recipe of docs/clients.md, run by
TestClientsPsycopg. It prints one JSON line per step."""

import json
import os

import psycopg
from psycopg.rows import dict_row


def show(step, rows):
    print(json.dumps({"step": step, "rows": rows}), flush=True)


# DATABASE_URL is postgres://USER:PASSWORD@PROXY:6432/ORG
url = os.environ["DATABASE_URL"]

# autocommit: a migrate command cannot run inside a transaction block.
with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
    show("session", conn.execute("SELECT current_schema, current_user, session_user").fetchall())
    show("create_model", conn.execute(
        """CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')"""
    ).fetchall())
    status = json.dumps({"name": "status", "type": "String", "default": "draft"})
    show("add_field", conn.execute("CALL migrate.add_field(%s, %s)", ("invoice", status)).fetchall())
    show("describe", conn.execute("CALL migrate.describe(%s)", ("invoice",)).fetchall())

    conn.execute("INSERT INTO invoice (id, title) VALUES (%s, %s)", (1, "first"))
    conn.execute("INSERT INTO invoice (id, title, status) VALUES (2, 'second', 'paid')")
    show("rows", conn.execute("SELECT id, title, status FROM invoice ORDER BY id").fetchall())

    try:
        conn.execute("CALL migrate.add_field(%s, %s)", ("invoice", '{"name":"status","type":"Int"}'))
    except psycopg.Error as err:
        show("error", [{"code": err.sqlstate}])

# Without autocommit psycopg opens a transaction first.
with psycopg.connect(url) as conn:
    try:
        conn.execute("CALL migrate.list_models()")
    except psycopg.Error as err:
        show("in_transaction", [{"code": err.sqlstate}])

"""psycopg2 through pgmigrate-proxy: the recipe of docs/clients.md, run by
TestClientsPsycopg2. It prints one JSON line per step."""

import json
import os

import psycopg2
import psycopg2.extras


def show(step, rows):
    print(json.dumps({"step": step, "rows": [dict(r) for r in rows]}), flush=True)


# DATABASE_URL is postgres://USER:PASSWORD@PROXY:6432/ORG
conn = psycopg2.connect(os.environ["DATABASE_URL"])
conn.autocommit = True  # a migrate command cannot run inside a transaction block
cur = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)

cur.execute("SELECT current_schema, current_user, session_user")
show("session", cur.fetchall())
cur.execute(
    """CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')"""
)
show("create_model", cur.fetchall())
cur.execute("CALL migrate.add_field(%s, %s)",
            ("invoice", json.dumps({"name": "status", "type": "String", "default": "draft"})))
show("add_field", cur.fetchall())
cur.execute("CALL migrate.describe(%s)", ("invoice",))
show("describe", cur.fetchall())

cur.execute("INSERT INTO invoice (id, title) VALUES (%s, %s)", (1, "first"))
cur.execute("INSERT INTO invoice (id, title, status) VALUES (2, 'second', 'paid')")
cur.execute("SELECT id, title, status FROM invoice ORDER BY id")
show("rows", cur.fetchall())

try:
    cur.execute("CALL migrate.add_field(%s, %s)", ("invoice", '{"name":"status","type":"Int"}'))
except psycopg2.Error as err:
    show("error", [{"code": err.pgcode}])
conn.close()

# Without autocommit psycopg2 sends BEGIN before the first statement.
conn = psycopg2.connect(os.environ["DATABASE_URL"])
try:
    conn.cursor().execute("CALL migrate.list_models()")
except psycopg2.Error as err:
    show("in_transaction", [{"code": err.pgcode}])
conn.close()

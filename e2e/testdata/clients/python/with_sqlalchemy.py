"""SQLAlchemy (psycopg2 dialect) through pgmigrate-proxy: the recipe of
docs/clients.md, run by TestClientsSQLAlchemy. It prints one JSON line per
step."""

import json
import os

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError


def show(step, rows):
    print(json.dumps({"step": step, "rows": [dict(r) for r in rows]}), flush=True)


# SQLALCHEMY_URL is postgresql+psycopg2://USER:PASSWORD@PROXY:6432/ORG
url = os.environ["SQLALCHEMY_URL"]

# AUTOCOMMIT: a migrate command cannot run inside a transaction block.
migrations = create_engine(url, isolation_level="AUTOCOMMIT")
with migrations.connect() as conn:
    show("session", conn.execute(text("SELECT current_schema, current_user, session_user")).mappings())
    # JSON goes as a parameter: text() reads ":200" in a literal as a bind.
    fields = json.dumps([{"name": "id", "type": "Int"},
                         {"name": "title", "type": "String", "maxLength": 200, "nullable": False}])
    show("create_model", conn.execute(text("CALL migrate.create_model(:model, :fields)"),
                                      {"model": "invoice", "fields": fields}).mappings())
    status = json.dumps({"name": "status", "type": "String", "default": "draft"})
    show("add_field", conn.execute(text("CALL migrate.add_field(:model, :field)"),
                                   {"model": "invoice", "field": status}).mappings())
    show("describe", conn.execute(text("CALL migrate.describe(:model)"), {"model": "invoice"}).mappings())

# Ordinary work in transactions, on an engine of its own.
engine = create_engine(url)
with engine.begin() as conn:
    conn.execute(text("INSERT INTO invoice (id, title) VALUES (:id, :title)"), {"id": 1, "title": "first"})
    conn.execute(text("INSERT INTO invoice (id, title, status) VALUES (2, 'second', 'paid')"))
with engine.connect() as conn:
    show("rows", conn.execute(text("SELECT id, title, status FROM invoice ORDER BY id")).mappings())

with migrations.connect() as conn:
    try:
        conn.execute(text("CALL migrate.add_field(:model, :field)"),
                     {"model": "invoice", "field": '{"name":"status","type":"Int"}'})
    except DBAPIError as err:
        show("error", [{"code": err.orig.pgcode}])

with engine.connect() as conn:
    try:
        conn.execute(text("CALL migrate.list_models()"))
    except DBAPIError as err:
        show("in_transaction", [{"code": err.orig.pgcode}])

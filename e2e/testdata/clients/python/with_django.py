"""Django through pgmigrate-proxy: the recipe of docs/clients.md, run by
TestClientsDjango from this folder (for the app tenantapp). It prints one
JSON line per step."""

import json
import os

import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=["tenantapp"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["PROXY_HOST"],
            "PORT": os.environ["PROXY_PORT"],
            "NAME": os.environ["ORG"],  # the org
            "USER": os.environ["DB_USER"],
            "PASSWORD": os.environ["DB_PASSWORD"],
        }
    },
)
django.setup()

from django.db import DatabaseError, connection, transaction  # noqa: E402

from tenantapp.models import Invoice  # noqa: E402


def show(step, rows):
    print(json.dumps({"step": step, "rows": rows}), flush=True)


def call(sql, params=()):
    """Runs a migrate command and returns its rows as dicts."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        columns = [c.name for c in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]


show("session", call("SELECT current_schema, current_user, session_user"))
show("create_model", call(
    """CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')"""
))
show("add_field", call("CALL migrate.add_field(%s, %s)",
                       ["invoice", json.dumps({"name": "status", "type": "String", "default": "draft"})]))
show("describe", call("CALL migrate.describe(%s)", ["invoice"]))

Invoice.objects.create(id=1, title="first")
Invoice.objects.create(id=2, title="second", status="paid")
show("rows", list(Invoice.objects.order_by("id").values("id", "title", "status")))

try:
    call("CALL migrate.add_field(%s, %s)", ["invoice", '{"name":"status","type":"Int"}'])
except DatabaseError as err:
    show("error", [{"code": err.__cause__.pgcode}])

try:
    with transaction.atomic():
        call("CALL migrate.list_models()")
except DatabaseError as err:
    show("in_transaction", [{"code": err.__cause__.pgcode}])

"""The tenant's table as the migrate commands of with_django.py leave it:
made by the engine, so not managed by Django's migrations."""

from django.db import models


class Invoice(models.Model):
    id = models.IntegerField(primary_key=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=100, null=True, default="draft")

    class Meta:
        db_table = "invoice"
        managed = False

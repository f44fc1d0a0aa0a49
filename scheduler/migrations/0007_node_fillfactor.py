"""Nodes are updated all the time (free GPUs at every placement and job end, heartbeats):
leave room in each page so that those updates are HOT (no index entries to write)."""

from django.db import migrations


def _fillfactor(value: int):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE scheduler_node SET (fillfactor = {value})")
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("scheduler", "0006_assignment_unsettled_index"),
    ]

    operations = [
        migrations.RunPython(_fillfactor(50), _fillfactor(100)),
    ]

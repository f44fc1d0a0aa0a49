"""A realistic starting catalog. Rates are tokens per GPU-hour (at USD 0.30 per 1M tokens,
8.3M tokens is about USD 2.50)."""

from django.db import migrations

CLASSES = [
    # name, vendor, vram, on-demand, block, deposit, min, max
    ("H200-141GB", "NVIDIA", 141, 11_000_000, 8_800_000, 6_500_000, 6_000_000, 16_000_000),
    ("H100-80GB", "NVIDIA", 80, 8_300_000, 6_600_000, 5_000_000, 4_500_000, 12_500_000),
    ("A100-80GB", "NVIDIA", 80, 4_700_000, 3_800_000, 2_800_000, 2_500_000, 7_000_000),
    ("L40S-48GB", "NVIDIA", 48, 3_000_000, 2_400_000, 1_800_000, 1_600_000, 4_500_000),
    ("RTX4090-24GB", "NVIDIA", 24, 1_300_000, 1_050_000, 800_000, 700_000, 2_000_000),
]


def seed(apps, schema_editor):
    GpuClass = apps.get_model("scheduler", "GpuClass")
    for name, vendor, vram, od, block, deposit, lo, hi in CLASSES:
        GpuClass.objects.get_or_create(
            name=name,
            defaults=dict(vendor=vendor, vram_gb=vram, on_demand_rate=od, block_rate=block,
                          deposit_rate=deposit, min_rate=lo, max_rate=hi),
        )


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]

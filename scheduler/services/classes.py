from scheduler.errors import UnknownGpuClass
from scheduler.models import GpuClass


def gpu_class_by_name(name: object) -> GpuClass:
    cls = GpuClass.objects.filter(name=name).first() if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(GpuClass.objects.values_list("name", flat=True))
        raise UnknownGpuClass(f"Unknown GPU class {name!r}. Known classes: {known}.",
                              fields={"gpu_class": ["Unknown GPU class."]})
    return cls


# The starting catalog (also seeded by migration 0002). Rates: tokens per GPU-hour.
DEFAULT_CATALOG = [
    # name, vendor, vram, on-demand, block, deposit, min, max
    ("H200-141GB", "NVIDIA", 141, 11_000_000, 8_800_000, 6_500_000, 6_000_000, 16_000_000),
    ("H100-80GB", "NVIDIA", 80, 8_300_000, 6_600_000, 5_000_000, 4_500_000, 12_500_000),
    ("A100-80GB", "NVIDIA", 80, 4_700_000, 3_800_000, 2_800_000, 2_500_000, 7_000_000),
    ("L40S-48GB", "NVIDIA", 48, 3_000_000, 2_400_000, 1_800_000, 1_600_000, 4_500_000),
    ("RTX4090-24GB", "NVIDIA", 24, 1_300_000, 1_050_000, 800_000, 700_000, 2_000_000),
]


def gpu_classes_seed() -> int:
    """Create the default catalog's classes that are missing; returns how many."""
    created = 0
    for name, vendor, vram, od, block, deposit, lo, hi in DEFAULT_CATALOG:
        _, made = GpuClass.objects.get_or_create(
            name=name,
            defaults={"vendor": vendor, "vram_gb": vram, "on_demand_rate": od,
                      "block_rate": block, "deposit_rate": deposit, "min_rate": lo,
                      "max_rate": hi},
        )
        created += made
    return created

from scheduler.errors import UnknownGpuClass
from scheduler.models import GpuClass


def gpu_class_by_name(name: object) -> GpuClass:
    cls = GpuClass.objects.filter(name=name).first() if isinstance(name, str) else None
    if cls is None:
        known = ", ".join(GpuClass.objects.values_list("name", flat=True))
        raise UnknownGpuClass(f"Unknown GPU class {name!r}. Known classes: {known}.",
                              fields={"gpu_class": ["Unknown GPU class."]})
    return cls

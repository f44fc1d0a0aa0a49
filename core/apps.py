from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class CoreConfig(AppConfig):
    default = True
    name = "core"
    label = "core"


class SuanliAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the Suanli site as `admin.site`."""

    default = False
    default_site = "core.admin_site.SuanliAdminSite"

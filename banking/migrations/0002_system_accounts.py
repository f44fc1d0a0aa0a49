from django.db import migrations

SYSTEM_PURPOSES = [
    "card_clearing",
    "platform_revenue",
    "bank_capacity",
    "lending",
    "interest_income",
    "payout_clearing",
    "write_offs",
    "promotions",
]


def create_system_accounts(apps, schema_editor):
    Account = apps.get_model("banking", "Account")
    for purpose in SYSTEM_PURPOSES:
        Account.objects.get_or_create(organization=None, purpose=purpose, defaults={"floor": None})


class Migration(migrations.Migration):
    dependencies = [("banking", "0001_initial")]
    operations = [migrations.RunPython(create_system_accounts, migrations.RunPython.noop)]

"""Keep radius.subscriber (FreeRADIUS's one-row-per-account hot path, network/radius/db.py) in
step with every table that decides a reply, and count open sessions for Simultaneous-Use. The
triggers live on the tables themselves, so no code path can change a subscription, plan or
account without FreeRADIUS seeing it in the same transaction."""

from django.db import migrations


def install(apps, schema_editor):
    from network.radius.db import radius_interface_install

    radius_interface_install()


CREATE = [
    "CREATE OR REPLACE TRIGGER network_pppoeaccount_radius AFTER INSERT OR UPDATE OR DELETE ON network_pppoeaccount "
    "FOR EACH ROW EXECUTE FUNCTION radius.subscriber_sync()",
    "CREATE OR REPLACE TRIGGER customers_subscription_radius AFTER UPDATE OF status, plan_id ON customers_subscription "
    "FOR EACH ROW EXECUTE FUNCTION radius.subscriber_sync()",
    "CREATE OR REPLACE TRIGGER customers_plan_radius AFTER UPDATE OF download_kbps, upload_kbps, fair_use_download_kbps, "
    "fair_use_upload_kbps ON customers_plan FOR EACH ROW EXECUTE FUNCTION radius.subscriber_sync()",
    "CREATE OR REPLACE TRIGGER network_planradiusprofile_radius AFTER INSERT OR UPDATE OR DELETE ON network_planradiusprofile "
    "FOR EACH ROW EXECUTE FUNCTION radius.subscriber_sync()",
    "CREATE OR REPLACE TRIGGER network_radiussettings_radius AFTER UPDATE ON network_radiussettings "
    "FOR EACH ROW EXECUTE FUNCTION radius.subscriber_sync()",
    "CREATE OR REPLACE TRIGGER network_radiussession_count AFTER INSERT OR UPDATE OF stop_time OR DELETE "
    "ON network_radiussession FOR EACH ROW EXECUTE FUNCTION radius.session_count()",
]
DROP = [
    "DROP TRIGGER IF EXISTS network_pppoeaccount_radius ON network_pppoeaccount",
    "DROP TRIGGER IF EXISTS customers_subscription_radius ON customers_subscription",
    "DROP TRIGGER IF EXISTS customers_plan_radius ON customers_plan",
    "DROP TRIGGER IF EXISTS network_planradiusprofile_radius ON network_planradiusprofile",
    "DROP TRIGGER IF EXISTS network_radiussettings_radius ON network_radiussettings",
    "DROP TRIGGER IF EXISTS network_radiussession_count ON network_radiussession",
]


class Migration(migrations.Migration):
    dependencies = [("network", "0002_radius_interface"), ("customers", "0001_initial")]

    operations = [
        migrations.RunPython(install, migrations.RunPython.noop),
        *(migrations.RunSQL(create, drop) for create, drop in zip(CREATE, DROP, strict=True)),
    ]

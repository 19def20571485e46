"""The `radius` schema FreeRADIUS uses (network/radius/db.py), the usage trigger on sessions and
the tenant's RADIUS settings row."""

from django.db import migrations


def install(apps, schema_editor):
    from network.radius.db import radius_interface_install

    radius_interface_install()


class Migration(migrations.Migration):
    dependencies = [("network", "0001_initial"), ("billing", "0002_write_path_indexes_and_checks")]

    operations = [
        migrations.RunPython(install, migrations.RunPython.noop),
        migrations.RunSQL(
            "INSERT INTO network_radiussettings (id, suspended_access, walled_garden_pool, walled_garden_kbps, "
            "default_pool, session_timeout_s, interim_interval_s, stale_after_s) "
            "VALUES (1, 'reject', 'walled-garden', 256, '', 86400, 300, 900) ON CONFLICT (id) DO NOTHING",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(
            "CREATE OR REPLACE TRIGGER network_radiussession_usage AFTER INSERT OR UPDATE OF input_octets, output_octets "
            "ON network_radiussession FOR EACH ROW EXECUTE FUNCTION radius.session_usage()",
            "DROP TRIGGER IF EXISTS network_radiussession_usage ON network_radiussession",
        ),
    ]

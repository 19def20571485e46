"""The payment reference becomes personal data at rest: encrypted with the customer's data key
(compliance.pii), like the customer's own fields. Existing references are sealed with the key of
their customer; a customer already erased (no key left) loses the reference, which erasure would
have cleared anyway."""

from django.db import migrations

import compliance.pii.fields


def seal_references(apps, schema_editor):
    from compliance.pii.keystore import data_keys

    Payment = apps.get_model("billing", "Payment")
    rows = list(
        Payment.objects.exclude(reference_clear="").values_list("pk", "reference_clear", "customer__data_key_id")
    )
    if not rows:
        return
    keys = data_keys(schema_editor.connection.schema_name, list({key for _pk, _ref, key in rows if key}))
    for pk, reference, key_id in rows:
        payment = Payment.objects.get(pk=pk)
        if key_id is None or keys.get(key_id) is None:
            continue
        payment.data_key_id = key_id
        payment.reference = reference
        payment.save(update_fields=["data_key_id", "reference"])


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_write_path_indexes_and_checks"), ("customers", "0001_initial")]

    operations = [
        migrations.RenameField("payment", "reference", "reference_clear"),
        migrations.AddField(
            model_name="payment",
            name="data_key_id",
            field=compliance.pii.fields.SubjectKeyField(db_index=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="payment",
            name="reference",
            field=compliance.pii.fields.EncryptedTextField(blank=True, null=True),
        ),
        migrations.RunPython(seal_references, migrations.RunPython.noop),
        migrations.RemoveField("payment", "reference_clear"),
    ]

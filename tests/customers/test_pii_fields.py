"""The encrypted field family on a real model: storage, lookups, keys, erasure."""

import datetime

import pytest
from django.db import connection

from compliance.audit import Actor
from compliance.pii.fields import ERASED, EncryptedFieldLookupError, pii_prefetch
from compliance.pii.keyring import PIIDecryptionError
from compliance.pii.keystore import get_keystore
from customers.models import Customer, ServiceAddress
from customers.services import customer_by_email, customer_create, service_address_create

pytestmark = [pytest.mark.django_db, pytest.mark.customer_data_protection]
STAFF = Actor.system("test")


def raw_row(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608 - fixed table names
        return repr(cursor.fetchone())


@pytest.mark.behavior
def test_personal_data_is_stored_encrypted_and_read_back_in_clear(tenant):
    customer = customer_create(
        actor=STAFF, name="Zelda Quartermain", email="Zelda.Q@example.org", phone="+14155550123",
        national_id="NID-778899", date_of_birth=datetime.date(1980, 2, 29),
    )
    stored = raw_row("customers_customer", customer.pk)
    for secret in ("Zelda", "Quartermain", "zelda.q", "4155550123", "778899", "1980-02-29"):
        assert secret.lower() not in stored.lower()
    fresh = Customer.objects.get(pk=customer.pk)
    assert (fresh.name, fresh.email, fresh.phone, fresh.national_id) == (
        "Zelda Quartermain", "Zelda.Q@example.org", "+14155550123", "NID-778899"
    )
    assert fresh.date_of_birth == datetime.date(1980, 2, 29)


@pytest.mark.behavior
def test_exact_lookup_goes_through_the_blind_index_and_other_lookups_are_refused(tenant):
    customer = customer_create(actor=STAFF, name="Ada", email="ada@example.net")
    assert customer_by_email("  ADA@Example.NET ") == customer
    assert customer_by_email("bob@example.net") is None
    with pytest.raises(EncryptedFieldLookupError, match="encrypted"):
        list(Customer.objects.filter(email="ada@example.net"))
    with pytest.raises(EncryptedFieldLookupError):
        list(Customer.objects.filter(name__icontains="Ad"))
    assert Customer.objects.filter(phone__isnull=True).filter(pk=customer.pk).exists()


@pytest.mark.behavior
def test_unchanged_personal_data_is_not_re_encrypted_on_save(tenant):
    customer = customer_create(actor=STAFF, name="Ada", email="ada@example.net")

    def ciphertexts():
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, email, email_index FROM customers_customer WHERE id = %s", [customer.pk])
            return [bytes(value) for value in cursor.fetchone()]

    before = ciphertexts()
    fresh = Customer.objects.get(pk=customer.pk)
    fresh.billing_day = 5
    fresh.save()
    assert ciphertexts() == before
    fresh.email = "ada.new@example.net"
    fresh.save()
    after = ciphertexts()
    assert after[0] == before[0]
    assert after[1] != before[1]
    assert after[2] != before[2]  # the blind index follows the new value
    assert customer_by_email("ada.new@example.net") == customer
    assert customer_by_email("ada@example.net") is None


@pytest.mark.behavior
def test_a_destroyed_data_key_makes_every_field_of_the_subject_read_as_erased(tenant):
    customer = customer_create(actor=STAFF, name="Eve Erased", email="eve@example.com", phone="+447911123456",
                               date_of_birth=datetime.date(1990, 1, 1))
    address = service_address_create(customer=customer, street="1 Lost Lane", city="Gone", postal_code="00000",
                                      country="GB", actor=STAFF)
    other = customer_create(actor=STAFF, name="Olga Other", email="olga@example.com")
    assert get_keystore().shred(tenant=connection.schema_name, key_id=customer.data_key_id) is True
    erased = Customer.objects.get(pk=customer.pk)
    assert (erased.name, erased.email, erased.phone, erased.date_of_birth) == (ERASED, ERASED, ERASED, None)
    assert ServiceAddress.objects.get(pk=address.pk).street == ERASED
    assert Customer.objects.get(pk=other.pk).name == "Olga Other"
    assert get_keystore().shred(tenant=connection.schema_name, key_id=customer.data_key_id) is False


@pytest.mark.behavior
def test_a_list_fetches_all_its_data_keys_in_one_key_store_query(tenant, django_assert_num_queries):
    for i in range(5):
        customer_create(actor=STAFF, name=f"Bulk {i}", email=f"bulk{i}@example.com")
    customers = list(Customer.objects.all())
    pii_prefetch(customers)
    with django_assert_num_queries(0):
        names = [c.name for c in customers]
    assert {f"Bulk {i}" for i in range(5)} <= set(names)


@pytest.mark.data_safety
@pytest.mark.behavior
def test_a_value_copied_into_another_subjects_row_is_refused_not_read(tenant):
    """Someone with write access to the table copies one customer's sealed e-mail into another
    customer's row: the column label still matches, but the value was sealed for another data
    subject, so reading it fails loudly instead of showing one person's data as another's."""
    zelda = customer_create(actor=STAFF, name="Zelda Quartermain", email="zelda.q@example.org")
    bruno = customer_create(actor=STAFF, name="Bruno Ostrander", email="bruno.o@example.net")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE customers_customer SET email = (SELECT email FROM customers_customer WHERE id = %s) WHERE id = %s",
            [zelda.pk, bruno.pk],
        )
    copied = Customer.objects.get(pk=bruno.pk)
    with pytest.raises(PIIDecryptionError, match="Customer.email holds a value sealed for another data subject"):
        _ = copied.email
    assert copied.name == "Bruno Ostrander"  # his own values still read
    assert Customer.objects.get(pk=zelda.pk).email == "zelda.q@example.org"

"""Normalisers for blind indexes: equal values by the business's definition index equally."""

import phonenumbers


def email(value: str) -> str:
    return value.strip().casefold()


def phone(value: str) -> str:
    """E.164 (+15551234567). Values are validated as E.164 on input; this only canonicalises."""
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException:
        return value.strip()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

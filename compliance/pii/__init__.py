"""Application-layer encryption of personal data (see docs/pii.md)."""

"""GPON: OLTs, their PON ports and ONUs.

- `profiles`: vendor profiles (JSON files in `profiles/`) that say where an OLT keeps its ONU table
  and how to decode serials, states and optical power. Pure.
- `service`: autofind, authorisation (ONU <-> subscription) and optics polling over SNMP.
"""

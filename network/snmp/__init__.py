"""SNMP side of the network app: sessions, polling, simulated agents (see each module)."""

"""Customers app: customers, their SIP accounts (HA1 digests only) and IP ACLs."""

"""The REST API (``/api/v1/``): provisioning, CDR queries and statistics behind scoped keys."""

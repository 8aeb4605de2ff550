"""Declarative provisioning: ``tollguard load plan.yaml``.

The file declares rate cards, providers with their gateways, and customers with their
accounts and ACL entries (schema and rules: ``docs/provisioning.md``). Loading happens
in two phases:

1. *validate*: the whole file is checked, against itself and against the database, and
   every problem is collected with the line and path of the offending entry, e.g.
   ``plan.yaml:12: customers[2] 'acme'.accounts[0].username: duplicate 'alice'``;
2. *apply*: only if there was no error, every declared object is created or updated by
   its natural key (names, usernames, ``network`` + ``tech_prefix``) in one transaction,
   which bumps the configuration version once. A failure changes nothing; what the
   database refuses is told at the line of the entry it refused.

Objects missing from the file are left alone, unless the file says ``prune: true``.

The package's modules follow those steps: :mod:`.schema` (the file read into checked
specs), :mod:`.validation` (the specs against the database), :mod:`.apply` (create,
update, prune), :mod:`.load` (the transaction around them), :mod:`.report` and
:mod:`.errors` (with :class:`~.errors.Problems`, which tells each problem with its
line). A rate's own checks live with the rating app
(:mod:`tollguard.web.rating.rate_rows`), which the admin's rate import shares.
"""

from __future__ import annotations

from tollguard.web.provisioning.errors import PlanApplyError, PlanFileError, ProvisioningError
from tollguard.web.provisioning.load import load_plan_file
from tollguard.web.provisioning.report import KINDS, Counts, LoadReport

__all__ = [
    "KINDS",
    "Counts",
    "LoadReport",
    "PlanApplyError",
    "PlanFileError",
    "ProvisioningError",
    "load_plan_file",
]

"""Writes of CDRs: batches from the switch's CDR writer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction

from tollguard.domain.cdr import Attempt
from tollguard.domain.cdr import Cdr as DomainCdr
from tollguard.web.cdr import models

BULK_BATCH_SIZE = 500


def attempts_to_json(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "provider_id": a.provider_id,
            "gateway_id": a.gateway_id,
            "started_at": a.started_at.isoformat(),
            "sip_code": a.sip_code,
            "reason": a.reason,
        }
        for a in attempts
    ]


def to_row(cdr: DomainCdr) -> models.Cdr:
    return models.Cdr(
        call_id=cdr.call_id,
        started_at=cdr.started_at,
        ended_at=cdr.ended_at,
        answered_at=cdr.answered_at,
        duration_ms=cdr.duration_ms,
        billed_s=cdr.billed_s,
        customer_id=cdr.customer_id,
        account_id=cdr.account_id,
        source_ip=cdr.source_ip,
        source_port=cdr.source_port,
        caller=cdr.caller,
        callee_raw=cdr.callee_raw,
        callee=cdr.callee,
        destination=cdr.destination,
        sip_code=cdr.sip_code,
        sip_reason=cdr.sip_reason,
        q850_cause=cdr.q850_cause,
        hangup_side=cdr.hangup_side.value,
        provider_id=cdr.provider_id,
        gateway_id=cdr.gateway_id,
        sell_rate=cdr.sell_rate,
        sell_amount=cdr.sell_amount,
        cost_rate=cdr.cost_rate,
        cost_amount=cdr.cost_amount,
        margin=cdr.margin,
        currency=cdr.currency,
        caller_user_agent=cdr.caller_user_agent,
        callee_user_agent=cdr.callee_user_agent,
        attempts=attempts_to_json(cdr.attempts),
    )


def write_cdrs(cdrs: Sequence[DomainCdr]) -> int:
    """Store ``cdrs`` in one transaction; returns how many rows were written."""
    if not cdrs:
        return 0
    with transaction.atomic():
        rows = models.Cdr.objects.bulk_create(
            [to_row(cdr) for cdr in cdrs], batch_size=BULK_BATCH_SIZE
        )
    return len(rows)

"""Admin for CDRs: read-only for everyone, filtered and exported without counting them all.

A CDR is a record, not configuration: nobody may add, change or delete one here. The
table grows by millions of rows, so the list never runs ``COUNT(*)`` over it: the
paginator counts at most :data:`COUNT_LIMIT` matching rows, the filters offer fixed
choices or free text instead of listing distinct values, and searches are anchored
(exact Call-ID, number prefixes) so that indexes can serve them. The filtered list can
be downloaded as CSV, streamed in the columns of ``tollguard cdr export``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path
from django.utils import timezone

from tollguard.web.cdr.models import Cdr
from tollguard.web.cdr.selectors import EXPORT_COLUMNS, export_rows
from tollguard.web.core import csvout

COUNT_LIMIT = 10_000


class CappedCountPaginator(Paginator):  # type: ignore[type-arg]
    """Counts at most ``COUNT_LIMIT`` rows: ``SELECT COUNT(*) FROM (... LIMIT n)``.

    Past the limit the list shows "10000" results and as many pages; filters narrow it.
    """

    @cached_property
    def count(self) -> int:
        object_list: Any = self.object_list
        if isinstance(object_list, QuerySet):
            # Unordered: the database may stop at the first COUNT_LIMIT rows it finds.
            return int(object_list.order_by()[:COUNT_LIMIT].count())
        return len(object_list)


class SipClassFilter(admin.SimpleListFilter):
    """SIP final responses by class and the common failure codes (RFC 3261 §21)."""

    title = "SIP response"
    parameter_name = "sip"
    # A class matches a large share of all calls: the fastest plan walks the started_at
    # index in list order and keeps matching rows. Comparing "sip_code + 0" keeps the
    # planner (SQLite's in particular) from choosing the sip_code index and sorting
    # hundreds of thousands of rows instead. Single codes are rarer and use the index.
    CHOICES: dict[str, tuple[str, Q]] = {
        "2xx": ("answered (2xx)", Q(sip_code_value__gte=200, sip_code_value__lt=300)),
        "3xx": ("redirected (3xx)", Q(sip_code_value__gte=300, sip_code_value__lt=400)),
        "4xx": ("request failure (4xx)", Q(sip_code_value__gte=400, sip_code_value__lt=500)),
        "5xx": ("server failure (5xx)", Q(sip_code_value__gte=500, sip_code_value__lt=600)),
        "6xx": ("global failure (6xx)", Q(sip_code_value__gte=600, sip_code_value__lt=700)),
        "403": ("403 Forbidden", Q(sip_code=403)),
        "404": ("404 Not Found", Q(sip_code=404)),
        "408": ("408 Request Timeout", Q(sip_code=408)),
        "480": ("480 Temporarily Unavailable", Q(sip_code=480)),
        "486": ("486 Busy Here", Q(sip_code=486)),
        "487": ("487 Request Terminated", Q(sip_code=487)),
        "488": ("488 Not Acceptable Here", Q(sip_code=488)),
        "503": ("503 Service Unavailable", Q(sip_code=503)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.CHOICES.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        choice = self.CHOICES.get(self.value() or "")
        if choice is None:
            return queryset
        filtered: QuerySet[Any] = queryset.alias(sip_code_value=F("sip_code") + 0)
        return filtered.filter(choice[1])


class TextFilter(admin.SimpleListFilter):
    """A free-text filter (a small form) instead of a list of every distinct value."""

    template = "admin/cdr/cdr/text_filter.html"
    lookup: str = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # One dummy choice: SimpleListFilter shows nothing without any.
        return [("", "")]

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        return queryset.filter(**{self.lookup: value}) if value else queryset

    def choices(self, changelist: Any) -> Iterator[Any]:  # one form, not a list of links
        # The form keeps the list's other parameters (filters, search, ordering, date)
        # but not the page, which would be out of range for the narrower list.
        params = changelist.params
        yield {
            "value": self.value() or "",
            "parameter": self.parameter_name,
            "others": [
                (key, value)
                for key, values in params.items()
                if key not in {self.parameter_name, "p"}
                for value in (values if isinstance(values, list) else [values])
            ],
            "clear": changelist.get_query_string(remove=[self.parameter_name]),
        }


class DestinationFilter(TextFilter):
    title = "destination (starts with)"
    parameter_name = "destination"
    lookup = "destination__startswith"


class CalleePrefixFilter(TextFilter):
    title = "callee number (prefix)"
    parameter_name = "callee_prefix"
    lookup = "callee__startswith"


class SipCodeFilter(TextFilter):
    title = "SIP code (exact)"
    parameter_name = "sip_code"

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = (self.value() or "").strip()
        return queryset.filter(sip_code=int(value)) if value.isdigit() else queryset


def digit_prefix(field: str, prefix: str) -> Q:
    """``field`` starts with the digit string ``prefix``, as a range an index can serve.

    ``LIKE 'prefix%'`` cannot use a plain B-tree index on SQLite (its LIKE ignores case)
    nor on PostgreSQL outside the C collation; ``prefix <= field < next`` can, where
    ``next`` is the smallest digit string after every string starting with ``prefix``
    ("4939" -> "494"; "99" has none).
    """
    stem = prefix.rstrip("9")
    if not stem:
        return Q(**{f"{field}__gte": prefix})
    upper = stem[:-1] + str(int(stem[-1]) + 1)
    return Q(**{f"{field}__gte": prefix, f"{field}__lt": upper})


def csv_lines(queryset: QuerySet[Cdr]) -> Iterator[str]:
    """``queryset`` as CSV lines, the header first, read from the database in chunks."""
    return csvout.csv_lines(EXPORT_COLUMNS, export_rows(queryset))


def money(amount: Decimal | None, currency: str) -> str | None:
    """``amount`` with its currency: four places, or more when the amount has them."""
    if amount is None:
        return None
    shown = amount.quantize(_FOUR_PLACES)
    if shown != amount:
        shown = amount.normalize()
    return f"{shown:f} {currency}".rstrip()


def clock(duration_ms: int) -> str:
    """A call's length as ``m:ss`` (``h:mm:ss`` from an hour), whole seconds down."""
    minutes, seconds = divmod(duration_ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


_FOUR_PLACES = Decimal("0.0001")


def lean_text[F: Callable[..., str | None]](method: F) -> F:
    """Mark a list column whose method returns plain text (or None for "empty"): the
    CDR list's lean table (:mod:`tollguard.web.cdr.templatetags.cdr_results`) renders it
    as Django would, without the admin's per-cell machinery."""
    method.lean_text = True  # type: ignore[attr-defined]
    return method


@admin.register(Cdr)
class CdrAdmin(admin.ModelAdmin[Cdr]):
    # What an operator reads a CDR for: when, who called whom, how it ended, how long,
    # what it earned and cost and over which provider. Times are UTC to the second.
    list_display = (
        "started_at",
        "direction",
        "customer",
        "caller",
        "callee",
        "destination",
        "sip_code",
        "duration",
        "billed_s",
        "sell",
        "cost",
        "margin_shown",
        "provider",
    )
    list_filter = (
        SipClassFilter,
        SipCodeFilter,
        "customer",
        "provider",
        DestinationFilter,
        CalleePrefixFilter,
        "hangup_side",
        "direction",
    )
    list_select_related = ("customer", "provider")
    # Shows the search box; get_search_results does the searching.
    search_fields = ("=call_id", "^callee", "^caller")
    search_help_text = "An exact Call-ID, or the start of the caller's or callee's number."
    date_hierarchy = "started_at"
    ordering = ("-started_at",)
    list_per_page = 100
    show_full_result_count = False
    paginator = CappedCountPaginator

    class Media:
        css = {"all": ("cdr/cdr_list.css",)}

    # Facet counts would run one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Cdr], search_term: str
    ) -> tuple[QuerySet[Cdr], bool]:
        """Exact Call-ID, or number prefixes as index ranges (see :func:`digit_prefix`)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(call_id=term)
        if term.isdigit():
            match |= digit_prefix("callee", term) | digit_prefix("caller", term)
        elif "@" not in term:
            # A caller may be a SIP user name ("alice", "+4930..."). A term with "@" is
            # taken for a Call-ID only (RFC 3261 §8.1.1.4: usually word@host), so that
            # pasting one stays an index lookup instead of a scan of the callers.
            match |= Q(caller__startswith=term)
        return queryset.filter(match), False

    @admin.display(description="duration", ordering="duration_ms")
    @lean_text
    def duration(self, obj: Cdr) -> str | None:
        return clock(obj.duration_ms) if obj.answered_at is not None else None

    @admin.display(description="sell", ordering="sell_amount")
    @lean_text
    def sell(self, obj: Cdr) -> str | None:
        return money(obj.sell_amount, obj.sell_currency)

    @admin.display(description="cost", ordering="cost_amount")
    @lean_text
    def cost(self, obj: Cdr) -> str | None:
        return money(obj.cost_amount, obj.cost_currency) if obj.provider_id else None

    @admin.display(description="margin", ordering="margin")
    @lean_text
    def margin_shown(self, obj: Cdr) -> str | None:
        # No margin across two currencies (docs/admin.md): the cell stays empty.
        return money(obj.margin, obj.sell_currency)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Cdr | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Cdr | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # The dashboard app adds its pages here too (tollguard.web.dashboard.admin).
        own = [path("export/", wrap(self.export_view), name="cdr_cdr_export")]
        return own + super().get_urls()

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The CDRs of the current list (filters, search, date) as streamed CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist: ChangeList = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).order_by("started_at", "id")
        response = StreamingHttpResponse(csv_lines(queryset), content_type=csvout.CSV_CONTENT_TYPE)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="cdrs-{stamp}.csv"'
        return response

"""Admin registration for rate cards and rates, with CSV import and export.

A rate card's page links to its import (an upload, then a progress page whose script
asks the server for one more step at a time, see :mod:`tollguard.web.rating.imports`)
and its export (the rates as CSV in the columns the import reads, streamed). Cards can
hold 100 000 rates and more: the rate list never counts the whole table and picks
cards with an autocomplete box instead of a select of every card.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from tollguard.web.core.csvout import CSV_CONTENT_TYPE
from tollguard.web.rating import imports
from tollguard.web.rating.models import Rate, RateCard, RateImport
from tollguard.web.security.field_access import RoleFieldLimits

EXPORT_CHUNK_SIZE = 5000
MAX_ERRORS_SHOWN = 50  # in the JSON of one step; the page lists them all


class RateImportForm(forms.Form):
    file = forms.FileField(
        label="Rate file (CSV)",
        help_text=(
            "UTF-8 CSV with a header line: prefix and price_per_minute are required; "
            "destination, connect_fee, initial_increment, next_increment, effective_from "
            "and effective_until are optional. The file replaces every rate of the card."
        ),
    )


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        # Plain notation without trailing zeros: 0.010000 -> 0.01, never 1E+1.
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def rate_rows(card: RateCard) -> Iterator[list[str]]:
    """The header and every rate of ``card`` as CSV cells, in the import's columns."""
    yield list(imports.CSV_COLUMNS)
    rows = (
        Rate.objects.filter(card=card)
        .order_by("prefix", "effective_from", "pk")
        .values_list(*imports.CSV_COLUMNS)
    )
    for values in rows.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        yield [_cell(value) for value in values]


@admin.register(RateCard)
class RateCardAdmin(RoleFieldLimits[RateCard], admin.ModelAdmin[RateCard]):
    list_display = (
        "name",
        "kind",
        "currency",
        "rounding",
        "decimals",
        "rate_count",
        "transfer_links",
    )
    list_filter = ("kind", "currency", "rounding")
    search_fields = ("name",)
    ordering = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[RateCard]:
        return super().get_queryset(request).annotate(rate_total=Count("rates"))

    @admin.display(description="rates", ordering="rate_total")
    def rate_count(self, obj: RateCard) -> int:
        return int(getattr(obj, "rate_total", 0))

    @admin.display(description="rate file")
    def transfer_links(self, obj: RateCard) -> str:
        return format_html(
            '<a href="{}">import</a> · <a href="{}">export</a>',
            reverse("admin:rating_ratecard_import", args=[obj.pk]),
            reverse("admin:rating_ratecard_export", args=[obj.pk]),
        )

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        own = [
            path(
                "<int:object_id>/export/",
                wrap(self.export_view),
                name="rating_ratecard_export",
            ),
            path(
                "<int:object_id>/import/",
                wrap(self.import_view),
                name="rating_ratecard_import",
            ),
            path(
                "<int:object_id>/import/<str:job_id>/",
                wrap(self.import_progress_view),
                name="rating_ratecard_import_progress",
            ),
            path(
                "<int:object_id>/import/<str:job_id>/step/",
                wrap(require_POST(self.import_step_view)),
                name="rating_ratecard_import_step",
            ),
        ]
        return own + super().get_urls()

    # -- helpers ---------------------------------------------------------------------

    def _card(self, request: HttpRequest, object_id: int, *, change: bool) -> RateCard:
        card = get_object_or_404(RateCard, pk=object_id)
        allowed = (
            self.has_change_permission(request, card)
            if change
            else self.has_view_or_change_permission(request, card)
        )
        if not allowed:
            raise PermissionDenied
        return card

    def _context(self, request: HttpRequest, card: RateCard, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": card,
            "card": card,
            "has_view_permission": True,
        }

    # -- export ----------------------------------------------------------------------

    def export_view(self, request: HttpRequest, object_id: int) -> StreamingHttpResponse:
        card = self._card(request, object_id, change=False)
        writer = csv.writer(_Echo(), lineterminator="\n")
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in rate_rows(card)), content_type=CSV_CONTENT_TYPE
        )
        name = slugify(card.name) or f"rate-card-{card.pk}"
        response["Content-Disposition"] = f'attachment; filename="{name}-rates.csv"'
        return response

    # -- import ----------------------------------------------------------------------

    def import_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        card = self._card(request, object_id, change=True)
        error = ""
        if request.method == "POST":
            form = RateImportForm(request.POST, request.FILES)
            if form.is_valid():
                upload = form.cleaned_data["file"]
                try:
                    job = imports.create_job(
                        request.user, card, upload.name or "upload.csv", upload.chunks()
                    )
                except imports.ImportFileError as exc:
                    error = str(exc)
                else:
                    return HttpResponseRedirect(
                        reverse("admin:rating_ratecard_import_progress", args=[card.pk, job.pk])
                    )
        else:
            form = RateImportForm()
        context = {
            **self._context(request, card, f"Import rates into {card.name}"),
            "form": form,
            "error": error,
            "columns": imports.CSV_COLUMNS,
        }
        return TemplateResponse(request, "admin/rating/ratecard/import_form.html", context)

    def _job(self, request: HttpRequest, card: RateCard, job_id: str) -> RateImport:
        row = imports.find_job(job_id, request.user, card)
        if row is None:
            raise Http404("no such import of this rate card")
        return row

    def import_progress_view(
        self, request: HttpRequest, object_id: int, job_id: str
    ) -> HttpResponse:
        card = self._card(request, object_id, change=True)
        row = self._job(request, card, job_id)
        job = imports.ImportJob.from_row(row)
        context = {
            **self._context(request, card, f"Import rates into {card.name}"),
            "job": job,
            "job_id": row.pk,
            "more_errors": job.error_total - len(job.errors),
        }
        return TemplateResponse(request, "admin/rating/ratecard/import_progress.html", context)

    def import_step_view(self, request: HttpRequest, object_id: int, job_id: str) -> HttpResponse:
        card = self._card(request, object_id, change=True)
        row = self._job(request, card, job_id)
        job, kept = imports.run_step(row)
        if job.state is imports.ImportState.DONE and kept:
            # Bulk writes send no signals: the card's history records the import.
            self.log_change(
                request,
                card,
                f"Imported rates from {job.file_name}: {job.created} created, "
                f"{job.deleted} removed, {job.unchanged} unchanged.",
            )
        if "application/json" not in request.headers.get("Accept", ""):
            return HttpResponseRedirect(
                reverse("admin:rating_ratecard_import_progress", args=[card.pk, row.pk])
            )
        return JsonResponse(
            {
                "state": job.state.value,
                "finished": job.finished,
                "percent": job.percent,
                "rows": job.rows,
                "error_total": job.error_total,
                "errors": job.errors[:MAX_ERRORS_SHOWN],
                "created": job.created,
                "deleted": job.deleted,
                "unchanged": job.unchanged,
            }
        )


@admin.register(Rate)
class RateAdmin(RoleFieldLimits[Rate], admin.ModelAdmin[Rate]):
    list_display = (
        "prefix",
        "destination",
        "card",
        "price_per_minute",
        "connect_fee",
        "initial_increment",
        "next_increment",
        "effective_from",
        "effective_until",
    )
    list_filter = ("card",)
    list_select_related = ("card",)
    # Prefix searches are anchored: "^" lets the (card, prefix) index serve them.
    search_fields = ("^prefix", "destination")
    ordering = ("card", "prefix")
    autocomplete_fields = ("card",)
    list_per_page = 100
    show_full_result_count = False  # COUNT(*) over 100k rates on every page is wasted work

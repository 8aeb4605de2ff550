"""The CDR list's table, rendered without the admin's per-cell machinery.

Django's ``result_list`` resolves every cell through ``lookup_field``,
``display_for_field`` and ``format_html`` and reverses the change URL once per row:
about 0.5 ms of Python per row, most of the CDR list's time on a page of 100 CDRs.
Every column of the CDR list is a model field or an admin method marked ``lean_text``
(it returns plain text or None), so each column's formatter is chosen once per page and
the change URL is reversed once. The HTML is the admin's own
(``tests/web/admin/test_cdrs.py`` compares the two); a list that does not fit this
shape (another kind of column, a popup, an editable list) falls back to Django's.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote as url_quote

from django import template
from django.contrib.admin.templatetags.admin_list import result_list
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.urls import reverse
from django.utils import dateformat, formats, numberformat
from django.utils.safestring import mark_safe
from django.utils.timezone import template_localtime  # type: ignore[attr-defined]
from django.utils.translation import get_language

register = template.Library()

Formatter = Callable[[Any], str]

# Stands for the primary key in the change URL reversed once per page.
_PK_MARK = "0tollguard0"
# What reverse() leaves unquoted in a path argument (RFC 3986 sub-delimiters and more).
_URL_SAFE = "!$&'()*+,;=/~:@"


@dataclass(frozen=True, slots=True)
class _Locale:
    """The active language's formats, looked up once per page as ``formats`` would."""

    decimal_separator: str
    grouping: Any
    thousand_separator: str
    datetime_format: str

    @classmethod
    def current(cls) -> _Locale:
        language = get_language()
        return cls(
            str(formats.get_format("DECIMAL_SEPARATOR", language)),
            formats.get_format("NUMBER_GROUPING", language),
            str(formats.get_format("THOUSAND_SEPARATOR", language)),
            str(formats.get_format("DATETIME_FORMAT")),
        )

    def number(self, value: Any, places: int | None = None) -> str:
        """``formats.number_format(value, places)``."""
        return numberformat.format(
            value,
            self.decimal_separator,
            places,
            self.grouping,
            self.thousand_separator,
            use_l10n=True,
        )

    def datetime(self, value: Any) -> str:
        """``formats.localize(template_localtime(value))`` for a datetime."""
        return str(dateformat.format(template_localtime(value), self.datetime_format))


def _formatter(field: models.Field[Any, Any], empty: str, locale: _Locale) -> Formatter | None:
    """``display_for_field`` for one field, decided once instead of once per cell.

    None for a field type this module does not format (Django renders that list).
    """
    if isinstance(field, models.ForeignKey):
        # The admin shows the related object itself (list_select_related fetched it).
        return lambda value: empty if value is None else str(value)
    if field.flatchoices:
        labels = {value: str(label) for value, label in field.flatchoices}
        return lambda value: labels.get(value, empty)
    blank = field.empty_values

    def guarded(show: Formatter) -> Formatter:
        return lambda value: empty if value in blank else show(value)

    if isinstance(field, models.DateTimeField):
        return guarded(locale.datetime)
    if isinstance(field, models.DecimalField):
        places = field.decimal_places
        return guarded(lambda value: locale.number(value, places))
    if isinstance(field, models.IntegerField):
        return guarded(locale.number)
    if isinstance(field, models.CharField) and type(field).__name__ in _PLAIN_TEXT:
        return guarded(str)
    return None


# CharField subclasses shown as plain text (URL and e-mail fields get links).
_PLAIN_TEXT = {"CharField", "GenericIPAddressField"}


type Column = tuple[str, models.Field[Any, Any] | None, Formatter]


def _text_column(cl: ChangeList, name: str, empty: str) -> Column | None:
    """A ``lean_text`` method of the admin as a column (None for any other attribute)."""
    method = getattr(cl.model_admin, name)
    if not getattr(method, "lean_text", False):
        return None

    def show(row: Any) -> str:
        # display_for_value: text is stripped, and nothing shows as the empty value.
        value = method(row)
        text = "" if value is None else str(value).strip()
        return text or empty

    return (name, None, show)


def _lean_shape(cl: ChangeList) -> list[Column] | None:
    """The list's (name, field, formatter) columns, or None when Django must render it.

    The field is None for a ``lean_text`` method, whose formatter takes the whole row.
    """
    if cl.formset or cl.is_popup or cl.to_field or cl.list_display_links is None:
        return None
    empty = str(cl.model_admin.get_empty_value_display())
    locale = _Locale.current()
    columns: list[Column] = []
    for name in cl.list_display:
        if not isinstance(name, str):
            return None
        if hasattr(cl.model_admin, name):
            column = _text_column(cl, name, empty)
            if column is None:
                return None
            columns.append(column)
            continue
        try:
            field = cl.lookup_opts.get_field(name)
        except FieldDoesNotExist:
            return None
        if not isinstance(field, models.Field) or field.auto_created:
            return None
        formatter = _formatter(field, empty, locale)
        if formatter is None:
            return None
        columns.append((name, field, formatter))
    return columns


@register.inclusion_tag("admin/change_list_results.html")
def cdr_result_list(cl: ChangeList) -> dict[str, Any]:
    """The context of ``change_list_results.html`` for the CDR list ``cl``."""
    columns = _lean_shape(cl)
    if columns is None:
        return dict(result_list(cl))
    context = dict(result_list_without_rows(cl))
    context["results"] = list(_rows(cl, columns))
    return context


def result_list_without_rows(cl: ChangeList) -> dict[str, Any]:
    """Django's context with an empty page, for its headers (sort links and classes)."""
    rows, cl.result_list = cl.result_list, []
    try:
        return dict(result_list(cl))
    finally:
        cl.result_list = rows


def _rows(cl: ChangeList, columns: list[Column]) -> Any:
    links = set(cl.list_display_links or ())
    opts = cl.opts
    change = reverse(
        f"admin:{opts.app_label}_{opts.model_name}_change",
        args=(_PK_MARK,),
        current_app=cl.model_admin.admin_site.name,
    )
    change = add_preserved_filters(
        {"preserved_filters": cl.preserved_filters, "opts": opts}, change
    )
    cells: list[tuple[str | None, str, Formatter, bool]] = []
    for index, (name, field, formatter) in enumerate(columns):
        classes = f"field-{name}"
        if isinstance(field, (models.DateField, models.TimeField, models.ForeignKey)):
            classes += " nowrap"
        linked = name in links or (not links and index == 0)
        cells.append((field.name if field is not None else None, classes, formatter, linked))
    for result in cl.result_list:
        parts: list[str] = []
        first_link = True
        for attribute, classes, formatter, linked in cells:
            shown = formatter(result if attribute is None else getattr(result, attribute))
            text = shown.__html__() if hasattr(shown, "__html__") else html.escape(shown)
            if linked:
                tag = "th" if first_link else "td"
                url = change.replace(_PK_MARK, url_quote(str(quote(result.pk)), safe=_URL_SAFE))
                parts.append(
                    f'<{tag} class="{classes}"><a href="{html.escape(url)}">{text}</a></{tag}>'
                )
                first_link = False
            else:
                parts.append(f'<td class="{classes}">{text}</td>')
        # One item per row: the template joins a row's items without separators, so
        # the page is the same while the template loop runs once per row, not per cell.
        # Every value was escaped above and the classes are field names.
        yield [mark_safe("".join(parts))]  # noqa: S308

"""Rate-card import (checked in steps, all or nothing) and export (streamed CSV)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tollguard.domain.plan import Rate as DomainRate
from tollguard.web.core.selectors import config_version
from tollguard.web.rating import imports
from tollguard.web.rating.models import Rate, RateCard, RateImport

from .. import factories

pytestmark = pytest.mark.usefixtures("db")

GOOD = (
    "prefix,destination,price_per_minute,connect_fee,initial_increment,next_increment\n"
    "4930,Germany Berlin,0.0100,0,60,60\n"
    "4989,Germany Munich,0.0120,,1,1\n"
    '44,"United Kingdom, all",0.02,0.05,30,6\n'
    "\n"
    "1,North America,0.005,,,\n"
)


def base(card: RateCard) -> str:
    return f"/hidden/rating/ratecard/{card.pk}"


def upload(client: Client, card: RateCard, text: str | bytes, name: str = "rates.csv") -> Any:
    data = text.encode() if isinstance(text, str) else text
    return client.post(
        f"{base(card)}/import/", {"file": SimpleUploadedFile(name, data, "text/csv")}
    )


def job_url(card: RateCard) -> str:
    """The progress page of the card's latest import."""
    job = RateImport.objects.filter(card=card).latest("started_at")
    return f"{base(card)}/import/{job.pk}/"


def run_import(client: Client, card: RateCard) -> list[dict[str, Any]]:
    """Post steps the way the page's script does, until the job is finished."""
    answers: list[dict[str, Any]] = []
    step = f"{job_url(card)}step/"
    for _ in range(1000):
        response = client.post(step, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        answers.append(response.json())
        if answers[-1]["finished"]:
            return answers
    raise AssertionError("the import never finished")


def rates_of(card: RateCard) -> set[tuple[str, str, Decimal, Decimal, int, int]]:
    return {
        (
            r.prefix,
            r.destination,
            r.price_per_minute,
            r.connect_fee,
            r.initial_increment,
            r.next_increment,
        )
        for r in Rate.objects.filter(card=card)
    }


def test_import_replaces_the_rates_and_reports_progress(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 1)  # one line per step: several steps
    card = factories.rate_card()
    factories.rate(card, "4930", "0.0100", destination="Germany Berlin")
    factories.rate(card, "33", "0.0300", destination="France")
    before = config_version()

    response = upload(client, card, GOOD)
    assert response.status_code == 302
    assert response["Location"] == job_url(card)
    page = client.get(response["Location"]).content.decode()
    assert '<progress id="rate-import-bar" max="100" value="0">' in page
    assert 'src="/static/rating/rate_import.js"' in page

    answers = run_import(client, card)
    percents = [a["percent"] for a in answers]
    assert percents == sorted(percents) and len(set(percents)) > 2
    assert [a["state"] for a in answers][-2:] == ["applying", "done"]
    assert answers[-1] | {"errors": []} == answers[-1]
    assert (answers[-1]["created"], answers[-1]["deleted"], answers[-1]["unchanged"]) == (3, 1, 1)
    assert rates_of(card) == {
        ("4930", "Germany Berlin", Decimal("0.01"), Decimal(0), 60, 60),
        ("4989", "Germany Munich", Decimal("0.012"), Decimal(0), 1, 1),
        ("44", "United Kingdom, all", Decimal("0.02"), Decimal("0.05"), 30, 6),
        ("1", "North America", Decimal("0.005"), Decimal(0), 60, 60),
    }
    assert config_version() == before + 1
    done = client.get(job_url(card)).content.decode()
    assert "3 rates created, 1 removed, 1 unchanged" in done
    run_import(client, card)  # one more step changes nothing and records nothing
    history = LogEntry.objects.get(object_id=str(card.pk))
    assert history.get_change_message() == (
        "Imported rates from rates.csv: 3 created, 1 removed, 1 unchanged."
    )


BAD = (
    "prefix,destination,price_per_minute\n"
    "4930,Berlin,0.01\n"
    "49x,Bad prefix,0.01\n"
    "4989,Munich,cheap\n"
    "4940,Hamburg,0.01,extra\n"
)


def test_a_bad_file_lists_errors_by_line_and_changes_nothing(client: Client) -> None:
    card = factories.rate_card()
    factories.rate(card, "33", "0.0300", destination="France")
    before_rates, before_version = rates_of(card), config_version()

    upload(client, card, BAD)
    answers = run_import(client, card)
    assert answers[-1]["state"] == "failed"
    errors = answers[-1]["errors"]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5"]
    assert "prefix '49x' is not a string of digits" in errors[0]
    assert "price_per_minute 'cheap' is not a decimal" in errors[1]
    assert "more cells than columns" in errors[2]
    assert rates_of(card) == before_rates
    assert config_version() == before_version
    page = client.get(job_url(card)).content.decode()
    assert "3 errors; the rate card was not changed." in page
    assert "line 4: price_per_minute" in page


def test_duplicates_are_reported_with_the_other_errors_at_once(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)  # the duplicates span several steps
    card = factories.rate_card()
    text = "prefix,price_per_minute\n4930,0.01\n49x,0.01\n4989,cheap\n4930,0.02\n44,0.03\n44,0.04\n"
    upload(client, card, text)
    errors = run_import(client, card)[-1]["errors"]
    assert errors == [
        "line 3: prefix '49x' is not a string of digits",
        "line 4: price_per_minute 'cheap' is not a decimal",
        "line 5: duplicate prefix '4930' (first on line 2)",
        "line 7: duplicate prefix '44' (first on line 6)",
    ]
    page = client.get(job_url(card)).content.decode()
    assert "4 errors; the rate card was not changed." in page


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prefix,price\n4930,0.01\n", "line 1: unknown column 'price'; missing column"),
        ("\n", "line 1: missing column 'prefix'"),
        (
            "prefix,price_per_minute,effective_from\n49,0.01,\n49,0.02,\n",
            "line 3: duplicate prefix '49' (first on line 2)",
        ),
        (
            "prefix,price_per_minute,effective_from,effective_until\n"
            "49,0.01,2026-02-01,2026-01-01\n",
            "line 2: effective_until is not after effective_from",
        ),
    ],
    ids=["bad-header", "blank", "duplicate-prefix", "end-before-start"],
)
def test_file_level_errors(client: Client, text: str, expected: str) -> None:
    card = factories.rate_card()
    upload(client, card, text)
    answers = run_import(client, card)
    assert answers[-1]["state"] == "failed"
    assert any(e.startswith(expected) for e in answers[-1]["errors"]), answers[-1]["errors"]
    assert not Rate.objects.filter(card=card).exists()


def test_an_empty_file_is_refused_at_upload(client: Client) -> None:
    card = factories.rate_card()
    response = upload(client, card, "")
    assert response.status_code == 200
    assert "The submitted file is empty." in response.content.decode()


def test_a_file_that_is_not_utf8_is_refused_at_upload(client: Client) -> None:
    card = factories.rate_card()
    response = upload(client, card, "prefix,price_per_minute\n49,0.01,Köln\n".encode("latin-1"))
    assert response.status_code == 200
    assert "not UTF-8 text" in response.content.decode()


def test_a_byte_order_mark_is_ignored(client: Client) -> None:
    card = factories.rate_card()
    upload(client, card, b"\xef\xbb\xbfprefix,price_per_minute\n49,0.01\n")
    assert run_import(client, card)[-1]["state"] == "done"
    assert Rate.objects.filter(card=card, prefix="49").exists()


def test_without_javascript_the_step_redirects_to_the_progress_page(client: Client) -> None:
    card = factories.rate_card()
    upload(client, card, GOOD)
    response = client.post(f"{job_url(card)}step/")
    assert response.status_code == 302
    assert response["Location"] == job_url(card)


def test_a_step_without_an_import_is_not_found(client: Client) -> None:
    card = factories.rate_card()
    response = client.post(f"{base(card)}/import/no-such-job/step/", HTTP_ACCEPT="application/json")
    assert response.status_code == 404


def test_another_users_import_is_not_found(client: Client) -> None:
    from django.contrib.auth import get_user_model

    card = factories.rate_card()
    upload(client, card, GOOD)
    url = job_url(card)
    other = get_user_model().objects.create(username="other", is_staff=True, is_superuser=True)
    stranger = Client()
    stranger.force_login(other)
    assert stranger.get(url).status_code == 404
    assert stranger.post(f"{url}step/", HTTP_ACCEPT="application/json").status_code == 404
    assert client.get(url).status_code == 200


def test_the_job_is_not_kept_in_the_session(client: Client) -> None:
    card = factories.rate_card()
    upload(client, card, GOOD)
    assert not any("import" in key for key, _ in client.session.items())
    job = RateImport.objects.get(card=card)
    assert len(job.pk) >= 40  # 256 random bits, not a counter


def test_a_request_in_between_cannot_roll_the_job_back(client: Client) -> None:
    """The browser's /favicon.ico, answered while the first step ran, read the session
    before the step and saved it after: the job went back to "checking" with its copy
    already deleted, and the result said the uploaded copy could not be read."""
    from django.contrib.sessions.backends.db import SessionStore

    card = factories.rate_card()
    upload(client, card, BAD)
    key = client.session.session_key
    assert key is not None
    read_by_favicon = dict(SessionStore(key).load())
    first = client.post(f"{job_url(card)}step/", HTTP_ACCEPT="application/json").json()
    stale = SessionStore(key)
    stale.update(read_by_favicon)
    stale.save()  # SESSION_SAVE_EVERY_REQUEST: the favicon's answer saves it
    answers = [first, *run_import(client, card)]
    assert answers[-1]["state"] == "failed"
    assert [e.split(":")[0] for e in answers[-1]["errors"]] == ["line 3", "line 4", "line 5"]
    assert "could not be read" not in client.get(job_url(card)).content.decode()


def test_a_step_that_lost_the_race_keeps_what_the_other_stored(
    monkeypatch: pytest.MonkeyPatch, superuser: Any
) -> None:
    monkeypatch.setattr(imports, "CHUNK_ROWS", 1)
    card = factories.rate_card()
    row = imports.create_job(superuser, card, "rates.csv", [GOOD.encode()])
    stale = RateImport.objects.get(pk=row.pk)  # read by a second request, step 0
    first, kept = imports.run_step(row)
    assert kept and first.rows == 1
    second, kept = imports.run_step(stale)  # begun from step 0, finished after step 1
    assert not kept
    assert second.rows == 1 and second.offset == first.offset
    assert RateImport.objects.get(pk=row.pk).step == 1


def test_the_file_is_applied_once_however_many_requests_ask(superuser: Any) -> None:
    card = factories.rate_card()
    row = imports.create_job(superuser, card, "rates.csv", [GOOD.encode()])
    while row.state == "validating":
        imports.run_step(row)
        row.refresh_from_db()
    assert row.state == "applying"
    late = RateImport.objects.get(pk=row.pk)
    done, kept = imports.run_step(row)
    assert kept and done.state is imports.ImportState.DONE and done.created == 4
    again, kept = imports.run_step(late)
    assert not kept and again.state is imports.ImportState.DONE and again.created == 4


def test_import_needs_change_permission(admin_urls: None) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    viewer = get_user_model().objects.create(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ratecard"))
    client = Client()
    client.force_login(viewer)
    card = factories.rate_card()
    assert client.get(f"{base(card)}/import/").status_code == 403
    assert upload(client, card, GOOD).status_code == 403
    assert client.get(f"{base(card)}/export/").status_code == 200


def exported(client: Client, card: RateCard) -> str:
    response = client.get(f"{base(card)}/export/")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{card.name}-rates.csv"'
    return response.getvalue().decode()


def test_export_writes_the_import_columns(client: Client) -> None:
    card = factories.rate_card()
    factories.rate(card, "4930", "0.0100", destination="Germany, Berlin", connect_fee="0.5")
    rows = list(csv.reader(io.StringIO(exported(client, card))))
    assert rows[0] == list(imports.CSV_COLUMNS)
    assert rows[1] == ["4930", "Germany, Berlin", "0.01", "0.5", "60", "60", "", ""]


def test_export_then_import_round_trips(client: Client) -> None:
    source = factories.rate_card("source")
    factories.rate(source, "4930", "0.0100", destination="Berlin", initial_increment=1)
    factories.rate(source, "49", "0.02", destination="Germany", connect_fee="0.001")
    factories.rate(
        source,
        "44",
        "0.03",
        effective_from="2026-01-01T00:00:00Z",
        effective_until="2026-07-01T00:00:00Z",
    )
    text = exported(client, source)

    target = factories.rate_card("target")
    upload(client, target, text)
    assert run_import(client, target)[-1]["created"] == 3
    assert exported(client, target).replace("target", "source") == text

    upload(client, source, text)
    last = run_import(client, source)[-1]
    assert (last["created"], last["deleted"], last["unchanged"]) == (0, 0, 3)


prices = st.decimals(min_value=0, max_value=Decimal("999999.999999"), places=6)
domain_rates = st.builds(
    DomainRate,
    prefix=st.from_regex(r"[1-9][0-9]{0,7}", fullmatch=True),
    destination=st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20
    ).map(str.strip),
    price_per_minute=prices,
    connect_fee=prices,
    initial_increment=st.integers(0, 3600),
    next_increment=st.integers(1, 3600),
    effective_from=st.none(),
    effective_until=st.none(),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rates=st.lists(domain_rates, max_size=8, unique_by=lambda r: r.prefix))
def test_round_trip_keeps_every_rate(client: Client, rates: list[DomainRate]) -> None:
    from tollguard.web.rating.services import sync_rates

    source, _ = RateCard.objects.get_or_create(name="source")
    target, _ = RateCard.objects.get_or_create(name="target")
    sync_rates(source, rates)
    upload(client, target, exported(client, source))
    assert run_import(client, target)[-1]["state"] == "done"
    assert rates_of(target) == rates_of(source)


def job_for(card: RateCard, text: str) -> imports.ImportJob:
    return imports.start_import(card, "rates.csv", [text.encode()])


def finish(job: imports.ImportJob, chunk_rows: int = 1) -> imports.ImportJob:
    for _ in range(100):
        if job.finished:
            return job
        job = imports.ImportJob.from_dict(imports.advance(job, chunk_rows).to_dict())
    raise AssertionError("the import never finished")


def test_line_numbers_count_lines_inside_quoted_cells() -> None:
    card = factories.rate_card()
    text = 'prefix,destination,price_per_minute\n49,"two\nlines",0.01\n48,x,0.01\n47,y,bad\n'
    job = finish(job_for(card, text))
    assert job.state is imports.ImportState.FAILED
    assert job.errors == ["line 5: price_per_minute 'bad' is not a decimal"]


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_the_uploaded_copy_is_deleted_when_the_job_ends(outcome: str) -> None:
    card = factories.rate_card()
    price = "0.01" if outcome == "done" else "bad"
    job = job_for(card, f"prefix,price_per_minute\n49,{price}\n")
    path = Path(job.path)
    assert path.exists()
    assert finish(job).state.value == outcome
    assert not path.exists()


def test_a_new_upload_discards_the_unfinished_one(client: Client) -> None:
    card = factories.rate_card()
    upload(client, card, GOOD)
    first = RateImport.objects.get(card=card)
    assert Path(first.path).exists()
    upload(client, card, GOOD)
    second = RateImport.objects.get(card=card)
    assert second.pk != first.pk
    assert Path(second.path).exists() and not Path(first.path).exists()
    imports.discard(imports.ImportJob.from_row(second))


def test_a_file_over_the_size_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 10)
    with pytest.raises(imports.ImportFileError, match="larger than"):
        imports.start_import(factories.rate_card(), "big.csv", [b"prefix,price_per_minute\n"])


def test_many_errors_are_counted_beyond_the_listed_ones() -> None:
    card = factories.rate_card()
    lines = "".join(f"{n},bad\n" for n in range(1, imports.MAX_ERRORS + 11))
    job = finish(job_for(card, "prefix,price_per_minute\n" + lines), chunk_rows=1000)
    assert len(job.errors) == imports.MAX_ERRORS
    assert job.error_total == imports.MAX_ERRORS + 10


def test_copies_of_abandoned_imports_are_deleted_by_a_later_upload() -> None:
    import os
    import time

    card = factories.rate_card()
    old = job_for(card, "prefix,price_per_minute\n49,0.01\n")
    recent = job_for(card, "prefix,price_per_minute\n49,0.01\n")
    aged = time.time() - imports.STALE_AFTER_S - 60
    os.utime(old.path, (aged, aged))
    new = job_for(card, "prefix,price_per_minute\n49,0.01\n")
    assert not Path(old.path).exists()
    assert Path(recent.path).exists() and Path(new.path).exists()
    imports.discard(recent)
    imports.discard(new)

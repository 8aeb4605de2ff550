"""The status document is written off the event loop, and replaced whole."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from tollguard.switch import status
from tollguard.switch.status import StatusPublisher, SwitchCounters


def test_a_stuck_disk_does_not_stall_the_loop_and_the_document_is_replaced_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run" / "switch-status.json"
    temporary = path.with_suffix(".tmp")
    renaming = threading.Event()  # a write reached its rename
    go_on = threading.Event()  # the disk answers again
    writers: list[int] = []
    rename = os.replace

    def stuck_replace(source: Path, target: Path) -> None:
        writers.append(threading.get_ident())
        renaming.set()
        # Written on the loop, this would hold it: the test could not set go_on.
        if not go_on.wait(2):
            raise OSError("the disk never answered")
        rename(source, target)

    async def scenario() -> None:
        calls = [0]

        def counters() -> SwitchCounters:
            calls[0] += 1
            return SwitchCounters(0, calls[0])

        publisher = StatusPublisher(path, counters, interval_s=0.01)
        publisher.publish()  # the document written before the disk got stuck
        loop_thread = threading.get_ident()
        monkeypatch.setattr(status.os, "replace", stuck_replace)
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        for _ in range(1000):
            if renaming.is_set():
                break
            await asyncio.sleep(0.005)
        # The loop runs this coroutine while the write waits in another thread.
        assert renaming.is_set()
        assert writers and loop_thread not in writers
        assert not task.done()
        # A reader still finds the previous document, whole; the new one waits beside it.
        assert json.loads(path.read_text())["calls_total"] == 1
        assert json.loads(temporary.read_text())["calls_total"] == 2
        assert calls[0] == 2  # one write at a time: none started behind the stuck one
        go_on.set()
        for _ in range(1000):
            if json.loads(path.read_text())["calls_total"] >= 2:
                break
            await asyncio.sleep(0.005)
        assert json.loads(path.read_text())["calls_total"] >= 2
        stop.set()
        await task
        # Every write was renamed into place; the stop took the document away.
        assert not temporary.exists()
        assert not path.exists()
        assert loop_thread not in writers

    asyncio.run(scenario())

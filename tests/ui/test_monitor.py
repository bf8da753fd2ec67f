"""The Monitor window against a real engine under load: charts fill, the table lists requests."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import openai
import pytest
from pytestqt.qtbot import QtBot

from assistant.clients.supervisor import Supervisor
from assistant.ui.monitor_view import MonitorView
from tests.conftest import install_model

pytestmark = [pytest.mark.starter, pytest.mark.real_engine]  # its /metrics, for real


def test_monitor_shows_charts_and_requests_in_flight(
    qtbot: QtBot, tmp_path: Path, starter_model_file: Path
) -> None:
    model = install_model(starter_model_file, tmp_path)
    supervisor = Supervisor(
        env={**os.environ, "ASSISTANT_HOME": str(tmp_path)}, announce=False, n_ctx=512, slots=2,
        api_key="sk-monitor-test",
    )  # fmt: skip
    supervisor.start().load(model.name, n_ctx=512, n_gpu_layers=0)
    client = openai.OpenAI(
        base_url=supervisor.url + "/v1", api_key="sk-monitor-test", max_retries=0, timeout=120
    )
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            client.completions.create(
                model=model.name, prompt="Once upon a time", max_tokens=24,
                extra_body={"ignore_eos": True},
            )  # fmt: skip

    workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    view = MonitorView(supervisor.url, supervisor.api_key)
    qtbot.addWidget(view)
    view.show()
    try:
        tokens = view.tokens_chart.series[0]
        qtbot.waitUntil(
            lambda: tokens.count() >= 2 and max(p.y() for p in tokens.points()) > 0, timeout=30_000
        )
        requests = view.requests_chart.series[0]
        qtbot.waitUntil(lambda: any(p.y() > 0 for p in requests.points()), timeout=30_000)
        qtbot.waitUntil(lambda: view.table.rowCount() >= 2, timeout=10_000)
        clients = {view.table.item(r, 0).text() for r in range(view.table.rowCount())}
        states = {view.table.item(r, 2).text() for r in range(view.table.rowCount())}
        assert all(c.startswith("127.0.0.1:") for c in clients)
        assert states <= {"Waiting", "Reading the prompt", "Generating"} and states
        queue = view.queue_chart.series[1]  # busy slots
        assert max(p.y() for p in queue.points()) == 2
        assert "slots busy" in view.summary.text()
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
        view.shutdown()
        supervisor.stop()

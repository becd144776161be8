"""What loading tells the operator in the log: warnings a first-hour user would otherwise meet later."""

from __future__ import annotations

import logging

import pytest

from model_api.app_state import AppState


def load_logs(caplog: pytest.LogCaptureFixture, settings) -> list[logging.LogRecord]:
    caplog.set_level(logging.INFO, logger="model_api")
    state = AppState(settings)
    state.load()
    state.close()
    return [record for record in caplog.records if record.name.startswith("model_api")]


def warnings(records: list[logging.LogRecord]) -> str:
    return " ".join(record.getMessage() for record in records if record.levelno == logging.WARNING)


def test_no_api_key_is_a_warning(make_settings, caplog):
    assert "gallery writes are disabled: the server has no CLIP_API_KEY" in warnings(
        load_logs(caplog, make_settings(api_key=None))
    )


def test_an_empty_gallery_is_a_warning(make_settings, caplog):
    assert "the gallery is empty" in warnings(load_logs(caplog, make_settings(data_dir=None)))


def test_a_key_and_a_dataset_load_without_warnings(make_settings, caplog):
    assert warnings(load_logs(caplog, make_settings())) == ""

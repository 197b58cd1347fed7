"""Shared-data sources: the HTTP source against a real server on loopback (a record, no record, an error,
no answer within the timeout) and the local table; and the settings that configure them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from orchestrator.engine.lookups import HttpSource, LookupFailed, Sources, TableSource, load_records
from orchestrator.settings import load_settings
from orchestrator.store import connect, upgrade


class DataSharing(BaseHTTPRequestHandler):
    """A 数据共享 interface: /hukou/<id> answers the record, 404 for unknown ids, 500 on /broken, and
    /slow/<id> answers after 2 s."""

    records: ClassVar[dict[str, dict]] = {"310101195001011234": {"local": True, "age": 76}}

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if parts[0] == "slow":
            time.sleep(2)
        if parts[0] == "broken":
            self.send_error(500)
            return
        if parts[0] == "text":
            body = b"<html>maintenance</html>"
        elif parts[-1] in self.records:
            body = json.dumps(self.records[parts[-1]]).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), DataSharing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_http_source_answers_a_record_or_none(server):
    source = HttpSource(server + "/hukou/{key}", timeout_s=2)
    assert source.fetch("hukou", "310101195001011234") == {"local": True, "age": 76}
    assert source.fetch("hukou", "000") is None


@pytest.mark.parametrize(
    ("path", "words"),
    [("/broken/{key}", "HTTP 500"), ("/slow/{key}", "no answer"), ("/text/{key}", "not JSON")],
)
def test_the_http_source_fails_on_an_error_a_timeout_or_no_json(server, path, words):
    with pytest.raises(LookupFailed, match=words):
        HttpSource(server + path, timeout_s=0.5).fetch("hukou", "310101195001011234")


def test_an_unreachable_source_fails():
    with pytest.raises(LookupFailed, match="unreachable"):
        HttpSource("http://127.0.0.1:9/hukou/{key}", timeout_s=1).fetch("hukou", "1")


def test_the_key_is_quoted_into_the_address(server):
    DataSharing.records["a/b c"] = {"local": False}
    try:
        assert HttpSource(server + "/hukou/{key}").fetch("hukou", "a/b c") is None  # one path segment, not two
    finally:
        del DataSharing.records["a/b c"]


def test_sources_from_settings_use_http_where_configured_and_the_table_elsewhere(tmp_path, server):
    db = connect(f"sqlite:///{tmp_path / 'l.sqlite'}")
    upgrade(db)
    settings = load_settings(lookup_sources={"hukou": {"url": server + "/hukou/{key}", "timeout_s": 1}})
    sources = Sources.from_settings(db, settings)
    assert isinstance(sources["hukou"], HttpSource) and sources["hukou"].timeout_s == 1
    assert isinstance(sources["credit"], TableSource)
    from datetime import UTC, datetime

    load_records(db, "credit", [("91310000MA1K", {"blacklisted": False})], datetime.now(UTC))
    assert sources["credit"].fetch("credit", "91310000MA1K") == {"blacklisted": False}
    load_records(db, "credit", [("91310000MA1K", {"blacklisted": True})], datetime.now(UTC))  # replaced
    assert sources["credit"].fetch("credit", "91310000MA1K") == {"blacklisted": True}
    assert sources["credit"].fetch("credit", "nobody") is None
    db.dispose()


def test_lookup_sources_come_from_the_environment_as_json(monkeypatch):
    monkeypatch.setenv("TONGBAN_LOOKUP_SOURCES", '{"hukou": {"url": "http://dsp.example/hukou/{key}"}}')
    settings = load_settings()
    assert settings.lookup_sources["hukou"].url == "http://dsp.example/hukou/{key}"

"""The shared HTTP client against a scripted server on loopback: retries, deadline, redirects.

The server answers each request with the next of its scripted answers (the last one repeats)
and counts what it got, so every test sees the attempts really made on the wire.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter

from pytest_rollout_slo.backends.http import HttpClient, transport_message
from pytest_rollout_slo.clock import deadline_at

Answer = tuple[int, dict[str, str]]


class Scripted:
    def __init__(self) -> None:
        self.answers: list[Answer] = [(200, {})]
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.paths: list[str] = []  # as on the request line: absolute when sent to a proxy
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                scripted.seen.append((self.command, dict(self.headers)))
                scripted.paths.append(self.path)
                n = len(scripted.seen) - 1
                status, headers = scripted.answers[min(n, len(scripted.answers) - 1)]
                body = b'{"ok": true}'
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    yield scripted
    scripted.server.shutdown()
    scripted.server.server_close()


def send(client: HttpClient, method: str, url: str) -> requests.Response:
    return client.request(method, url, timeout=client.attempt_timeout())


def test_a_bad_gateway_is_retried_then_answered(server: Scripted) -> None:
    server.answers = [(502, {}), (503, {}), (200, {})]
    client = HttpClient(timeout=2, retries=3, backoff=0)
    assert send(client, "GET", server.url).status_code == 200
    assert len(server.seen) == 3


def test_retries_end_with_the_servers_last_answer(server: Scripted) -> None:
    server.answers = [(503, {})]
    response = send(HttpClient(timeout=2, retries=2, backoff=0), "GET", server.url)
    assert response.status_code == 503
    assert len(server.seen) == 3


def test_only_the_methods_named_safe_are_retried(server: Scripted) -> None:
    server.answers = [(503, {}), (200, {})]
    client = HttpClient(timeout=2, retries=3, backoff=0, retried_methods=("GET",))
    assert send(client, "PUT", server.url).status_code == 503
    assert send(client, "POST", server.url).status_code == 200  # the second answer
    assert len(server.seen) == 2


def test_a_redirect_is_returned_never_followed(server: Scripted) -> None:
    server.answers = [(302, {"Location": "http://attacker.invalid/steal"})]
    client = HttpClient(timeout=2, headers={"PRIVATE-TOKEN": "tok"})
    response = send(client, "GET", server.url)
    assert response.status_code == 302
    assert len(server.seen) == 1
    assert server.seen[0][1]["PRIVATE-TOKEN"] == "tok"


def test_no_backoff_past_the_run_deadline(server: Scripted) -> None:
    server.answers = [(503, {})]
    client = HttpClient(timeout=2, retries=5, backoff=10)
    started = time.monotonic()
    with deadline_at(time.monotonic() + 1.0):
        assert send(client, "GET", server.url).status_code == 503
    assert time.monotonic() - started < 5
    # urllib3 retries once at once (no backoff before the first retry); the next would wait
    # 20 s, past the deadline, so the retries end there.
    assert len(server.seen) == 2


def test_each_attempt_timeout_is_cut_to_the_time_left() -> None:
    client = HttpClient(timeout=30)
    assert client.attempt_timeout() == (5.0, 30)
    with deadline_at(time.monotonic() + 2.0):
        connect, read = client.attempt_timeout()
    assert 1.5 < connect <= 2.0 and 1.5 < read <= 2.0
    with deadline_at(time.monotonic() - 1.0):
        assert client.attempt_timeout() == (0.001, 0.001)


def test_retry_after_is_honoured_up_to_the_cap(server: Scripted) -> None:
    server.answers = [(429, {"Retry-After": "1"}), (200, {})]
    client = HttpClient(timeout=2, retries=2, backoff=0, retry_after=5)
    started = time.monotonic()
    assert send(client, "GET", server.url).status_code == 200
    assert time.monotonic() - started >= 0.9
    assert len(server.seen) == 2


@pytest.mark.parametrize("wait", ["3600", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_a_longer_retry_after_ends_the_retries(server: Scripted, wait: str) -> None:
    server.answers = [(429, {"Retry-After": wait}), (200, {})]
    client = HttpClient(timeout=2, retries=2, backoff=0, retry_after=5)
    started = time.monotonic()
    assert send(client, "GET", server.url).status_code == 429
    assert time.monotonic() - started < 3
    assert len(server.seen) == 1


def test_a_retry_after_beyond_the_deadline_ends_the_retries(server: Scripted) -> None:
    server.answers = [(503, {"Retry-After": "2"}), (200, {})]
    client = HttpClient(timeout=2, retries=2, backoff=0, retry_after=30)
    with deadline_at(time.monotonic() + 1.0):
        assert send(client, "GET", server.url).status_code == 503
    assert len(server.seen) == 1


def test_without_retry_after_a_429_is_not_retried(server: Scripted) -> None:
    server.answers = [(429, {"Retry-After": "0"}), (200, {})]
    assert send(HttpClient(timeout=2, retries=2), "GET", server.url).status_code == 429
    assert len(server.seen) == 1


def test_a_refused_connection_in_words(server: Scripted) -> None:
    url = server.url
    server.server.shutdown()
    server.server.server_close()
    client = HttpClient(timeout=2, retries=0)
    timeout = client.attempt_timeout()
    with pytest.raises(requests.RequestException) as caught:
        client.request("GET", url, timeout=timeout)
    assert transport_message(caught.value, url, timeout) == (
        f"connection refused by {url}; is the server running and is url right?")


def test_retry_chatter_goes_to_a_debug_logger_not_into_the_items_log(
        caplog: pytest.LogCaptureFixture) -> None:
    # urllib3 logs every retry as a WARNING; pytest would show those lines in the captured
    # log of whichever item runs. Ours go to pytest_rollout_slo.http at DEBUG.
    with socket.socket() as unused:  # a bound port that never listens refuses connects
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/api"
        client = HttpClient(timeout=1.0, retries=2, backoff=0.01)
        with caplog.at_level(logging.WARNING), pytest.raises(requests.ConnectionError):
            client.request("GET", url, timeout=client.attempt_timeout())
        assert not [r for r in caplog.records if "Retrying" in r.getMessage()], caplog.text
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="pytest_rollout_slo.http"), \
                pytest.raises(requests.ConnectionError):
            client.request("GET", url, timeout=client.attempt_timeout())
        client.close()
    retries = [r for r in caplog.records if r.name == "pytest_rollout_slo.http"]
    assert len(retries) == 2, caplog.text
    assert all(r.levelno == logging.DEBUG and "Retrying" in r.getMessage() for r in retries)


def test_another_librarys_urllib3_warnings_are_left_alone(
        caplog: pytest.LogCaptureFixture) -> None:
    from urllib3.util.retry import Retry

    with caplog.at_level(logging.WARNING):
        logging.getLogger("urllib3.connectionpool").warning(
            "Retrying (%r) after connection broken by '%r': %s", Retry(2), OSError(), "/x")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


# -- what the environment gives: proxies, CA bundles, ~/.netrc ------------------------------

ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE",
               "CURL_CA_BUNDLE", "SSL_CERT_FILE", "NETRC")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # never the user's own
    return monkeypatch


def test_the_proxy_of_the_environment_is_used(server: Scripted,
                                              clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP_PROXY", server.url.removesuffix("/api"))
    client = HttpClient(timeout=2, url="http://prometheus.invalid:9090")
    assert send(client, "GET", "http://prometheus.invalid:9090/api/v1/query").status_code == 200
    assert server.paths == ["http://prometheus.invalid:9090/api/v1/query"]


def test_no_proxy_of_the_environment_is_honoured(server: Scripted,
                                                 clean_env: pytest.MonkeyPatch) -> None:
    with socket.socket() as unused:  # a proxy that refuses every connection
        unused.bind(("127.0.0.1", 0))
        clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused.getsockname()[1]}")
        clean_env.setenv("NO_PROXY", "127.0.0.1")
        assert send(HttpClient(timeout=2, retries=0), "GET", server.url).status_code == 200
    assert server.paths == ["/api"]


def test_the_environment_is_read_once_when_the_client_is_made(
        server: Scripted, clean_env: pytest.MonkeyPatch) -> None:
    # Resolved at backend creation, as documented, not looked up again for every query.
    client = HttpClient(timeout=2, retries=0, url=server.url)
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert send(client, "GET", server.url).status_code == 200


def test_netrc_credentials_are_sent_when_no_auth_is_set(
        server: Scripted, clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bot password s3cret\n", encoding="utf-8")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    send(HttpClient(timeout=2), "GET", server.url)
    send(HttpClient(timeout=2, auth=("mine", "pw")), "GET", server.url)
    sent = [headers["Authorization"] for _, headers in server.seen]
    assert sent == ["Basic " + base64.b64encode(b"bot:s3cret").decode(),
                    "Basic " + base64.b64encode(b"mine:pw").decode()]


class TlsServer:
    """A Scripted server behind TLS, with a certificate of a throwaway CA."""

    def __init__(self, tmp_path: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.ca_file = tmp_path / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.other_ca_file = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(self.other_ca_file))
        self.scripted = Scripted()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        server = self.scripted.server
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.url = self.scripted.url.replace("http://", "https://")


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsServer]:
    made = TlsServer(tmp_path)
    yield made
    made.scripted.server.shutdown()
    made.scripted.server.server_close()


def test_an_unknown_ca_fails_the_handshake(tls_server: TlsServer,
                                           clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        send(HttpClient(timeout=2, retries=0), "GET", tls_server.url)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_a_ca_bundle_from_the_environment_is_trusted(
        tls_server: TlsServer, clean_env: pytest.MonkeyPatch, variable: str) -> None:
    clean_env.setenv(variable, str(tls_server.ca_file))
    assert send(HttpClient(timeout=2, retries=0), "GET", tls_server.url).status_code == 200


def test_the_backends_own_ca_file_beats_the_environments(
        tls_server: TlsServer, clean_env: pytest.MonkeyPatch) -> None:
    # tls.ca_file is the user's choice for this backend; REQUESTS_CA_BUNDLE must not drop it.
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tls_server.other_ca_file))
    client = HttpClient(timeout=2, retries=0, verify=str(tls_server.ca_file))
    assert send(client, "GET", tls_server.url).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        send(HttpClient(timeout=2, retries=0), "GET", tls_server.url)


def test_every_request_carries_the_clients_headers_and_a_fresh_body(server: Scripted) -> None:
    client = HttpClient(timeout=2, headers={"X-Scope-OrgID": "team"})
    for text in ("up", "a much longer query than the first"):
        response = client.request("POST", server.url, data={"query": text},
                                  timeout=client.attempt_timeout())
        assert response.status_code == 200
    lengths = [headers["Content-Length"] for _, headers in server.seen]
    assert lengths == [str(len("query=up")), str(len("query=a+much+longer+query+than+the+first"))]
    assert all(headers["X-Scope-OrgID"] == "team" for _, headers in server.seen)


def test_a_form_post_carries_the_headers_and_its_own_body(server: Scripted) -> None:
    client = HttpClient(timeout=2, headers={"X-Scope-OrgID": "team"})
    for text in ("up", "a much longer query"):
        assert client.post_form(server.url, {"query": text},
                                timeout=client.attempt_timeout()).status_code == 200
    assert [headers["Content-Length"] for _, headers in server.seen] == ["8", "25"]
    assert {headers["Content-Type"] for _, headers in server.seen} == {
        "application/x-www-form-urlencoded"}
    assert all(headers["X-Scope-OrgID"] == "team" for _, headers in server.seen)


def test_a_pool_closed_since_it_was_kept_is_looked_up_again(server: Scripted) -> None:
    # The adapter keeps each origin's pool; a pool the manager has closed since is not reused.
    client = HttpClient(timeout=2)
    assert send(client, "GET", server.url).status_code == 200
    adapter = client.session.get_adapter(server.url)
    assert isinstance(adapter, HTTPAdapter)
    adapter.poolmanager.clear()
    assert send(client, "GET", server.url).status_code == 200
    assert len(server.seen) == 2

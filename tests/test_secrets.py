"""No secret in any output: spec errors, settings errors, reprs, cut bodies, and every file.

The end-to-end tests run the plugin against a scripted Prometheus on loopback that echoes
the credentials it receives into its answers (labels, and an error body where the secret
straddles the 120-byte cut), then read every output: the terminal, JUnit XML, Markdown,
JSON evidence and the recording. The Hypothesis tests generate the secrets.
"""

from __future__ import annotations

import base64
import json
import string
import textwrap
import threading
import unicodedata
from collections.abc import Iterator
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rollout_slo.backends.prometheus import PROMETHEUS
from pytest_rollout_slo.backends.redact import MASK, Redactor, printable
from pytest_rollout_slo.errors import BackendConfigError, SpecError
from pytest_rollout_slo.spec.load import BackendSpec, load_spec
from pytest_rollout_slo.spec.settings import SettingValues

pytest_plugins = ["pytester"]

QUIET = ("-p", "no:hypothesispytest", "-p", "no:cacheprovider")
SECRET = "Sx-s3cr3t-Token-Zq"


def leaks(text: str, secret: str) -> list[str]:
    """The forms of ``secret`` found in ``text``: raw, JSON- and XML-escaped, url-quoted."""
    forms = {secret, json.dumps(secret)[1:-1], escape(secret, quote=False), escape(secret),
             quote(secret, safe=""), quote_plus(secret)}
    return sorted(form for form in forms if form and form in text)


# --- spec errors at collection ----------------------------------------------------------

SPEC = """\
version: 1
service: s
backends:
  m:
    type: prometheus
    url: http://prometheus:9090
{setting}
stages:
  s: {{}}
objectives:
  - name: up
    query: up
    max: 1
"""


@pytest.mark.parametrize(("setting", "key"), [
    (f'    basic_auth: "u:{SECRET}"', "backends.m.basic_auth"),
    (f'    headers: "X-Auth-Token: {SECRET}"', "backends.m.headers"),
    (f"    headers: {{X-Auth-Token: [{SECRET}]}}", "backends.m.headers.X-Auth-Token"),
    (f"    bearer_token: [{SECRET}]", "backends.m.bearer_token"),
    (f"    basic_auth: {{username: u, password: [{SECRET}]}}", "backends.m.basic_auth.password"),
    (f'    bearer_token: "{SECRET}\\n"', "backends.m.bearer_token"),
    (f'    headers: {{X-Auth-Token: "{SECRET}\\r\\n"}}', "backends.m.headers.X-Auth-Token"),
    (f'    basic_auth: {{username: u, password: "{SECRET}\\t"}}',
     "backends.m.basic_auth.password"),
])
def test_a_secret_setting_is_never_quoted_in_a_spec_error(tmp_path: Path, setting: str,
                                                          key: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(setting=setting), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path, {"prometheus": PROMETHEUS})
    assert info.value.key == key
    assert info.value.line == 7
    assert not leaks(str(info.value), SECRET), str(info.value)


def test_a_url_of_the_wrong_type_is_not_quoted(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(setting="").replace(
        "url: http://prometheus:9090", f"url: [http://alice:{SECRET}@prometheus:9090]"),
        encoding="utf-8")
    with pytest.raises(SpecError, match="must be string, got a list") as info:
        load_spec(path, {"prometheus": PROMETHEUS})
    assert SECRET not in str(info.value)


def test_a_control_character_in_a_setting_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SPEC.format(setting='    headers: {X-Scope-OrgID: "tenant\\u0007"}'),
                    encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path, {"prometheus": PROMETHEUS})
    assert str(info.value) == (
        f"{path}:7: backends.m.headers.X-Scope-OrgID: contains a control character (a line "
        "break, a tab or another character that does not print, often the trailing newline "
        "of a secret file or variable); remove it (the value is not shown, as it may be a "
        "secret)")


# --- settings errors at run time --------------------------------------------------------

@pytest.mark.parametrize("settings", [
    {"headers": {"X-Auth-Token": f"{SECRET}\n"}},
    {"headers": {"X-Scope-OrgID": f"{SECRET}\x00"}},
    {"bearer_token": f"{SECRET}\u2028"},
    {"bearer_token": f"{SECRET}\u20ac"},  # not Latin-1: no HTTP header can carry it
    {"basic_auth": {"username": "u", "password": f"\x1b{SECRET}"}},
    {"url": f"http://alice:{SECRET}@prometheus:9090\n"},
    {"params": {"api_key": f"{SECRET}\r"}},
])
def test_a_resolved_setting_with_a_control_character_is_refused_unquoted(
        settings: dict[str, Any]) -> None:
    with pytest.raises(BackendConfigError) as info:
        PROMETHEUS.config("m", {"url": "http://prometheus:9090", **settings}, Path("."))
    assert not leaks(str(info.value), SECRET), str(info.value)
    assert str(info.value).startswith("backend m: setting ")


def test_settings_objects_hide_their_values_from_repr() -> None:
    raw = {"url": f"http://alice:{SECRET}@p:9090", "bearer_token": SECRET,
           "headers": {"X-Auth-Token": SECRET}, "params": {"api_key": SECRET}}
    spec = BackendSpec("m", "prometheus", raw, 3)
    assert isinstance(spec.settings, SettingValues)
    assert spec.settings == raw  # still the same values, only not shown
    assert SECRET not in repr(spec) and SECRET not in str(spec.settings)
    assert repr(spec.settings) == "SettingValues(url=***, bearer_token=***, headers=***, " \
                                  "params=***)"
    config = PROMETHEUS.config("m", {"url": "http://p:9090", "params": {"api_key": SECRET},
                                     "headers": {"X-Auth-Token": SECRET}}, Path("."))
    assert SECRET not in repr(config)
    assert SECRET in config.secrets


# --- redaction before truncation --------------------------------------------------------

@pytest.mark.parametrize("offset", [100, 110, 117, 119, 120])
def test_a_body_cut_through_a_secret_shows_none_of_it(offset: int) -> None:
    body = ("e" * offset + SECRET + " and more").encode()
    shown = printable(body, redact=Redactor([SECRET]))
    assert "Sx" not in shown and "s3" not in shown, shown
    assert shown.startswith('"' + "e" * min(offset, 120))


def test_a_url_with_credentials_cut_before_its_at_sign_shows_none_of_them() -> None:
    body = ("e" * 100 + " see http://alice:hunter2@host/x").encode()
    shown = printable(body, redact=Redactor([]))
    assert "alice" not in shown and "hunter" not in shown, shown


def test_masking_never_spells_a_secret_again() -> None:
    # Masking "**a" in "***a" leaves "***" + ... : the replacing repeats until none is left.
    redact = Redactor(["x**"])
    assert "x**" not in redact("xx**")
    assert "x**" not in redact("xxxx****")


_SECRET_CHARS = string.ascii_letters + string.digits + "-_~!$&'()+,;=:@/?#[]{}%^`|\\<>"


@given(secret=st.text(_SECRET_CHARS, min_size=1, max_size=40),
       offset=st.integers(0, 200), tail=st.integers(0, 200), limit=st.integers(1, 160))
def test_generated_secrets_never_show_in_a_cut_body(secret: str, offset: int, tail: int,
                                                   limit: int) -> None:
    # The padding holds none of the secret's characters: any of them in the output leaked.
    body = ("." * offset + secret + "." * tail).encode()
    shown = printable(body, limit, redact=Redactor([secret]))
    inner = shown.removeprefix('"').removesuffix('"').removesuffix("...").replace(MASK, "")
    assert set(inner) <= {"."}, (shown, secret)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)


@given(secrets=st.lists(st.text(_SECRET_CHARS, min_size=2, max_size=20), min_size=1,
                        max_size=3),
       parts=st.lists(_TEXT, max_size=6), data=st.data())
def test_generated_secrets_never_survive_the_deep_scrub(secrets: list[str], parts: list[str],
                                                       data: st.DataObject) -> None:
    # Secrets spliced into arbitrary text, next to each other, to masks and to their own
    # prefixes; in keys, lists and nested mappings, as a record's dict and a recording hold.
    pieces = [*parts, *secrets, *(s[: len(s) // 2] for s in secrets), MASK, "*"]
    strings = st.lists(st.sampled_from(pieces), max_size=8).map("".join)
    document = data.draw(st.recursive(
        strings, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
            strings, inner, max_size=3), max_leaves=10))
    texts = list(strings_in(Redactor(secrets).deep(document)))
    for secret in secrets:
        if set(secret) <= set(MASK):
            continue  # never a secret: see Redactor
        assert not [t for t in texts if secret in t], (secret, texts)


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from strings_in(key)
            yield from strings_in(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from strings_in(inner)


@given(secret=st.text(st.characters(codec="utf-8"), min_size=1,
                      max_size=30).map(lambda s: f"Sx{s}Zq"),
       where=st.sampled_from(["bearer_token", "password", "header", "url", "param"]))
def test_generated_secrets_are_refused_or_hidden_by_the_config_check(secret: str,
                                                                    where: str) -> None:
    url = "http://prometheus:9090"
    choices: dict[str, dict[str, Any]] = {
        "bearer_token": {"bearer_token": secret},
        "password": {"basic_auth": {"username": "u", "password": secret}},
        "header": {"headers": {"X-Auth-Token": secret}},
        "url": {"url": f"http://alice:{quote(secret, safe='')}@prometheus:9090"},
        "param": {"params": {"api_key": secret}},
    }
    settings = choices[where]
    try:
        config = PROMETHEUS.config("m", {"url": url, **settings}, Path("."))
    except BackendConfigError as exc:
        assert not leaks(str(exc), secret), str(exc)
        return
    assert not leaks(repr(config), secret)
    assert secret in config.secrets  # so the run masks it wherever it turns up


# --- every output of a run --------------------------------------------------------------

class EchoServer:
    """A scripted Prometheus that puts what it was sent into its answers.

    ``echo`` answers two series, one of value 2 (a breach of ``max: 1``), whose labels hold the
    Authorization header, the decoded basic-auth password and the X-Auth-Token header;
    ``cut`` answers HTTP 500 with the token at byte 110 of a plain-text body; ``warn``
    answers success with the token in a warning.
    """

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                token = self.headers.get("X-Auth-Token", "")
                auth = self.headers.get("Authorization", "")
                password = ""
                if auth.startswith("Basic "):
                    password = base64.b64decode(auth[6:]).decode("latin-1").partition(":")[2]
                at = float(form.get("time", "0"))
                query = form.get("query", "")
                status, body, kind = 200, b"", "application/json"
                if query == "echo":
                    metric = {"auth": auth, "password": password, "token": token}
                    body = json.dumps({"status": "success", "data": {"resultType": "vector",
                                       "result": [{"metric": {**metric, "n": "1"},
                                                   "value": [at, "2"]},
                                                  {"metric": {**metric, "n": "2"},
                                                   "value": [at, "0.5"]}]}}).encode()
                elif query == "cut":
                    status, kind = 500, "text/plain; charset=utf-8"
                    body = ("e" * 110 + token + " failed").encode()
                else:
                    body = json.dumps({"status": "success", "warnings": [f"tenant {token}"],
                                       "data": {"resultType": "vector", "result": [
                                           {"metric": {}, "value": [at, "0.5"]}]}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture(scope="module")
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


GATE = """\
version: 1
service: s
backends:
  m:
    type: prometheus
    url: {url}
    basic_auth: {{username: alice, password: "${{env:SLO_TEST_PASSWORD}}"}}
    headers: {{X-Auth-Token: "${{env:SLO_TEST_TOKEN}}"}}
    on_warnings: {on_warnings}
    check_metrics: false  # the echo server answers queries only
    check_freshness: false
stages:
  s: {{}}
objectives:
  - name: echoed_labels
    query: echo
    max: 1
  - name: cut_body
    query: cut
    max: 1
  - name: warned
    query: warn
    max: 1
"""


def run_everything(pytester: pytest.Pytester, url: str, password: str, token: str,
                   on_warnings: str = "fail") -> dict[str, str]:
    """One run with every output on; the texts of all of them, by name."""
    pytester.makefile(".slo.yaml", gate=GATE.format(url=url, on_warnings=on_warnings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLO_TEST_PASSWORD", password)
        patch.setenv("SLO_TEST_TOKEN", token)
        result = pytester.runpytest(
            *QUIET, "--slo-stage=s", "-rA", "-l", "--junitxml=junit.xml",
            "--slo-report-md=slo.md", "--slo-report-json=slo.json", "--slo-record=rec.json")
    outputs = {"terminal": result.stdout.str() + result.stderr.str()}
    for name in ("junit.xml", "slo.md", "slo.json", "rec.json"):
        path = pytester.path / name
        outputs[name] = path.read_text(encoding="utf-8") if path.exists() else ""
    return outputs


def assert_no_leak(outputs: dict[str, str], *secrets: str) -> None:
    for name, text in outputs.items():
        for secret in secrets:
            assert not leaks(text, secret), f"{secret!r} in {name}:\n{text}"


def test_no_configured_secret_reaches_any_output(pytester: pytest.Pytester,
                                                 echo_server: EchoServer) -> None:
    password, token = "pw-Hunter2-Zq", "tok-Aa7F00-Zq"
    outputs = run_everything(pytester, echo_server.url, password, token)
    basic = base64.b64encode(f"alice:{password}".encode()).decode()
    assert_no_leak(outputs, password, token, basic)
    # The run really met the secrets: masked where the server echoed them.
    terminal = outputs["terminal"]
    assert 'auth="Basic ***"' in terminal and 'password="***"' in terminal, terminal
    assert 'token="***"' in terminal
    assert '"' + "e" * 110 + '***' in terminal or "e" * 110 + "..." in terminal
    assert "tenant ***" in terminal
    for name in ("junit.xml", "slo.md", "slo.json", "rec.json"):
        assert "***" in outputs[name], name
    assert "\"password\": \"***\"" in outputs["rec.json"]  # the label, masked in the recording


def test_a_header_with_a_line_break_leaks_nowhere_without_a_server(
        pytester: pytest.Pytester) -> None:
    # No server needed: the setting is refused before any request.
    outputs = run_everything(pytester, "http://127.0.0.1:9", "pw-ok-Zq", "SECRET-Tok-Zq\n")
    assert_no_leak(outputs, "SECRET-Tok-Zq")
    assert "headers.X-Auth-Token contains a control character" in outputs["terminal"]


def test_url_credentials_leak_nowhere(pytester: pytest.Pytester,
                                      echo_server: EchoServer) -> None:
    url = echo_server.url.replace("http://", "http://alice:${env:SLO_TEST_URLPW}@")
    spec = GATE.format(url=url, on_warnings="ignore").replace(
        '    basic_auth: {username: alice, password: "${env:SLO_TEST_PASSWORD}"}\n', "")
    pytester.makefile(".slo.yaml", gate=spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SLO_TEST_URLPW", "urlpw-Qq9-Zq")
        patch.setenv("SLO_TEST_TOKEN", "tok-Bb8-Zq")
        result = pytester.runpytest(*QUIET, "--slo-stage=s", "-rA", "--slo-report-md=slo.md")
    text = result.stdout.str() + (pytester.path / "slo.md").read_text(encoding="utf-8")
    assert "urlpw-Qq9-Zq" not in text and "tok-Bb8-Zq" not in text
    assert 'password="***"' in text


_HEADER_SECRET = st.text(st.characters(codec="latin-1").filter(
    lambda c: unicodedata.category(c) != "Cc"),
                         min_size=1, max_size=24).map(lambda s: f"Sx{s}Zq")


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(password=_HEADER_SECRET, token=_HEADER_SECRET, on_warnings=st.sampled_from(
    ["fail", "ignore"]))
def test_generated_secrets_never_reach_any_output(pytester: pytest.Pytester,
                                                  echo_server: EchoServer, password: str,
                                                  token: str, on_warnings: str) -> None:
    # Each example writes the same files in pytester's directory anew.
    for name in ("junit.xml", "slo.md", "slo.json", "rec.json"):
        (pytester.path / name).unlink(missing_ok=True)
    outputs = run_everything(pytester, echo_server.url, password, token, on_warnings)
    basic = base64.b64encode(f"alice:{password}".encode("latin-1")).decode()
    assert_no_leak(outputs, password, token, basic)
    assert outputs["junit.xml"], outputs["terminal"]


def test_a_spec_quoting_no_secret_is_written_as_before(tmp_path: Path) -> None:
    # The scrub only acts with secrets configured; the SettingValues wrapper changes no value.
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(SPEC.format(setting="")), encoding="utf-8")
    spec = load_spec(path, {"prometheus": PROMETHEUS})
    assert dict(spec.backends["m"].settings) == {"url": "http://prometheus:9090"}

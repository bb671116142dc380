"""A database password never shows, whatever characters it holds: in the CLI's output, the workers'
logs, the report's files, or anything written to the store (the dashboard's notes included).

The local PostgreSQL trusts 127.0.0.1, so it accepts any password; the URL carries it percent-encoded,
as SQLAlchemy reads it.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from urllib.parse import quote

import pytest

from tests import forked_cli
from tests.conftest import admin_connect
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

# Every printable ASCII character, space included, in one password; and one drawn at random.
EVERY_CHARACTER = "".join(chr(c) for c in range(32, 127))
DRAWN = "".join(random.Random(0).choices(string.printable[:95], k=20))


def _forms(password: str) -> set[str]:
    """The ways a password could leak: as typed, percent-encoded, or form-encoded."""
    return {password, quote(password, safe=""), quote(password, safe="").replace("%20", "+")}


def _store_text(database: str) -> str:
    """Everything in the store's tables, as text."""
    conn = admin_connect()
    conn.autocommit = True
    try:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database) as db, db.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [row[0] for row in cur.fetchall()]
            chunks = []
            for table in tables:
                cur.execute(f'SELECT t::text FROM "{table}" t')
                chunks.extend(row[0] for row in cur.fetchall())
            return "\n".join(chunks)
    finally:
        conn.close()


def _assert_hidden(password: str, *texts: str) -> None:
    for text in texts:
        for form in _forms(password):
            assert form not in text, f"the password shows as {form!r}"


def test_a_password_of_every_character_never_shows_anywhere(tiny_digits, postgres_url, tmp_path):
    password = EVERY_CHARACTER
    url = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{quote(password, safe='')}@")
    spec = str(tiny_digits("secret", trials=2, counts=(60, 120), epochs=3))

    outputs = []
    for args in (
        ("run", spec, "--storage", url, "--workers", "2"),
        ("status", spec, "--storage", url),
        ("best", spec, "--storage", url),
        ("report", spec, "--storage", url, "--out", str(tmp_path / "report")),
    ):
        done = run_cli(*args, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, (args[0], done.stderr[-2000:])
        outputs += [done.stdout, done.stderr]
    assert any("postgres:***@" in text for text in outputs)  # the URL is shown, masked

    files = [p.read_text(errors="replace") for p in (tmp_path / "report").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in (tmp_path / "report").iterdir())
    database = postgres_url.rsplit("/", 1)[1]
    _assert_hidden(password, *outputs, *files, _store_text(database))


@pytest.mark.parametrize("password", [EVERY_CHARACTER, DRAWN])
def test_a_password_never_shows_in_errors_and_status(tiny_digits, postgres_url, tmp_path, password):
    spec = str(tiny_digits("secret"))
    encoded = quote(password, safe="")
    # Unreachable: the one-line error names the store, masked.
    gone = run_cli("status", spec, "--storage", f"postgresql://me:{encoded}@127.0.0.1:9/db", cwd=tmp_path, timeout=60)
    assert gone.returncode == 2 and gone.stderr.count("\n") == 1, gone.stderr
    # In the query string, as libpq's keyword.
    query = f"{postgres_url}?password={encoded}"
    created = run_cli("create", spec, "--storage", query, cwd=tmp_path, timeout=120)
    status = run_cli("status", spec, "--storage", query, cwd=tmp_path, timeout=60)
    assert created.returncode == 0 and status.returncode == 0, created.stderr + status.stderr
    _assert_hidden(password, gone.stdout, gone.stderr, created.stdout, created.stderr, status.stdout, status.stderr)


# Written raw into the URL, as people do: a space, "/", "#" and "?" in a query password (which
# connects), and a userinfo password shorter than the 4 characters a bare secret is masked from.
RAW_PASSWORDS = {"query": "Zq/7 x#Pw?k", "userinfo": "x y"}


def _raw_url(postgres_url: str, how: str) -> str:
    password = RAW_PASSWORDS[how]
    if how == "query":
        return f"{postgres_url}?password={password}"
    return postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")


def _raw_forms(how: str) -> set[str]:
    """What would show a raw password: every form of it (a short one framed as in a URL), and what follows its space."""
    password = RAW_PASSWORDS[how]
    if how == "userinfo":
        return {f":{form}@" for form in _forms(password)}
    return _forms(password) | {password.split(" ", 1)[1]}


def _dashboard_banner(spec: str, url: str, cwd: Path) -> str:
    """The line ``dashboard`` prints when it listens, and what it wrote besides."""
    dashboard = forked_cli.start(["dashboard", "--storage", url, "--port", "0"], cwd=cwd)
    try:
        banner = dashboard.stdout.readline()
    finally:
        dashboard.terminate()
        rest, errors = dashboard.communicate(timeout=60)
    return banner + rest + errors


@pytest.mark.parametrize("how", ["query", "userinfo"])
def test_a_raw_password_with_a_space_never_shows(tiny_digits, postgres_url, tmp_path, how):
    url = _raw_url(postgres_url, how)
    spec = str(tiny_digits("secret", trials=1, counts=(60, 120), epochs=2))
    out = tmp_path / "report"
    outputs = []
    for args in (
        ("run", spec, "--storage", url, "--workers", "1", "--log-format", "json"),
        ("status", spec, "--storage", url),
        ("report", spec, "--storage", url, "--out", str(out)),
    ):
        done = run_cli(*args, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, (args[0], done.stderr[-2000:])
        outputs += [done.stdout, done.stderr]
    assert "postgres:***@" in outputs[0] or "password=***" in outputs[0]  # the run header shows the URL, masked
    assert "next: scaling-optuna report" in outputs[0]
    banner = _dashboard_banner(spec, url, tmp_path)
    assert "optuna-dashboard for postgresql://" in banner
    # A server that refuses: the one-line error names the store, masked.
    database = postgres_url.rsplit("/", 1)[1]
    refused = run_cli("status", spec, "--storage", url.replace(database, "no_such_database"), cwd=tmp_path, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "no_such_database" in refused.stderr
    files = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.html"}
    texts = [*outputs, banner, refused.stderr, *files, _store_text(database)]
    for text in texts:
        for form in _raw_forms(how):
            assert form not in text, f"the password shows as {form!r}"

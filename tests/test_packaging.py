"""The built wheel carries the pages, static files and templates, and serves them installed."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.live import ROOT, LiveServer, free_port, wait_ready


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
    )  # fmt: skip
    (built,) = out.glob("stackvote-*.whl")
    return built


def test_the_wheel_contains_pages_static_files_and_decks(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "server/templates/base.html",
        "server/templates/room.html",
        "server/static/css/app.css",
        "server/static/js/room.js",
        "server/static/vendor/socket.io/socket.io.esm.min.js",
        "server/static/vendor/socket.io/LICENSE",
        "server/decks/django.json",
        "server/locale/de/LC_MESSAGES/messages.po",
    ):
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def venv_seeing_these_packages(venv: Path) -> Path:
    """A fresh virtual environment that also sees the packages of the Python running the
    tests (a venv itself, or the system's): `--system-site-packages` would show the base
    interpreter's instead, which in a venv lacks everything. Its own packages come first."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(own) / "_tested_environment.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def test_an_installed_wheel_serves_the_app(wheel: Path, tmp_path: Path) -> None:
    python = venv_seeing_these_packages(tmp_path / "venv")
    venv = python.parent.parent
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import server; print(server.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in where, "the test must run the installed copy, not the checkout"
    port = free_port()
    log = tmp_path / "server.log"
    # The README's command as it is: the built-in store in the user's data directory (here
    # one of the test's own, through XDG_DATA_HOME, as platformdirs reads it).
    xdg = tmp_path / "xdg"
    process = subprocess.Popen(
        [str(venv / "bin" / "stackvote"), "serve", "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "XDG_DATA_HOME": str(xdg), "STACKVOTE_DATA_DIR": ""},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(server)
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and "/static/css/app.css" in page.text
        assert httpx.get(server.url + "/static/js/room.js").status_code == 200
        assert (xdg / "stackvote" / "stackvote.sqlite3").exists()
    finally:
        process.terminate()
        process.wait(timeout=15)

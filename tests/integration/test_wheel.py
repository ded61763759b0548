"""A wheel built from the project installs into a fresh virtualenv and serves the app by itself."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.serverproc import free_port, running_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = outdir.glob("llmstream-*.whl")
    return wheel


def test_wheel_carries_templates_and_static(built_wheel: Path) -> None:
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for ui_file in ("templates", "static"):
        shipped = {p.relative_to(REPO).as_posix() for p in (REPO / ui_file).rglob("*") if p.is_file()}
        assert shipped, f"{ui_file}/ is empty in the checkout"
        assert {f"llmstream/{name}" for name in shipped} <= names
    assert "llmstream/sse.py" in names


@pytest.mark.slow
def test_wheel_in_fresh_venv_serves_a_page(built_wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(built_wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    port = free_port()
    # Run from an empty folder so nothing of the checkout can be picked up by accident.
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    command = [str(env_dir / "bin" / "llmstream"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, port, cwd=workdir, log_path=tmp_path / "server.log") as server:
        page = httpx.get(f"{server.base_url}/", timeout=5)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "<title>llmstream</title>" in page.text
        css = httpx.get(f"{server.base_url}/static/app.css", timeout=5)
        assert css.status_code == 200
        assert "color-scheme" in css.text
        assert httpx.get(f"{server.base_url}/healthz", timeout=5).json() == {"status": "ok"}

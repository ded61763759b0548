"""Execute notebooks/analysis.ipynb and notebooks/compare.ipynb on real load-test results.

LLMSTREAM_TEST_RESULTS names a results folder (results/<run>/); compare.ipynb uses it as A and
LLMSTREAM_TEST_RESULTS_B (default: the same folder) as B. Without LLMSTREAM_TEST_RESULTS these tests skip,
or fail when CI=true. The figures go to a temporary folder, so the results folder is only read. Run:

    LLMSTREAM_TEST_RESULTS=results/<run> .venv/bin/python -m pytest tests/notebooks
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CI = os.environ.get("CI") == "true"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CELL_TIMEOUT_S = 120
ANALYSIS_FIGURES = (
    "overview",
    "ttft",
    "itl",
    "by_position",
    "concurrency",
    "events_per_s",
    "outcomes",
    "client_lag",
)

if not CI:  # in CI, missing notebook dependencies are an error, not a reason to skip
    pytest.importorskip(
        "nbclient", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'"
    )
import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402


def results_folder(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        why = f"{variable} is not set: point it at a load-test results folder (results/<run>/)"
        if CI:
            pytest.fail(why)
        pytest.skip(why)
    path = Path(value).resolve()
    if not (path / "timelines").is_dir():
        pytest.fail(f"{variable}={value}: no such results folder, or it has no timelines/")
    return path


def execute(name: str, cwd: Path, out: Path) -> None:
    """Run the notebook in a fresh kernel started in cwd; keep the executed copy in out for a look."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, out / f"{name}.ipynb")
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors


def assert_pngs(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        png = folder / f"{name}.png"
        assert png.is_file(), f"{png} was not written"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
        assert png.stat().st_size > 1_000, f"{png} is suspiciously small"


def test_analysis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMSTREAM_RESULTS", str(results_folder("LLMSTREAM_TEST_RESULTS")))
    monkeypatch.setenv("LLMSTREAM_FIGURES", str(tmp_path / "figures"))
    execute("analysis", NOTEBOOKS.parent, tmp_path)  # kernel at the repository root (compare: notebooks/)
    assert_pngs(tmp_path / "figures", ANALYSIS_FIGURES)


def test_compare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    a = results_folder("LLMSTREAM_TEST_RESULTS")
    b = results_folder("LLMSTREAM_TEST_RESULTS_B") if os.environ.get("LLMSTREAM_TEST_RESULTS_B") else a
    monkeypatch.setenv("LLMSTREAM_RESULTS_A", str(a))
    monkeypatch.setenv("LLMSTREAM_RESULTS_B", str(b))
    monkeypatch.setenv("LLMSTREAM_FIGURES", str(tmp_path / "figures"))
    execute("compare", NOTEBOOKS, tmp_path)  # from notebooks/, as Jupyter starts a notebook's kernel
    assert_pngs(tmp_path / "figures", ("compare",))


def test_missing_folder_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMSTREAM_RESULTS", str(tmp_path / "no-such-run"))
    monkeypatch.setenv("LLMSTREAM_FIGURES", str(tmp_path / "figures"))
    with pytest.raises(CellExecutionError, match="no such results folder"):
        execute("analysis", NOTEBOOKS, tmp_path)

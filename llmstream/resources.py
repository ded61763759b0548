"""Where the browser UI's files live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def ui_dir(name: str) -> Path:
    """Return the folder holding the UI's `templates` or `static` files.

    In a checkout they sit at the repository's top level (next to the package) so front-end people find
    them; a built wheel carries them inside the package (see `force-include` in pyproject.toml).
    """
    inside_package = _PACKAGE_DIR / name
    if inside_package.is_dir():
        return inside_package
    beside_package = _PACKAGE_DIR.parent / name
    if beside_package.is_dir():
        return beside_package
    raise FileNotFoundError(
        f"llmstream's {name}/ folder is missing: looked in {inside_package} and {beside_package}"
    )

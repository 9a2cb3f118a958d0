"""The import contracts of docs/architecture.md hold, and catch the imports they forbid.

`make lint` runs `lint-imports` on the package; here it runs on a copy of the
package with one forbidden import put back at a time (the kind #13 removed),
to show each contract fails on it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "flask_portcullis"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's contracts on the package found under ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(
        PACKAGE, tmp_path / "flask_portcullis", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_the_package_keeps_every_contract(package_copy: Path) -> None:
    result = lint_imports(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("api/views.py", "from ..web import events as _pages", "never import each other"),
        ("accounts.py", "import flask as _flask", "Services use neither Flask"),
        ("accounts.py", "from . import usecases as _above", "Layers:"),
        ("usecases/signup.py", "from .. import api as _adapter", "Layers:"),
        ("state.py", "from . import extension as _wiring", "Layers:"),
        ("web/auth.py", "from . import account as _page", "Inside web/"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    package_copy: Path, module: str, line: str, contract: str
) -> None:
    path = package_copy / "flask_portcullis" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(package_copy)
    assert result.returncode != 0, f"{module}: {line} was allowed"
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(contract in row for row in broken), result.stdout

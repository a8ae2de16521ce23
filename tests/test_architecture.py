"""The import contracts in pyproject.toml ([tool.importlinter]) hold: bridge never imports
daemon, no import cycles at any depth, flows above platform clients above the engine
above the database, flows reach the database only through the engine's port, and the
simulator imports no client code.  import-linter checks them (`lint-imports`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                                              "sys.exit(lint_imports_command())", "--no-cache"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout, r.stdout[-3000:]

"""The import boundaries in the repo root's `.importlinter`, checked with `lint-imports`.

1. The real tree: the packages' sources in this repo (whether pip-installed or not) keep both contracts.
2. The config itself: on throw-away fake packages, a service importing the other (either way, even lazily
   inside a function) and the contract importing the event bus are each reported as broken. So the config
   is proven to bite even before, or regardless of how, the real services are written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from contracts_support import REPO_ROOT

CONFIG = REPO_ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SOURCES = {
    "sandan_contracts": REPO_ROOT / "contracts" / "src",
    "sandan_eventbus": REPO_ROOT / "libs" / "eventbus" / "src",
    "sandan_intake": REPO_ROOT / "services" / "intake" / "src",
    "sandan_dispatch": REPO_ROOT / "services" / "dispatch" / "src",
}
INDEPENDENCE = "Services never import each other (intake, dispatch, notify, scoring, gateway)"
FORBIDDEN = "The contract imports no service and not the event bus"


def lint(pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(CONFIG)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def fake_packages(root: Path, files: dict[str, str]) -> Path:
    """Write `{"pkg/module.py": source}` under root; every package gets an __init__.py."""
    for name in ("sandan_contracts", "sandan_eventbus", "sandan_intake", "sandan_dispatch"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").touch()
    for rel, source in files.items():
        (root / rel).write_text(source)
    return root


def test_lint_imports_is_installed_next_to_python() -> None:
    assert LINT_IMPORTS.exists(), f"{LINT_IMPORTS} missing: install import-linter into the venv"
    assert CONFIG.exists()


def test_the_real_tree_keeps_its_boundaries(tmp_path: Path) -> None:
    missing = [pkg for pkg, src in SOURCES.items() if not (src / pkg / "__init__.py").exists()]
    path = [src for pkg, src in SOURCES.items() if pkg not in missing]
    if missing:  # only while a package is still being written; its stand-in is empty
        warnings.warn(f"import boundaries checked with empty stand-ins for {missing}", stacklevel=1)
        path.append(fake_packages(tmp_path / "stand-ins", {}))
        for pkg in set(SOURCES) - set(missing):
            (tmp_path / "stand-ins" / pkg / "__init__.py").unlink()
            (tmp_path / "stand-ins" / pkg).rmdir()
    result = lint(path, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{INDEPENDENCE} KEPT" in result.stdout
    assert f"{FORBIDDEN} KEPT" in result.stdout


def test_a_clean_fake_tree_passes(tmp_path: Path) -> None:
    root = fake_packages(tmp_path, {
        "sandan_intake/api.py": "import sandan_contracts\nimport sandan_eventbus\n",
        "sandan_dispatch/api.py": "from sandan_contracts import decode\n",
    })
    result = lint([root], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("sandan_intake/consumers.py", "from sandan_dispatch import api\n",
         "sandan_intake is not allowed to import sandan_dispatch"),
        ("sandan_dispatch/consumers.py", "def f():\n    import sandan_intake.domain\n",
         "sandan_dispatch is not allowed to import sandan_intake"),
    ],
    ids=["intake->dispatch", "dispatch->intake-lazily"],
)
def test_a_service_importing_the_other_breaks_the_build(tmp_path: Path, module: str, source: str,
                                                        expected: str) -> None:
    root = fake_packages(tmp_path, {"sandan_dispatch/api.py": "", "sandan_intake/domain.py": "", module: source})
    result = lint([root], cwd=tmp_path)
    assert result.returncode != 0
    assert f"{INDEPENDENCE} BROKEN" in result.stdout
    assert expected in result.stdout


@pytest.mark.parametrize("target", ["sandan_eventbus", "sandan_intake", "sandan_dispatch"])
def test_the_contract_importing_our_code_breaks_the_build(tmp_path: Path, target: str) -> None:
    root = fake_packages(tmp_path, {"sandan_contracts/envelope.py": f"import {target}\n"})
    result = lint([root], cwd=tmp_path)
    assert result.returncode != 0
    assert f"{FORBIDDEN} BROKEN" in result.stdout
    assert f"sandan_contracts.envelope -> {target}" in result.stdout

"""Import paths the test suite would not otherwise touch: every ``import`` in the bench and
asset scripts and in the code of README.md and docs/*.md resolves, and every name a module
lists in ``__all__`` exists (a split module's re-export list cannot drift)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted([*(ROOT / "bench").glob("*.py"), *(ROOT / "assets").glob("*.py")])
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IMPORT_LINE = re.compile(r"^\s*(?:from\s+[\w.]+\s+import\s+[\w, ()]+|import\s+[\w., ]+)\s*$")


def _doc_imports(text: str) -> list[str]:
    """Import statements of a Markdown file: lines of its fenced code blocks, and inline
    code spans, that are a whole ``import`` / ``from … import`` statement."""
    lines = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        lines += [line.strip() for line in block.splitlines() if IMPORT_LINE.match(line)]
    lines += [span for span in re.findall(r"`([^`\n]+)`", text) if IMPORT_LINE.match(span)]
    return lines


def _project_imports(tree: ast.AST) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import of the project's packages in ``tree``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, [a.name for a in node.names if a.name != "*"]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return [(m, n) for m, n in out if m.split(".")[0] in ("ijr_core", "app", "bench")]


def _check(module: str, names: list[str]) -> list[str]:
    mod = importlib.import_module(module)
    missing = []
    for name in names:
        if hasattr(mod, name):
            continue
        try:
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            missing.append(f"{module}.{name}")
    return missing


@pytest.mark.parametrize("path", SCRIPTS + DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_imports_of_scripts_and_docs_resolve(path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    text = path.read_text(encoding="utf-8")
    source = text if path.suffix == ".py" else "\n".join(_doc_imports(text))
    imports = _project_imports(ast.parse(source))
    missing = [m for module, names in imports for m in _check(module, names)]
    assert not missing, f"{path.name}: {missing}"


def _modules(package: str) -> list[str]:
    root = ROOT / package
    out = []
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__" or "app_pages" in parts or parts == ("app", "main"):
            continue  # entry points: importing them runs them
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


@pytest.mark.parametrize("module", _modules("ijr_core") + _modules("app"))
def test_every_name_in_all_exists(module):
    mod = importlib.import_module(module)
    listed = getattr(mod, "__all__", [])
    assert len(listed) == len(set(listed)), f"{module}.__all__ repeats a name"
    assert [n for n in listed if not hasattr(mod, n)] == []


def test_the_scripts_and_docs_are_found():
    assert {p.name for p in SCRIPTS} >= {"make_demo_runs.py", "check_probe_accuracy.py"}
    assert sum(len(_doc_imports(p.read_text(encoding="utf-8"))) for p in DOCS) > 0


def _defined_public_names(module) -> set[str]:
    """Public functions, classes and module-level constants that ``module`` itself defines
    (not the names it imports)."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


@pytest.mark.parametrize("package", ["app.tables", "app.runs_store"])
def test_packages_reexport_every_public_name_of_their_modules(package):
    """The package docstrings promise ``from <package> import X`` for every public name."""
    import pkgutil

    pkg = importlib.import_module(package)
    missing = [f"{package}.{m.name}.{name}" for m in pkgutil.iter_modules(pkg.__path__)
               for name in _defined_public_names(importlib.import_module(f"{package}.{m.name}"))
               if name not in pkg.__all__]
    assert missing == []

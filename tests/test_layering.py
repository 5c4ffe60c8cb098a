"""The layering DESIGN.md describes, checked on the imports of every module of src/occ4d.

Commands wire library functions together; no library module may import a command (the other
way round a command could no longer be changed on its own). The training engine (train/) names
each family's recipe only through SPECS, by module path, never by importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import occ4d

SRC = Path(occ4d.__file__).parent


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])


def imports(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names
    (relative imports resolved against ``package``, by default the one ``path`` lies in)."""
    package = package_of(path) if package is None else package
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def library_modules() -> list[Path]:
    return [p for p in sorted(SRC.rglob("*.py"))
            if p.relative_to(SRC).parts[0] != "commands" and p.name != "cli.py"]


def test_the_walk_sees_the_library():
    rel = {str(p.relative_to(SRC)) for p in library_modules()}
    assert {"io/predictions.py", "vis/inputs.py", "evaluate/run.py", "models/world/forecasting.py"} <= rel
    assert not any(r.startswith("commands/") for r in rel)


def test_no_library_module_imports_a_command():
    bad = {str(p.relative_to(SRC)): sorted(n for n in imports(p) if n.split(".")[:2] == ["occ4d", "commands"])
           for p in library_modules()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_the_engine_imports_no_recipe():
    bad = {}
    for p in sorted((SRC / "train").rglob("*.py")):
        found = sorted(n for n in imports(p) if n.startswith("occ4d.models.") and ".recipe" in n)
        if found:
            bad[str(p.relative_to(SRC))] = found
    assert bad == {}


def test_the_check_catches_an_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from occ4d.commands.eval import evaluate\n\nfrom ..commands import demo\n")
    found = imports(f, package="occ4d.vis")
    assert {"occ4d.commands.eval", "occ4d.commands.demo"} <= found

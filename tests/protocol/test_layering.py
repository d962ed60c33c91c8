"""The protocol package must stay free of Django so it can be used and tested on its own."""

import ast
import pathlib
import subprocess
import sys

import django_alipay.protocol

PROTOCOL_DIR = pathlib.Path(django_alipay.protocol.__file__).parent


def _imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_protocol_module_imports_django_in_its_source():
    offenders = {
        str(path.relative_to(PROTOCOL_DIR)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "django"
        )
        for path in PROTOCOL_DIR.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_every_protocol_module_loads_no_django():
    modules = sorted(
        "django_alipay.protocol." + p.stem for p in PROTOCOL_DIR.glob("*.py") if p.stem != "__init__"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert len(modules) >= 2

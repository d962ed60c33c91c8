"""A leading underscore means "private to its module": no library module imports or calls another's."""

from __future__ import annotations

import ast
import pathlib

import django_alipay

PACKAGE_DIR = pathlib.Path(django_alipay.__file__).parent
ROOT = PACKAGE_DIR.parent


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _package_of(module: str, path: pathlib.Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, module: str, path: pathlib.Path) -> str:
    if node.level == 0:
        return node.module or ""
    base = _package_of(module, path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _private_uses(path: pathlib.Path, source: str | None = None) -> list[str]:
    """Every place in ``path`` (or in ``source`` read as if it were there) that reaches into another library
    module's ``_private`` name."""
    module = _module_name(path)
    package = _package_of(module, path)
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    aliases: dict[str, str] = {}  # local name -> library module it is bound to
    found: list[str] = []

    def private_module(dotted: str) -> bool:
        # A private module may be used by the modules of its own package (a shared helper), by no one else.
        parent, _, last = dotted.rpartition(".")
        inside = any(_private(part) for part in dotted.split(".")[:-1])
        return inside or (_private(last) and parent != package)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "django_alipay":
                    continue
                if private_module(alias.name):
                    found.append(f"{node.lineno}: import {alias.name}")
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path)
            if source.split(".")[0] != "django_alipay" or source == module:
                continue
            if private_module(source):
                found.append(f"{node.lineno}: from {source} import ...")
            for alias in node.names:
                dotted = f"{source}.{alias.name}"
                if _is_module(dotted):
                    if private_module(dotted):
                        found.append(f"{node.lineno}: from {source} import {alias.name}")
                    aliases[alias.asname or alias.name] = dotted
                elif _private(alias.name):
                    found.append(f"{node.lineno}: from {source} import {alias.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != module
            and _private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_library_module_uses_another_modules_private_names() -> None:
    offenders = {
        str(path.relative_to(ROOT)): uses
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if (uses := _private_uses(path))
    }
    assert offenders == {}


def test_the_check_sees_a_private_call_and_a_private_import() -> None:
    """The check itself: a call to ``trades._helper``, an import of ``_helper`` and of another package's
    private module are reported; a public call and a name private to the module itself are not."""
    source = (
        "from django_alipay.domain import trades\n"
        "from django_alipay.domain.trades import _helper\n"
        "from django_alipay.management.commands._shared import plural\n"
        "trades._helper(1)\n"
        "trades.public(1)\n"
        "self._own = 1\n"
        "_local(trades.__name__)\n"
    )
    uses = _private_uses(PACKAGE_DIR / "domain" / "refunds.py", source)
    assert uses == [
        "2: from django_alipay.domain.trades import _helper",
        "3: from django_alipay.management.commands._shared import ...",
        "4: trades._helper",
    ]

"""The wheel and sdist carry the whole package: every module, template, migration, py.typed, and metadata."""

from __future__ import annotations

import configparser
import email
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import django_alipay

from .conftest import ROOT, Distributions

pytestmark = pytest.mark.slow

PACKAGE = ROOT / "django_alipay"
_NOT_SHIPPED = {".DS_Store"}
_NOT_SHIPPED_SUFFIXES = (".pyc", ".pyo", ".swp", "~", ".orig", ".rej")


def source_files() -> set[str]:
    """Every file of the package in the checkout, as a path inside the wheel."""
    found = set()
    for path in PACKAGE.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        if path.name in _NOT_SHIPPED or path.name.endswith(_NOT_SHIPPED_SUFFIXES):
            continue
        found.add(path.relative_to(ROOT).as_posix())
    return found


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_the_wheel_holds_every_file_of_the_package(distributions: Distributions) -> None:
    names = distributions.wheel_names()

    missing = sorted(source_files() - names)

    assert not missing, (
        f"files of django_alipay/ not in the wheel (package data or __init__.py missing?): {missing}"
    )


@pytest.mark.parametrize(
    "name",
    [
        "django_alipay/py.typed",
        "django_alipay/migrations/0001_initial.py",
        "django_alipay/emulator/migrations/0001_initial.py",
        "django_alipay/emulator/templates/django_alipay_emulator/base.html",
        "django_alipay/emulator/templates/django_alipay_emulator/cashier.html",
        "django_alipay/emulator/templates/django_alipay_emulator/index.html",
        "django_alipay/templates/django_alipay/return.html",
        "django_alipay/testing/plugin.py",
    ],
)
def test_the_wheel_ships_what_a_running_shop_loads(distributions: Distributions, name: str) -> None:
    assert name in distributions.wheel_names()


def test_the_wheel_holds_nothing_but_the_package(distributions: Distributions) -> None:
    tops = {name.split("/", 1)[0] for name in distributions.wheel_names()}

    assert tops == {"django_alipay", f"django_alipay_global-{django_alipay.__version__}.dist-info"}


def test_the_wheel_metadata_matches_the_project(distributions: Distributions) -> None:
    project = pyproject()["project"]
    with zipfile.ZipFile(distributions.wheel) as archive:
        info = f"django_alipay_global-{django_alipay.__version__}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))

    assert (metadata["Name"], metadata["Version"]) == ("django-alipay-global", django_alipay.__version__)
    assert metadata["Requires-Python"] == project["requires-python"]
    required = [line for line in metadata.get_all("Requires-Dist") or [] if "extra ==" not in line]
    assert set(map(Requirement, required)) == set(map(Requirement, project["dependencies"]))


def _declares_plugin() -> bool:
    entry_points = pyproject()["project"].get("entry-points", {}).get("pytest11", {})
    return "django_alipay.testing.plugin" in entry_points.values()


@pytest.mark.xfail(
    condition=not _declares_plugin(),
    reason="pyproject.toml does not register the pytest11 entry point of django_alipay.testing.plugin yet",
    strict=True,
)
def test_the_wheel_registers_the_pytest_plugin(distributions: Distributions) -> None:
    with zipfile.ZipFile(distributions.wheel) as archive:
        info = f"django_alipay_global-{django_alipay.__version__}.dist-info"
        text = archive.read(f"{info}/entry_points.txt").decode()
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)

    # Named after its module: then ``-p django_alipay.testing.plugin`` and ``pytest_plugins = [...]`` in a
    # conftest find the entry point's registration instead of registering the module a second time.
    assert dict(parser["pytest11"]) == {"django_alipay.testing.plugin": "django_alipay.testing.plugin"}


def test_the_sdist_holds_the_project_and_the_package(distributions: Distributions) -> None:
    with tarfile.open(distributions.sdist) as archive:
        names = {Path(name).relative_to(Path(name).parts[0]).as_posix() for name in archive.getnames()}

    assert {"pyproject.toml", "README.md", "LICENSE"} <= names
    assert not sorted(source_files() - names), "the sdist lacks files of the package"

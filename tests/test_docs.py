"""The documentation builds cleanly, its generated pages match the code, and what it names exists."""

import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import yaml

from django_alipay import signals
from django_alipay.conf import DEFAULTS
from django_alipay.protocol.reference import render_catalog_reference
from tests import docs_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_catalog_reference_page_is_generated_from_the_catalog():
    page = (ROOT / "docs" / "reference" / "catalogs.md").read_text(encoding="utf-8")
    assert page == render_catalog_reference(), (
        "docs/reference/catalogs.md is stale: run "
        "`python -m django_alipay.protocol.reference > docs/reference/catalogs.md`"
    )


def test_catalog_reference_lists_every_code_once():
    page = render_catalog_reference()
    expected = ("ILLEGAL_SIGN", "SYSTEM_ERROR", "TRADE_NOT_EXIST", "ILLEGAL_EXTER_INVOKE_IP", "TRADE_SUCCESS")
    for code in expected:
        assert page.count(f"| `{code}` |") == 1, code


def test_mkdocs_builds_in_strict_mode(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(pathlib.Path(sys.executable).parent))
    assert mkdocs, "mkdocs is not installed in this environment: install the project's docs extra"
    result = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]


# --- pages generated from code, and pages that must agree with code ---------------------------------------


def test_the_settings_table_is_generated_from_conf_defaults():
    assert docs_tables.block("configuration.md", "alipay-settings") == docs_tables.render_settings_table(), (
        "docs/configuration.md is stale: run `python -m tests.docs_tables`"
    )


def test_every_alipay_setting_is_documented_once():
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name in DEFAULTS:
        assert page.count(f"| `{name}` |") == 1, name


def test_the_system_checks_table_is_generated_from_checks_py():
    assert docs_tables.block("credentials.md", "system-checks") == docs_tables.render_checks_table(), (
        "docs/credentials.md is stale: run `python -m tests.docs_tables`"
    )


def test_the_checks_docstring_lists_exactly_the_ids_the_code_emits():
    documented = [row[0] for row in docs_tables.documented_checks()]

    assert len(documented) == len(set(documented))
    assert set(documented) == docs_tables.emitted_check_ids()
    assert {"django_alipay.E001", "django_alipay.E021", "django_alipay.W011"} <= set(documented)


def test_the_emulator_checks_are_documented():
    page = (DOCS / "credentials.md").read_text(encoding="utf-8")
    source = (ROOT / "django_alipay" / "emulator" / "checks.py").read_text(encoding="utf-8")
    emitted = set(re.findall(r"django_alipay_emulator\.[EW]\d{3}", source))

    assert emitted == {
        "django_alipay_emulator.E001",
        "django_alipay_emulator.W001",
        "django_alipay_emulator.W002",
    }
    for check_id in emitted:
        assert f"`{check_id}`" in page


def test_the_emulator_settings_table_matches_its_defaults():
    from django_alipay.emulator.conf import DEFAULTS as EMULATOR_DEFAULTS

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    table = text.split("<!-- emulator-settings -->", 1)[1].split("<!-- end: emulator-settings -->", 1)[0]
    rows = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", table, re.MULTILINE))

    assert set(rows) == set(EMULATOR_DEFAULTS)
    for name, default in EMULATOR_DEFAULTS.items():
        assert rows[name] == docs_tables.python_literal(default), name


# --- the site as a whole ------------------------------------------------------------------------------------


def nav_pages(entries):
    for entry in entries:
        for value in entry.values():
            if isinstance(value, str):
                yield value
            else:
                yield from nav_pages(value)


def test_every_page_is_in_the_nav_and_linked_from_the_home_page():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = list(nav_pages(config["nav"]))
    on_disk = sorted(path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md"))
    home = (DOCS / "index.md").read_text(encoding="utf-8")

    assert sorted(in_nav) == on_disk
    for page in on_disk:
        if page != "index.md":
            assert f"]({page})" in home, f"docs/index.md does not link {page}"


def test_every_signal_is_documented():
    page = (DOCS / "payments.md").read_text(encoding="utf-8")

    for name in signals.__all__:
        if name != "send_on_commit":
            assert f"| `{name}` |" in page, name


def test_every_python_example_is_valid_python():
    fence = re.compile(r"^( *)```python\n(.*?)\n\1```", re.MULTILINE | re.DOTALL)
    for path in sorted(DOCS.rglob("*.md")):
        for number, found in enumerate(fence.finditer(path.read_text(encoding="utf-8"))):
            code = textwrap.dedent(found.group(2))
            where = f"{path.relative_to(ROOT)}, python block {number + 1}"
            # Snippets of a view's body may `return`: those must compile as the body of a function.
            if re.search(r"^return ", code, re.MULTILINE):
                code = "def example():\n" + textwrap.indent(code, "    ")
            compile(code, where, "exec")


def test_the_api_page_names_every_error_code_of_the_api():
    from django_alipay.api.errors import ERROR_CODES

    page = (DOCS / "api.md").read_text(encoding="utf-8")

    for code in ERROR_CODES:
        assert f"`{code}`" in page, code


def test_the_documented_emulator_gateway_examples_use_real_settings():
    # An ALIPAY key that does not exist is a W001 at run time; in the docs it is a silent lie.
    known = set(DEFAULTS)
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for name in re.findall(r'ALIPAY\["([A-Z_]+)"\]', text):
            assert name in known, f"{path.name} names ALIPAY[{name!r}], which is not a setting"


# --- snippets a reader pastes -------------------------------------------------------------------------------


def python_blocks(page):
    """The python blocks of a docs page, dedented (some sit inside list items)."""
    fence = re.compile(r"^( *)```python\n(.*?)\n\1```", re.MULTILINE | re.DOTALL)
    return [
        textwrap.dedent(found.group(2)) for found in fence.finditer((DOCS / page).read_text(encoding="utf-8"))
    ]


def test_the_celery_settings_run_when_pasted_into_settings_py():
    from django_alipay.schedule import beat_schedule

    (block,) = [code for code in python_blocks("celery.md") if code.startswith("# settings.py")]
    namespace = {}

    exec(compile(block, "celery.md settings", "exec"), namespace)  # noqa: S102 - the docs' own snippet

    assert namespace["CELERY_BEAT_SCHEDULE"].keys() == beat_schedule().keys()


def test_the_celery_page_names_the_beat_entries_as_they_are_named():
    from django_alipay.schedule import beat_schedule

    page = (DOCS / "celery.md").read_text(encoding="utf-8")
    text = page.split("## The beat schedule", 1)[1].split("```", 1)[0]

    for name in beat_schedule():
        assert f"`{name}`" in text, name


def test_the_api_page_lists_every_refund_status():
    from django_alipay.enums import RefundStatus

    page = (DOCS / "api.md").read_text(encoding="utf-8")
    sentence = page.split("`status` says how far it got", 1)[1].split("\n\n", 1)[0]

    for status in RefundStatus.values:
        assert f"`{status}`" in sentence, status


def test_troubleshooting_covers_a_refund_left_requested_and_warnings_on_import():
    headings = re.findall(
        r"^## (.+)$", (DOCS / "troubleshooting.md").read_text(encoding="utf-8"), re.MULTILINE
    )

    assert "A refund stays requested" in headings
    assert "Warnings on import" in headings


def test_every_python_example_that_uses_os_imports_it():
    import ast

    fence = re.compile(r"^( *)```python\n(.*?)\n\1```", re.MULTILINE | re.DOTALL)
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for number, found in enumerate(fence.finditer(path.read_text(encoding="utf-8"))):
            code = textwrap.dedent(found.group(2))
            if re.search(r"^return ", code, re.MULTILINE):
                continue  # a view's body: its module's imports are not shown
            tree = ast.parse(code)
            uses = any(isinstance(node, ast.Name) and node.id == "os" for node in ast.walk(tree))
            imports = any(
                isinstance(node, ast.Import) and any(alias.name == "os" for alias in node.names)
                for node in ast.walk(tree)
            )
            assert imports or not uses, f"{path.relative_to(ROOT)}, block {number + 1}: os not imported"


# --- the package's page on PyPI -----------------------------------------------------------------------------


def test_every_readme_link_is_absolute_so_that_it_works_on_pypi():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    relative = [
        target for target in re.findall(r"\]\(([^)]+)\)", readme) if not target.startswith(("http", "#"))
    ]

    assert relative == []


def test_the_metadata_names_the_source_the_issues_the_changelog_and_every_tested_version():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    tested = set(re.findall(r"^\s+py3(\d+)-django(\d)(\d)$", tox, re.MULTILINE))

    assert {"Source", "Issues", "Changelog", "Documentation"} <= set(project["urls"])
    for python, major, minor in tested:
        assert f"Programming Language :: Python :: 3.{python}" in project["classifiers"]
        assert f"Framework :: Django :: {major}.{minor}" in project["classifiers"]
    assert tested


def test_the_refund_and_trade_life_cycles_in_the_docs_are_generated_from_the_domain_tables():
    for name, render in (
        ("refund-moves", docs_tables.render_refund_moves),
        ("trade-moves", docs_tables.render_trade_moves),
    ):
        for page in ("refunds.md", "architecture.md"):
            assert docs_tables.block(page, name) == render(), (
                f"docs/{page} is stale: run `python -m tests.docs_tables`"
            )

"""The documentation builds cleanly and its generated pages match the code they describe."""

import pathlib
import shutil
import subprocess
import sys

from django_alipay.protocol.reference import render_catalog_reference

ROOT = pathlib.Path(__file__).resolve().parent.parent


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

"""The repository names its rules in words: no test, comment or page points at notes kept outside it.

A reader of this repository cannot follow "section 1.2 of the notes" or "catalogue row N38", so tests are
named after the rule they check and comments say the rule itself. These checks keep such pointers out.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCANNED = ("django_alipay", "tests", "docs", "example_project", "benchmarks", "fuzz")
TOP_LEVEL = ("README.md", "CHANGELOG.md", "Makefile", "tox.ini", "pyproject.toml")
# Text the project writes itself. Translations (.po/.mo) quote their sources, and binary corpora are data.
TEXT_SUFFIXES = frozenset(
    {".py", ".md", ".html", ".txt", ".json", ".js", ".css", ".ini", ".cfg", ".toml", ".yml", ".yaml", ".xml"}
)
SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site", "htmlcov"})
# This file quotes the forms it forbids, as examples; the examples are checked below instead.
THIS_FILE = pathlib.Path(__file__).resolve()

SECTION_SIGN = "\u00a7"
# An id of the bad-input catalogue: a letter for the area (N notifications, R refunds, G gateway answers,
# V reversals) and two digits. Alone it would match key material and hex, so each pattern below also asks
# for the context such an id is cited in.
_ID = r"[NRGV][0-9]{2}"
RULES: dict[str, re.Pattern[str]] = {
    "a test named after a catalogue id": re.compile(r"(?:\bdef |::)test_[a-z][0-9]{2}_"),
    "a section sign (say the rule instead of citing a section)": re.compile(SECTION_SIGN),
    "a catalogue row cited by id": re.compile(rf"\bcatalog(?:ue)?(?:\s+rows?)?\s+{_ID}\b", re.IGNORECASE),
    "a document outside the repository": re.compile(
        r"\b(?:reliability (?:catalogue|rules)|protocol notes|protocol spec)\b", re.IGNORECASE
    ),
    "a comment that opens with a catalogue id": re.compile(rf"#\s*(?:-{{3}}\s*)?{_ID}\b"),
    "catalogue ids in parentheses": re.compile(rf"\({_ID}(?:(?:-|,\s?|\s+to\s+){_ID})*\)"),
    "a range of catalogue ids": re.compile(rf"(?<![\w/+-]){_ID}-{_ID}(?![\w/+-])"),
}


def scanned_files() -> list[pathlib.Path]:
    found = [ROOT / name for name in TOP_LEVEL if (ROOT / name).is_file()]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            relative = path.relative_to(ROOT).parts
            if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES and path.resolve() != THIS_FILE:
                found.append(path)
    return found


def violations(text: str) -> list[str]:
    """Each rule ``text`` breaks, with the offending line."""
    found = []
    for line in text.splitlines():
        found.extend(f"{why}: {line.strip()}" for why, pattern in RULES.items() if pattern.search(line))
    return found


def read_text(path: pathlib.Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Test data in another charset (GBK answers): its bytes are not text of ours, but ASCII still reads.
        return data.decode("ascii", errors="ignore")


def test_the_scan_covers_the_code_the_tests_the_docs_and_the_benchmarks():
    files = {path.relative_to(ROOT).as_posix() for path in scanned_files()}
    for expected in (
        "django_alipay/domain/notifications.py",
        "tests/client/test_faults.py",
        "docs/index.md",
        "example_project/shop/static/shop/order.js",
        "benchmarks/README.md",
        "tests/protocol/data/signing_vectors.json",
        "fuzz/fuzz_notifications.py",
        "README.md",
        "tox.ini",
    ):
        assert expected in files
    assert not [name for name in files if name.endswith((".po", ".mo", ".bin"))]


def test_no_file_cites_sections_catalogue_ids_or_outside_notes():
    found = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in scanned_files()
        for problem in violations(read_text(path))
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        "def test_n01_missing_sign():",
        "async def test_g03_untrusted_signature(client):",
        "def test_r01_to_r07_amounts_must_be_canonical():",
        "--deselect tests/web/test_notify_view.py::test_n40_the_same_notification_twice_at_once",
        f"# The gateway asks for it in the URL (protocol notes {SECTION_SIGN}1.2).",
        f'"""True for the four statuses (protocol.md {SECTION_SIGN}7.1)."""',
        "# travels as an order number (reliability catalogue N38).",
        '"""Gateway faults G01-G13 against a loopback stub."""',
        '"""the bad-input catalogue rows N01-N17, N33, N37, and more."""',
        "The pipeline of receive (reliability rules 1-3):",
        "It was written from the protocol notes, not from the client.",
        '        "-1.00",  # R01',
        "# --- G04: hostile XML",
        "# --- bulk full refunds (R22) -----",
        '"""An amount on input; a JSON number is refused (R05)."""',
        '"""Who may do what through the REST API (R19, R20)."""',
    ],
)
def test_each_kind_of_outside_reference_is_caught(text):
    assert violations(text)


@pytest.mark.parametrize(
    "text",
    [
        "def test_e020_e021_e022_optional_parts():",  # the app's own system check ids
        "def test_a_missing_sign_is_refused():",
        "def test_r_is_not_an_id():",
        "others come from Alipay's domestic products and are catalogued so that any status can be shown.",
        "def test_every_seed_error_code_is_catalogued(code):",
        "The catalogue of result codes lists N kinds of answers.",
        '#: "...T10:00:00 08:00": a "+" that form decoding turned into a space.',
        'MD5_KEY = "760bdzec6y9goq7ctyx96ezkz78287de"',
        'SIGN = "N38G01R04V02n01Zx+/R05=="',
        "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8QuKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ",
        "YR01-N22-G13/abc",
        "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6 (0x8a) [R2D2]",
        "golden vectors R1/R2 are signatures with key A",
    ],
)
def test_key_material_hex_and_plain_words_are_not_mistaken_for_references(text):
    assert violations(text) == []

"""Result codes are read in one place, the protocol layer: the domain acts on typed results and errors only.

The client returns a result only when the gateway did what was asked and raises a typed error otherwise;
``interpretation.verdict_of`` says what such an error means. A domain module that looks at ``result_code``,
``retry_flag`` or ``is_success`` itself, or compares a value with a result code's text, reads the answer a
second time, and the two readings drift apart.
"""

from __future__ import annotations

import ast
import pathlib

import django_alipay
from django_alipay.protocol.codes import ResultCode

DOMAIN_DIR = pathlib.Path(django_alipay.__file__).parent / "domain"
#: The answer fields whose reading belongs to the protocol layer.
PROTOCOL_FIELDS = frozenset({"result_code", "retry_flag", "is_success"})
#: What ``result_code`` says, as text: the catalog's codes and one it does not list.
RESULT_CODE_TEXTS = frozenset({member.value for member in ResultCode} | {"PROCESSING"})
#: Protocol names that read result codes; the domain uses ``Verdict`` and ``verdict_of`` instead.
PROTOCOL_READERS = frozenset({"ResultCode", "result_code_verdict", "check_result_code"})


def _texts(node: ast.AST) -> list[str]:
    """The string constants of a comparison operand: itself, or the items of a tuple, list or set."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [item.value for item in items if isinstance(item, ast.Constant) and isinstance(item.value, str)]


def result_code_readings(source: str) -> list[str]:
    """Every place in ``source`` that reads a result code itself instead of leaving it to the protocol."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and node.value in PROTOCOL_FIELDS:
            found.append(f"{node.lineno}: the field name {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr in PROTOCOL_FIELDS | PROTOCOL_READERS:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in PROTOCOL_READERS:
            found.append(f"{node.lineno}: {node.id}")
        elif isinstance(node, ast.alias) and node.name in PROTOCOL_READERS:
            found.append(f"{node.lineno}: import of {node.name}")
        elif isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [f"{node.lineno}: compares with {text!r}" for text in _texts(operand)
                          if text in RESULT_CODE_TEXTS]  # fmt: skip
    return sorted(found, key=lambda reading: int(reading.partition(":")[0]))


def test_no_domain_module_reads_result_codes_itself() -> None:
    offenders = {
        path.name: readings
        for path in sorted(DOMAIN_DIR.rglob("*.py"))
        if (readings := result_code_readings(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_check_sees_each_way_of_reading_a_result_code() -> None:
    """The check itself: field names, comparisons with a code (alone or in a tuple), the protocol's readers;
    a refund status compared by enum, a trade status text and a verdict are not reported."""
    source = (
        "from django_alipay.protocol.codes import ResultCode, Verdict\n"
        'code = fields.get("result_code", "")\n'
        'if code in ("FAIL", "FAILED"): pass\n'
        'if answer.retry_flag == "Y": pass\n'
        'if "UNKNOW" == code: pass\n'
        "if code != ResultCode.SUCCESS: pass\n"
        "if verdict is Verdict.REFUSED: pass\n"
        "if status == RefundStatus.UNKNOWN: pass\n"
        'if status == "TRADE_SUCCESS": pass\n'
    )
    assert result_code_readings(source) == [
        "1: import of ResultCode",
        "2: the field name 'result_code'",
        "3: compares with 'FAIL'",
        "3: compares with 'FAILED'",
        "4: .retry_flag",
        "5: compares with 'UNKNOW'",
        "6: ResultCode",
    ]

"""The fuzz harnesses run over their seed corpus and thousands of random inputs, so make test runs them.

The real fuzzing (coverage-guided, atheris) is ``make fuzz``; this keeps the harness code itself working
and shows that it does report what it is there to catch. It needs neither atheris nor a database.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from django_alipay.protocol.errors import InvalidParameterError

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
HARNESSES = ("notifications", "envelope")
RANDOM_INPUTS = 3000
MUTATED_INPUTS = 2000


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_harness_{name}", FUZZ / f"fuzz_{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=HARNESSES)
def harness(request: pytest.FixtureRequest) -> tuple[str, ModuleType]:
    return request.param, load(request.param)


def seeds(name: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FUZZ / "corpus" / name).glob("*.bin"))]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few byte flips, insertions and deletions, the way a fuzzer starts from a seed."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        where = rng.randrange(len(out) + 1)
        choice = rng.random()
        if choice < 0.4 and out:
            out[min(where, len(out) - 1)] = rng.randrange(256)
        elif choice < 0.7:
            out[where:where] = bytes([rng.randrange(256)])
        elif out:
            del out[min(where, len(out) - 1)]
    return bytes(out)


def test_every_seed_runs_clean(harness: tuple[str, ModuleType]) -> None:
    name, module = harness
    corpus = seeds(name)
    assert len(corpus) >= 15, "the seed corpus is missing; run fuzz/make_corpus.py"
    for seed in corpus:
        module.TestOneInput(seed)


def test_random_and_mutated_inputs_raise_only_declared_errors(harness: tuple[str, ModuleType]) -> None:
    name, module = harness
    rng = random.Random(f"fuzz-{name}")
    corpus = seeds(name)
    inputs = [bytes(rng.randrange(256) for _ in range(rng.randrange(300))) for _ in range(RANDOM_INPUTS)]
    inputs += [mutate(rng, rng.choice(corpus)) for _ in range(MUTATED_INPUTS)]
    for data in inputs:
        module.TestOneInput(data)


# --- the harnesses catch what they are for -----------------------------------------------------------------


def raising(exc: Exception) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


@pytest.mark.parametrize(
    ("target", "exc", "caught"),
    [
        ("notifications.parse_form", KeyError("x"), KeyError),
        ("notifications.parse_form", InvalidParameterError("x"), AssertionError),
        ("notifications.verify_notification", UnicodeDecodeError("gbk", b"", 0, 1, "x"), UnicodeDecodeError),
    ],
)
def test_the_notification_harness_reports_undeclared_errors(
    monkeypatch: pytest.MonkeyPatch, target: str, exc: Exception, caught: type[Exception]
) -> None:
    module = load("notifications")
    owner, name = target.split(".")
    monkeypatch.setattr(getattr(module, owner), name, raising(exc))
    with pytest.raises(caught):
        module.TestOneInput((FUZZ / "corpus" / "notifications" / "md5_utf8_default_gbk.bin").read_bytes())


def test_the_notification_harness_reports_a_forged_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("notifications")
    monkeypatch.setattr(module.notifications.signing, "verify", lambda *a, **k: True)
    with pytest.raises(AssertionError, match="verified"):
        module.TestOneInput((FUZZ / "corpus" / "notifications" / "md5_utf8_default_gbk.bin").read_bytes())


def test_the_notification_harness_reports_a_broken_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    module = load("notifications")
    real = module.notifications.parse_form

    def lossy(*args: Any, **kwargs: Any) -> Any:
        parsed = real(*args, **kwargs)
        parsed.params.pop("subject", None)  # a parser that drops a field
        return parsed

    monkeypatch.setattr(module.notifications, "parse_form", lossy)
    with pytest.raises(module.notifications.NotificationError):
        module.TestOneInput(
            (FUZZ / "corpus" / "notifications" / "signed_round_trip_utf8_md5.bin").read_bytes()
        )


@pytest.mark.parametrize(
    ("exc", "caught"),
    [(IndexError("x"), IndexError), (InvalidParameterError("x"), AssertionError)],
)
def test_the_envelope_harness_reports_undeclared_errors(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, caught: type[Exception]
) -> None:
    module = load("envelope")
    monkeypatch.setattr(module.envelope, "parse_response", raising(exc))
    with pytest.raises(caught):
        module.TestOneInput((FUZZ / "corpus" / "envelope" / "signed_trade_md5.bin").read_bytes())


def test_the_envelope_harness_reports_a_signature_that_survives_a_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load("envelope")
    monkeypatch.setattr(module.envelope.signing, "verify", lambda *a, **k: True)
    with pytest.raises(AssertionError):
        module.TestOneInput((FUZZ / "corpus" / "envelope" / "signed_round_trip_md5.bin").read_bytes())

"""Build the wheel and sdist once per session, and install the wheel into a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What never belongs to a build input: tool state, caches, earlier builds, the developer's virtualenv.
_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "__pycache__", "*.pyc", "*.egg-info", "build", "dist", "site", ".tox",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules",
)  # fmt: skip
_BUILD_TIMEOUT = 600
_INSTALL_TIMEOUT = 900


@dataclass(frozen=True)
class Distributions:
    """The built wheel and sdist, and the names inside the wheel."""

    wheel: Path
    sdist: Path

    def wheel_names(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())


def run(
    command: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str] | None = None, timeout: float
) -> str:
    """Run ``command``; its combined output, or a test failure showing that output."""
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout[-6000:]}", pytrace=False
        )
    return done.stdout


@pytest.fixture(scope="session")
def distributions(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    """``python -m build`` of a copy of the working tree (the checkout itself is left untouched)."""
    try:
        import build  # noqa: F401
    except ImportError:
        pytest.fail("the 'build' package is missing: .venv/bin/pip install build", pytrace=False)
    source = tmp_path_factory.mktemp("source") / "project"
    shutil.copytree(ROOT, source, ignore=_IGNORED)
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", out, source], cwd=source, timeout=_BUILD_TIMEOUT)
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return Distributions(wheel=wheel, sdist=sdist)


@dataclass(frozen=True)
class FreshEnv:
    """A virtual environment with nothing but the wheel and its dependencies, and a directory to work in."""

    root: Path
    work: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def tool(self, name: str) -> Path:
        return self.root / "bin" / name

    def environ(self, **extra: str) -> dict[str, str]:
        """The environment for commands in it: no trace of the checkout or of the developer's virtualenv."""
        env = {
            name: value
            for name, value in os.environ.items()
            if name
            not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
        }
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(self.work)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.update(extra)
        return env

    def run(self, *command: str | Path, timeout: float = 300, **extra: str) -> str:
        return run(command, cwd=self.work, env=self.environ(**extra), timeout=timeout)


@pytest.fixture(scope="session")
def fresh_env(distributions: Distributions, tmp_path_factory: pytest.TempPathFactory) -> FreshEnv:
    """``python -m venv`` plus ``pip install <wheel>``: dependencies come from the package index."""
    root = tmp_path_factory.mktemp("venv") / "env"
    work = tmp_path_factory.mktemp("shop")
    run([sys.executable, "-m", "venv", root], cwd=work, timeout=_INSTALL_TIMEOUT)
    env = FreshEnv(root=root, work=work)
    env.run(env.python, "-m", "pip", "install", "--quiet", distributions.wheel, timeout=_INSTALL_TIMEOUT)
    return env

"""The demo's local secrets file: a Fernet key, a Django secret key and the staff password, made once."""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet

__all__ = ["DEFAULT_PATH", "load_or_create"]

#: Beside manage.py, and gitignored (example_project/.gitignore): nothing secret is ever committed.
DEFAULT_PATH: Final = Path(__file__).resolve().parent.parent / ".demo-secrets.json"
_KEYS: Final = ("fernet_key", "secret_key", "admin_password")


def _fresh() -> dict[str, str]:
    alphabet = string.ascii_letters + string.digits
    return {
        "fernet_key": Fernet.generate_key().decode("ascii"),
        "secret_key": secrets.token_urlsafe(50),
        # Readable enough to type from the terminal: 4 groups of 4.
        "admin_password": "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4)),
    }


def load_or_create(path: Path = DEFAULT_PATH) -> dict[str, str]:
    """The secrets stored at ``path``; the file is created (mode 0600) with fresh ones when missing.

    Two processes starting together (the shop and a Celery worker) must agree on one Fernet key: the file
    appears whole or not at all, and the loser of that race reads the winner's file.
    """
    path = Path(path)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    data = _fresh()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written in full under a temporary name, then linked into place: a reader never sees half a file,
    # and link() fails when another process linked its file first.
    descriptor, temporary = tempfile.mkstemp(prefix=".demo-secrets-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read(path)
    finally:
        os.unlink(temporary)
    return data


def _read(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8") or "{}")
    if not isinstance(data, dict) or any(not isinstance(data.get(key), str) for key in _KEYS):
        raise ValueError(f"{path} is not a demo secrets file: delete it to have a new one made")
    return {key: data[key] for key in _KEYS}

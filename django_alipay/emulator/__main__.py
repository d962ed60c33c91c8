"""``python -m django_alipay.emulator``: run the gateway emulator standalone (see ``--help``)."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())

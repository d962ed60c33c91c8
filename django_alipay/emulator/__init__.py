"""A local, protocol-faithful emulator of Alipay's mapi gateway (gateway.do, cashier, notifier).

Importing this package loads nothing from Django, so ``python -m django_alipay.emulator`` can configure
settings first.
"""

from typing import Final

__all__ = ["CONTROL_TOKEN_ENV", "CONTROL_TOKEN_HEADER"]

#: The request header carrying the control token that lets a script change the emulator through control/.
CONTROL_TOKEN_HEADER: Final = "X-Emulator-Token"  # noqa: S105 - a header name, not a secret
#: The environment variable a control token may come from (a test run sets it for the processes it starts).
CONTROL_TOKEN_ENV: Final = "ALIPAY_EMULATOR_CONTROL_TOKEN"  # noqa: S105 - a variable's name

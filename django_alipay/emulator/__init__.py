"""A local, protocol-faithful emulator of Alipay's mapi gateway (gateway.do, cashier, notifier).

Importing this package loads nothing from Django, so ``python -m django_alipay.emulator`` can configure
settings first.
"""

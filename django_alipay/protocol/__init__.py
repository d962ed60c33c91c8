"""The wire protocol of Alipay's mapi gateway in pure Python: nothing in this package imports Django."""

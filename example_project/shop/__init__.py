"""The example shop: products, a cart, online checkout, a point of sale, and orders paid through Alipay."""

"""URLs of the shop."""

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.products, name="products"),
    path("cart/", views.cart_page, name="cart"),
    path("cart/add/<slug:slug>/", views.cart_add, name="cart-add"),
    path("cart/update/", views.cart_update, name="cart-update"),
    path("checkout/", views.checkout, name="checkout"),
    path("paid/", views.alipay_return, name="alipay-return"),
    path("orders/", views.order_list, name="orders"),
    path("orders/<str:number>/", views.order_page, name="order"),
    path("orders/<str:number>/status.json", views.order_status, name="order-status"),
    path("pos/", views.pos, name="pos"),
    path("pos/qr/<str:number>/", views.pos_qr, name="pos-qr"),
]

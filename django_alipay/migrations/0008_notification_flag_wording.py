# The unknown_merchant flag says what it means: the notify URL's token names no merchant (a deactivated
# merchant still receives the notifications of its trades).

# ruff: noqa: RUF012

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_alipay", "0007_refund_answered_at"),
    ]

    operations = [
        migrations.AlterField(
            model_name="notification",
            name="flag",
            field=models.CharField(
                blank=True,
                choices=[
                    ("unknown_merchant", "The notify URL's token names no merchant"),
                    ("body_too_large", "The body is larger than the limit"),
                    ("bad_content_type", "The body is not a form"),
                    ("bad_charset", "The body cannot be decoded in the merchant's charset"),
                    ("too_many_fields", "More fields than a notification has"),
                    ("nul_byte", "A NUL byte in a name or value"),
                    ("duplicate_param", "A parameter appears more than once"),
                    ("malformed", "The notification lacks what it needs to be used"),
                    ("missing_sign", "No sign parameter"),
                    ("missing_sign_type", "No sign_type parameter"),
                    ("bad_sign_type", "sign_type is not exactly MD5, RSA, RSA2 or DSA"),
                    ("sign_type_not_allowed", "sign_type is not the merchant's"),
                    ("bad_sign_format", "The signature is not in the sign type's format"),
                    ("bad_signature", "The signature does not verify with the merchant's key"),
                    ("missing_notify_id", "notify_id is missing"),
                    ("bad_notify_id", "notify_id is too long or not printable ASCII"),
                    ("verify_false", "notify_verify said the notification is not genuine"),
                    ("verify_pending", "notify_verify could not be reached in time"),
                    (
                        "verify_false_confirmed",
                        "notify_verify said false; a query confirmed the reported status, applied from the query",
                    ),
                    ("unknown_order", "out_trade_no names no trade of this merchant"),
                    ("unknown_refund", "out_return_no names no refund of this merchant"),
                    ("bad_amount", "The amount is not a valid amount of the currency"),
                    ("amount_mismatch", "The amount differs from the order's"),
                    ("currency_mismatch", "The currency differs from the order's"),
                    ("partner_mismatch", "The seller/partner is not this merchant"),
                    ("unknown_status", "The status is not one the app knows"),
                    ("stale_transition", "The status would move the trade backwards"),
                    ("stale_notify_time", "notify_time is far from now (heuristic only)"),
                    ("conflicting_result", "The result contradicts an earlier final result"),
                    ("verify_error", "The merchant's keys could not verify anything (configuration)"),
                    ("processing_error", "Processing raised an error"),
                ],
                max_length=32,
                verbose_name="flag",
            ),
        ),
    ]

"""The YooMoney protocol: notifications and their signatures, the quickpay form, the wallet API.

- :mod:`ymds.yoomoney.notification`: ``parse_notification(body)``, ``notification_from_fields(fields)``
- :mod:`ymds.yoomoney.signature`: ``verify(notification_or_fields, secret, policy)``
- :mod:`ymds.yoomoney.quickpay`: ``quickpay_fields(...)``, ``credited_amount(...)``
- :mod:`ymds.yoomoney.wallet_api`: ``WalletAPI`` (operation-history, operation-details)
- :mod:`ymds.yoomoney.test_notification`: ``send_test_notification(...)``
"""

from ymds.yoomoney.notification import Notification, NotificationError, notification_from_fields, parse_notification
from ymds.yoomoney.signature import VerifyResult, verify

__all__ = ["Notification", "NotificationError", "parse_notification", "notification_from_fields", "verify", "VerifyResult"]

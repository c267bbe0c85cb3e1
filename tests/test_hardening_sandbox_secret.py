"""The sandbox's own secret: stable per installation, never the real one."""
from twisted.trial import unittest

from ymds.config import load_config
from ymds.sandbox.secret import sandbox_secret, verification_secret
from ymds.yoomoney.signature import add_signatures, verify

REAL = "the-real-notification-secret-0123"


def config(sandbox: bool):
    return load_config(raw={"server": {"public_url": "https://localhost:8443"},
                            "yoomoney": {"wallet": "4100123456789012", "notification_secret": REAL, "sandbox": sandbox}},
                       env={})


class SandboxSecretTests(unittest.TestCase):
    def test_differs_from_the_real_secret_and_is_stable(self):
        self.assertNotEqual(sandbox_secret(REAL), REAL)
        self.assertNotIn(REAL, sandbox_secret(REAL))
        self.assertEqual(sandbox_secret(REAL), sandbox_secret(REAL))
        self.assertNotEqual(sandbox_secret(""), sandbox_secret(""))  # random without a secret

    def test_sandbox_minted_notification_does_not_verify_live(self):
        fields = {"notification_type": "p2p-incoming", "operation_id": "1", "amount": "99.00", "withdraw_amount": "100.00",
                  "currency": "643", "datetime": "2026-11-29T10:00:00Z", "sender": "", "codepro": "false", "label": "x"}
        minted = add_signatures(fields, sandbox_secret(REAL), "both")
        self.assertFalse(verify(minted, REAL, "auto"))
        self.assertTrue(verify(minted, verification_secret(config(True)), "auto"))

    def test_live_verification_uses_the_real_secret(self):
        self.assertEqual(verification_secret(config(False)), REAL)
        self.assertEqual(verification_secret(config(True)), sandbox_secret(REAL))

"""The sandbox's own secret: stable per installation, never the real one."""
from twisted.internet.defer import Deferred
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from ymds.config import load_config
from ymds.sandbox.secret import accepted_secrets, sandbox_secret, verification_secret
from ymds.yoomoney.signature import add_signatures, verify, verify_any

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


class SandboxSigningTests(unittest.TestCase):
    """Wiring: the sandbox signs with its derived key only; a live node refuses that key,
    a sandbox-mode node accepts it and the configured secret (test-notification, e2e)."""

    def test_accepted_secrets(self):
        self.assertEqual(accepted_secrets(config(False)), (REAL,))
        self.assertEqual(accepted_secrets(config(True)), (sandbox_secret(REAL), REAL))

    async def test_sandbox_pay_signs_with_its_own_key(self):
        from decimal import Decimal

        from twisted.internet import reactor, task
        from ymds.sandbox import SandboxResource
        from ymds.sandbox.resource import QuickpayForm
        from ymds.yoomoney.notification import parse_form

        bodies = []

        class Catch(Resource):
            isLeaf = True

            def render_POST(self, request):
                bodies.append(request.content.read())
                return b"OK"

        port = reactor.listenTCP(0, Site(Catch()), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        sandbox_config = config(True)
        resource = SandboxResource(reactor, sandbox_config, clock=task.Clock(),
                                   notify_url=f"http://127.0.0.1:{port.getHost().port}/yoomoney/notify")
        self.addCleanup(lambda: Deferred.fromCoroutine(resource.stop()))
        await resource.sandbox.pay(QuickpayForm("4100123456789012", "AC", Decimal("100.00"), "x", ""))
        minted = parse_form(bodies[0])
        self.assertIn("sign", minted)
        self.assertFalse(verify_any(minted, accepted_secrets(config(False)), "auto"))   # a live node refuses it
        self.assertFalse(verify(minted, REAL, "sha1"))
        self.assertEqual(verify_any(minted, accepted_secrets(sandbox_config), "auto").scheme, "sign")
        test_notification = add_signatures({k: v for k, v in minted.items() if k not in ("sign", "sha1_hash")}, REAL)
        self.assertTrue(verify_any(test_notification, accepted_secrets(sandbox_config), "auto"))

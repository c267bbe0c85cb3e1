"""Issue 14: /healthz is 200 when this node can do its own roles' work; the JSON still
reports the ledger heartbeat and every check."""

from __future__ import annotations

import json

from twisted.trial import unittest

from tests.test_web_support import LiveSite
from ymds.web.health import checks_for_roles


async def up():
    return True, "ok"


async def no_heartbeat():
    return False, "no billing process has reported the ledger recently"


class HealthzByRoleTests(unittest.TestCase):
    async def get(self, roles):
        live = LiveSite(self, checks=checks_for_roles(set(roles), {"redis": up, "ledger": no_heartbeat}))
        response, body = await live.request("GET", "/healthz")
        return response.code, json.loads(body)

    async def test_web_only_node_is_healthy_without_billing(self):
        code, body = await self.get({"web"})
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["checks"]["ledger"], {"ok": False, "required": False,
                                                    "detail": "no billing process has reported the ledger recently"})
        self.assertEqual(body["checks"]["redis"]["required"], True)

    async def test_billing_node_needs_the_ledger(self):
        code, body = await self.get({"web", "billing"})
        self.assertEqual(code, 503)
        self.assertTrue(body["checks"]["ledger"]["required"])

    async def test_redis_down_is_unhealthy_for_every_role(self):
        async def down():
            return False, "down"
        live = LiveSite(self, checks=checks_for_roles({"web"}, {"redis": down, "ledger": up}))
        response, _ = await live.request("GET", "/healthz")
        self.assertEqual(response.code, 503)

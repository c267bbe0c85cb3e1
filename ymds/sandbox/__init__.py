"""A local YooMoney: quickpay confirm page, notifier with the real retry schedule, wallet API emulation."""

from ymds.sandbox.resource import Sandbox, SandboxResource

__all__ = ["Sandbox", "SandboxResource"]

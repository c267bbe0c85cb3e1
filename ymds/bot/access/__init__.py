"""Access to paid chats that cannot leak (issue 15).

- :mod:`.doorkeeper`: DoorKeeper decides join requests and removes members without a
  subscription (AccessPolicy says who may be in a chat); ALLOWED_UPDATES names the
  update kinds the poller must ask for.
- :mod:`.invites`: one live join-request link per (subscriber, chat), rate-limited button.
- :mod:`.digest`: one owner alert per burst of removals.
- :mod:`.rights`: is the bot an administrator with the rights it needs in each chat.
- :mod:`.api`: the Bot API calls used, as a typed interface over BotAPI.call.
"""
from ymds.bot.access.api import BotCalls, ChatAdminAPI
from ymds.bot.access.digest import RemovalDigest
from ymds.bot.access.doorkeeper import ALLOWED_UPDATES, AccessPolicy, DoorKeeper
from ymds.bot.access.invites import InviteIssuer, InviteStore, LiveInvite, PressLimiter, PressTooSoon
from ymds.bot.access.rights import REQUIRED_RIGHTS, RightsProblem, check_bot_rights

__all__ = ["ALLOWED_UPDATES", "AccessPolicy", "BotCalls", "ChatAdminAPI", "DoorKeeper", "InviteIssuer", "InviteStore",
           "LiveInvite", "PressLimiter", "PressTooSoon", "REQUIRED_RIGHTS", "RemovalDigest", "RightsProblem",
           "check_bot_rights"]

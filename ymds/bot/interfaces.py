"""Interfaces of the bot role's parts."""
from zope.interface import Interface


class IBotAPI(Interface):
    """The Telegram Bot API methods ymds uses.

    Every method is a coroutine returning Telegram's ``result`` or raising a
    :class:`ymds.bot.errors.TelegramError` subclass.
    """

    def getMe():
        """The bot's own User object."""

    def deleteWebhook(drop_pending_updates=False):
        """Remove a webhook so that getUpdates works."""

    def getUpdates(offset=None, timeout=0, limit=100, allowed_updates=None):
        """Long poll: a list of Update objects with update_id >= offset."""

    def sendMessage(chat_id, text, reply_markup=None, disable_web_page_preview=True):
        """Send HTML text, optionally with an inline keyboard; the Message object."""

    def createChatInviteLink(chat_id, member_limit=None, expire_date=None, name=None):
        """A ChatInviteLink object."""

    def banChatMember(chat_id, user_id, until_date=None):
        """Remove a member (True)."""

    def unbanChatMember(chat_id, user_id, only_if_banned=True):
        """Allow a removed member to join again by link (True)."""

    def answerCallbackQuery(callback_query_id, text=None):
        """Stop the button's spinner on the user's side (True)."""


class IRateLimiter(Interface):
    """Paces outgoing calls to stay inside Telegram's limits."""

    def acquire(chat_id):
        """Coroutine that returns when a message to ``chat_id`` may be sent now
        (``chat_id`` None: an API call that only counts against the overall rate)."""

    def pause(seconds):
        """Stop all sending for ``seconds`` (after a 429 with retry_after)."""

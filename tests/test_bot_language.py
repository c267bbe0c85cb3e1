"""A bot that explains itself (issue 19): the command menu in ru and en at start, the
user's Telegram language_code until /lang, plan titles per language, prices in the
language's number format, and the bot's @username kept in Redis for the web role."""
from __future__ import annotations

from twisted.trial import unittest

from tests.fakes.bot_harness import as_deferred, wait_until
from tests.fakes.fake_telegram import BOT_USER
from tests.test_bot_handlers import BotTestBase
from ymds.bot.commands_lang import COMMAND_MENU, language_of_code, username_key
from ymds.config import ConfigError, load_config

PLANS = [{"id": "month", "title": {"ru": "1 месяц", "en": "1 month"}, "price": "1990.00", "days": 30},
         {"id": "year", "title": "Год / Year", "price": "19900.00", "days": 365}]


class LanguageBotTests(BotTestBase):
    language = "ru"

    def config_options(self):
        return {**super().config_options(), "plans": PLANS}

    @as_deferred
    async def test_the_menu_is_set_in_ru_and_en_and_the_username_kept_for_the_web(self):
        await wait_until(lambda: set(self.fake.my_commands) == {"ru", "en", ""}, what="setMyCommands")
        self.assertEqual([c["command"] for c in self.fake.my_commands["en"]], [c for c, _ in COMMAND_MENU["en"]])
        self.assertEqual(self.fake.my_commands["ru"][0], {"command": "subscribe",
                                                          "description": "Оформить или продлить подписку"})
        self.assertEqual(self.fake.my_commands[""], self.fake.my_commands["ru"])  # telegram.language = ru
        stored = self.redis_server.command("GET", username_key(self.prefix))
        self.assertEqual(stored, BOT_USER["username"])

    @as_deferred
    async def test_language_code_until_lang_then_the_choice(self):
        reply = await self.say(301, "/subscribe", language_code="en-GB")
        self.assertIn("1 month", reply["visible"])
        self.assertEqual([b["text"] for b in self.buttons(reply)],
                         ["1 month — 1,990.00\u00a0₽", "Год / Year — 19,900.00\u00a0₽"])
        reply = await self.say(302, "/subscribe", language_code="ru")
        self.assertIn("1 месяц", reply["visible"])
        self.assertEqual([b["text"] for b in self.buttons(reply)],
                         ["1 месяц — 1\u00a0990,00\u00a0₽", "Год / Year — 19\u00a0900,00\u00a0₽"])
        reply = await self.say(303, "/subscribe")  # no language_code: telegram.language
        self.assertIn("1 месяц", reply["visible"])
        # /lang wins over the language_code from then on
        await self.say(301, "/lang", language_code="en")
        await self.click(301, "lang:ru")
        reply = await self.say(301, "/subscribe", language_code="en")
        self.assertIn("1 месяц", reply["visible"])
        # messages the bot sends on its own follow the same choice
        self.assertEqual(await self.bot.parts.tasks.language(301), "ru")
        self.assertEqual(await self.bot.parts.tasks.language(302), "ru")
        await self.say(304, "/help", language_code="de")
        self.assertEqual(await self.bot.parts.tasks.language(304), "en")


class LanguageCodeTests(unittest.TestCase):
    def test_codes(self):
        self.assertEqual([language_of_code(c) for c in ("ru", "ru-RU", "RU", "en", "de", "uk", "", None, 7)],
                         ["ru", "ru", "ru", "en", "en", "en", None, None, None])


class PlanTitleConfigTests(unittest.TestCase):
    def config(self, title):
        return load_config(raw={"server": {"public_url": "https://pay.example.org"},
                                "yoomoney": {"wallet": "4100111122223333", "notification_secret": "s"},
                                "links": {"secret": "0123456789abcdef0123456789abcdef"},
                                "plans": [{"id": "m", "title": title, "price": "199.00", "days": 30}]}, env={})

    def test_a_table_or_a_string(self):
        plan = self.config({"ru": "1 месяц", "en": "1 month"}).plans[0]
        self.assertEqual((plan.title, plan.title_in("ru"), plan.title_in("en")), ("1 месяц", "1 месяц", "1 month"))
        plan = self.config({"en": "1 month"}).plans[0]
        self.assertEqual((plan.title, plan.title_in("ru")), ("1 month", "1 month"))
        plan = self.config("Месяц").plans[0]
        self.assertEqual((plan.title, plan.title_in("en")), ("Месяц", "Месяц"))

    def test_refusals_name_the_key(self):
        for title, key in (({"de": "Monat"}, "plans[0].title.de"), ({}, "plans[0].title"),
                           ({"ru": ""}, "plans[0].title.ru"), ({"en": "x" * 101}, "plans[0].title.en")):
            with self.assertRaises(ConfigError) as caught:
                self.config(title)
            self.assertEqual(caught.exception.key, key)


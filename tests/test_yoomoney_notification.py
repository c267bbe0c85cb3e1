"""Parsing of YooMoney notification bodies: every refusal, both datetime forms, fuzzing."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from ymds.yoomoney import notification as n
from ymds.yoomoney.notification import (
    NotificationError, encode_form, notification_from_fields, parse_datetime, parse_notification,
)

VECTORS = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "yoomoney-vectors.json")
if not os.path.exists(VECTORS):
    VECTORS = "/work/shared/yoomoney-vectors.json"


def base_fields(**changes) -> dict[str, str]:
    fields = {
        "notification_type": "p2p-incoming",
        "operation_id": "1234567",
        "amount": "300.00",
        "withdraw_amount": "301.50",
        "currency": "643",
        "datetime": "2011-07-01T09:00:00.000+04:00",
        "sender": "41001XXXXXXXX",
        "codepro": "false",
        "label": "YM.label.12345",
        "unaccepted": "false",
    }
    for k, v in changes.items():
        if v is None:
            fields.pop(k, None)
        else:
            fields[k] = v
    return fields


class ParseTests(unittest.TestCase):
    def test_vector_body(self):
        fields = json.load(open(VECTORS))["sign"]["params"]
        note = parse_notification(encode_form(fields))
        self.assertEqual(note.notification_type, "p2p-incoming")
        self.assertEqual(note.operation_id, "1234567")
        self.assertEqual(note.amount, Decimal("300.00"))
        self.assertIsInstance(note.amount, Decimal)
        self.assertEqual(note.withdraw_amount, Decimal("301.50"))
        self.assertEqual(note.currency, "643")
        self.assertEqual(note.datetime_raw, "2011-07-01T09:00:00.000+04:00")
        self.assertEqual(note.datetime, datetime(2011, 7, 1, 5, 0, tzinfo=timezone.utc))
        self.assertEqual(note.sender, "41001XXXXXXXX")
        self.assertFalse(note.codepro)
        self.assertFalse(note.unaccepted)
        self.assertFalse(note.held)
        self.assertFalse(note.is_test)
        self.assertEqual(note.label, "YM.label.12345")
        self.assertIsNone(note.sha1_hash)
        self.assertIsNone(note.sign)
        self.assertEqual(note.fields, fields)

    def test_fields_kept_exactly(self):
        body = (b"notification_type=card-incoming&operation_id=904035776918098009&amount=97.00&withdraw_amount=100.00"
                b"&currency=643&datetime=2014-04-28T16%3A31%3A28Z&sender=&codepro=false&label=abcdefgh12"
                b"&lastname=%D0%98%D0%B2%D0%B0%D0%BD%D0%BE%D0%B2&email=a%2Bb%40example.org&zip=&extra+key=x+y")
        note = parse_notification(body)
        self.assertEqual(note.fields["datetime"], "2014-04-28T16:31:28Z")
        self.assertEqual(note.datetime, datetime(2014, 4, 28, 16, 31, 28, tzinfo=timezone.utc))
        self.assertEqual(note.lastname, "Иванов")
        self.assertEqual(note.email, "a+b@example.org")
        self.assertEqual(note.zip, "")
        self.assertIsNone(note.phone)
        self.assertEqual(note.fields["extra key"], "x y")
        self.assertEqual(note.sender, "")
        self.assertTrue(note.label_is_ours)
        self.assertEqual(len(note.fields), 13)

    def test_repr_hides_personal_fields(self):
        note = notification_from_fields(base_fields(email="secret@example.org", sign="ab" * 32))
        self.assertNotIn("secret@example.org", repr(note))
        self.assertNotIn("ab" * 32, repr(note))

    def test_held_and_test_flags(self):
        self.assertTrue(notification_from_fields(base_fields(codepro="true")).held)
        self.assertTrue(notification_from_fields(base_fields(unaccepted="true")).held)
        self.assertTrue(notification_from_fields(base_fields(test_notification="true")).is_test)
        note = notification_from_fields(base_fields(unaccepted=None))
        self.assertFalse(note.unaccepted)

    def test_label_not_ours(self):
        self.assertFalse(notification_from_fields(base_fields()).label_is_ours)  # "YM.label.12345" has dots
        self.assertFalse(notification_from_fields(base_fields(label="")).label_is_ours)
        self.assertFalse(notification_from_fields(base_fields(label="<script>alert(1)</script>")).label_is_ours)
        self.assertTrue(notification_from_fields(base_fields(label="Abc_def-123")).label_is_ours)

    def test_sender_and_label_may_be_absent(self):
        note = notification_from_fields(base_fields(sender=None, label=None))
        self.assertEqual((note.sender, note.label), ("", ""))

    def test_amount_equal_to_withdraw_is_fine(self):
        note = notification_from_fields(base_fields(amount="10", withdraw_amount="10.0"))
        self.assertEqual(note.amount, Decimal("10.00"))
        self.assertEqual(str(note.amount), "10.00")

    def test_both_datetime_forms(self):
        self.assertEqual(parse_datetime("2011-07-01T09:00:00.000+04:00").utcoffset(), timedelta(hours=4))
        self.assertEqual(parse_datetime("2014-04-28T16:31:28Z").utcoffset(), timedelta(0))
        self.assertIsNone(parse_datetime("2014-04-28T16:31:28"))  # no offset
        self.assertIsNone(parse_datetime("yesterday"))
        note = notification_from_fields(base_fields(datetime="yesterday"))
        self.assertIsNone(note.datetime)
        self.assertEqual(note.datetime_raw, "yesterday")

    def test_empty_trailing_separators_are_ignored(self):
        note = parse_notification(b"&" + encode_form(base_fields()) + b"&&")
        self.assertEqual(note.operation_id, "1234567")


class RefusalTests(unittest.TestCase):
    def refused(self, body_or_fields, code: str, cls=None):
        if isinstance(body_or_fields, dict):
            body_or_fields = encode_form(body_or_fields)
        with self.assertRaises(NotificationError) as caught:
            parse_notification(body_or_fields)
        self.assertEqual(caught.exception.code, code, str(caught.exception))
        self.assertIsInstance(caught.exception, ValueError)
        if cls is not None:
            self.assertIsInstance(caught.exception, cls)
        return caught.exception

    def test_not_utf8(self):
        self.refused(encode_form(base_fields()) + b"&lastname=\xff\xfe", "not_utf8", n.NotUTF8)

    def test_percent_encoded_not_utf8(self):
        self.refused(encode_form(base_fields()) + b"&lastname=%FF", "not_utf8")

    def test_duplicate_key(self):
        error = self.refused(encode_form(base_fields()) + b"&amount=1.00", "duplicate_key", n.DuplicateKey)
        self.assertEqual(error.field, "amount")

    def test_duplicate_key_by_encoding(self):
        self.refused(encode_form(base_fields()) + b"&%61mount=300.00", "duplicate_key")

    def test_too_many_fields(self):
        extra = {f"x{i}": "1" for i in range(64 - len(base_fields()) + 1)}
        self.refused(base_fields(**extra), "too_many_fields", n.TooManyFields)

    def test_sixty_four_fields_are_fine(self):
        extra = {f"x{i}": "1" for i in range(64 - len(base_fields()))}
        self.assertEqual(len(parse_notification(encode_form(base_fields(**extra))).fields), 64)

    def test_too_large(self):
        self.refused(encode_form(base_fields(comment="x" * 70000)), "too_large")

    def test_malformed(self):
        self.refused(encode_form(base_fields()) + b"&novalue", "malformed")
        self.refused(encode_form(base_fields()) + b"&=x", "malformed")
        self.refused(encode_form(base_fields()) + b"&lastname=a%00b", "malformed")

    def test_missing_fields(self):
        for name in n.REQUIRED_FIELDS:
            error = self.refused(base_fields(**{name: None}), "missing_field", n.MissingField)
            self.assertEqual(error.field, name)

    def test_bad_amounts(self):
        for name in ("amount", "withdraw_amount"):
            for bad in ("", "0", "0.00", "-1.00", "1.001", "1e3", "NaN", "Infinity", " 1.00", "1,00", "+1.00",
                        "1.", ".5", "１.00", "1234567890123.00"):
                fields = base_fields(amount="1.00", withdraw_amount="2.00")
                fields[name] = bad
                error = self.refused(fields, "bad_amount", n.BadAmount)
                self.assertEqual(error.field, name)

    def test_amount_exceeds_withdraw(self):
        self.refused(base_fields(amount="301.51"), "amount_exceeds_withdraw", n.AmountExceedsWithdraw)

    def test_bad_currency(self):
        for bad in ("", "840", "RUB", "0643", " 643"):
            self.refused(base_fields(currency=bad), "bad_currency", n.BadCurrency)

    def test_bad_operation_id(self):
        for bad in ("", "x" * 201, "12 34", "id\n1", "идент"):
            self.refused(base_fields(operation_id=bad), "bad_operation_id", n.BadOperationId)
        self.assertEqual(notification_from_fields(base_fields(operation_id="x" * 200)).operation_id, "x" * 200)

    def test_bad_booleans(self):
        for name in ("codepro", "unaccepted", "test_notification"):
            for bad in ("", "True", "1", "yes"):
                self.refused(base_fields(**{name: bad}), "bad_boolean", n.BadBoolean)

    def test_bad_datetime(self):
        for bad in ("", "2014-04-28 16:31:28Z", "x" * 65):
            self.refused(base_fields(datetime=bad), "bad_datetime", n.BadDatetime)

    def test_bad_notification_type(self):
        for bad in ("", "p2p incoming", "x" * 65):
            self.refused(base_fields(notification_type=bad), "bad_notification_type")

    def test_from_fields_refuses_non_text(self):
        for bad in ({**base_fields(), "amount": Decimal("300.00")}, {**base_fields(), 1: "x"}, "amount=1", None):
            with self.assertRaises(NotificationError):
                notification_from_fields(bad)

    def test_codes_are_distinct_and_stable(self):
        classes = [getattr(n, name) for name in n.__all__
                   if isinstance(getattr(n, name), type) and issubclass(getattr(n, name), NotificationError)]
        codes = [c.code for c in classes if c is not NotificationError]
        self.assertEqual(len(codes), len(set(codes)))
        self.assertIn("amount_exceeds_withdraw", codes)


class FuzzTests(unittest.TestCase):
    @settings(max_examples=400, deadline=None)
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes_raise_only_notification_error(self, body):
        try:
            parse_notification(body)
        except NotificationError:
            pass

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.tuples(st.integers(min_value=0, max_value=400), st.binary(min_size=0, max_size=3),
                              st.integers(min_value=0, max_value=3)), min_size=1, max_size=6))
    def test_mutated_valid_bodies_raise_only_notification_error(self, edits):
        body = bytearray(encode_form(base_fields(email="a@b.c", sign="ab" * 32)))
        for position, insert, remove in edits:
            position = min(position, len(body))
            body[position:position + remove] = insert
        try:
            note = parse_notification(bytes(body))
        except NotificationError:
            return
        self.assertLessEqual(note.amount, note.withdraw_amount)
        self.assertEqual(note.currency, "643")

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(list(base_fields()) + ["sign", "sha1_hash", "test_notification", "email"]),
                           st.text(max_size=30), max_size=14))
    def test_arbitrary_field_values_raise_only_notification_error(self, changes):
        fields = base_fields(**changes)
        try:
            note = parse_notification(encode_form(fields))
        except NotificationError:
            return
        self.assertEqual(note.fields, fields)
        self.assertLessEqual(note.amount, note.withdraw_amount)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10)), max_size=70))
    def test_round_trip_or_typed_error(self, pairs):
        try:
            fields = n.parse_form(encode_form(pairs))
        except NotificationError:
            return
        self.assertEqual(fields, dict(pairs))

"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json.

tests/test_api.py validates it with openapi-spec-validator and checks that its paths and
methods are exactly the routes of ymds.api.resource.ROUTES.
"""

from __future__ import annotations

import json

from ymds import __version__
from ymds.api.selling_openapi import SELLING_SCHEMAS, selling_paths, with_plans

ERROR_CODES = ["missing_api_key", "invalid_api_key", "insufficient_scope", "not_found", "method_not_allowed",
               "idempotency_conflict", "payload_too_large", "unsupported_media_type", "malformed_json",
               "invalid_request", "rate_limited", "unavailable", "internal_error", "already_exists"]

_MONEY = {"type": "string", "pattern": r"^\d+\.\d{2}$", "examples": ["199.00"]}
# 0.01 .. 999999.99 with at most two decimals, no leading zeros (the API checks the same pattern)
AMOUNT_PATTERN = r"^(?:[1-9][0-9]{0,5}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?))$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
UNIX_OR_ISO = {"anyOf": [{"type": "string", "pattern": r"^[0-9]{1,11}(\.[0-9]{1,6})?$"},
                         {"type": "string", "format": "date-time"}]}
_INT64 = {"minimum": -9223372036854775808, "maximum": 9223372036854775807}
_COMMON_FIELDS = {
    "customer": {"type": ["string", "null"], "minLength": 1, "maxLength": 128,
                 "description": "your reference for the buyer; kept as metadata.customer"},
    "description": {"type": "string", "maxLength": 500},
    "metadata": {"type": ["object", "null"], "maxProperties": 50,
                 "description": "anything of yours, up to 4096 bytes of JSON; comes back in the invoice and its webhooks"},
    "expires_in": {"type": ["integer", "null"], "minimum": 60, "maximum": 2592000,
                   "description": "seconds the invoice stays payable (default: the links.ttl setting)"},
}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _ok(description: str, schema: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_COMMON = {"401": _error("Missing, malformed, unknown or revoked API key"),
           "403": _error("The key lacks this route's scope"),
           "429": _error("Rate limited (see Retry-After)"),
           "503": _error("Billing is unreachable; retry later")}

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "enum": ERROR_CODES}, "message": {"type": "string"},
                           "param": {"type": "string", "description": "the field or parameter at fault"}}}},
    },
    "InvoiceCreate": {
        "description": "Either a free amount, or a configured plan for a Telegram chat.",
        "oneOf": [{"$ref": "#/components/schemas/AmountInvoice"}, {"$ref": "#/components/schemas/PlanInvoice"}],
    },
    "AmountInvoice": {
        "type": "object", "required": ["amount"], "additionalProperties": False,
        "properties": {
            "amount": {"oneOf": [{"type": "string", "pattern": AMOUNT_PATTERN},
                                 {"type": "integer", "minimum": 1, "maximum": 999999}],
                       "description": "rubles the payer pays: \"199.00\" (0.01 to 999999.99) or a whole number"},
            "chat_id": {"type": ["integer", "null"], **_INT64, "description": "a Telegram chat, if any"},
            **_COMMON_FIELDS,
        },
    },
    "PlanInvoice": {
        "type": "object", "required": ["plan", "chat_id"], "additionalProperties": False,
        "properties": {
            "plan": {"type": "string", "description": "a plan id from the configuration"},
            "chat_id": {"type": "integer", **_INT64, "description": "the Telegram chat that gets the subscription"},
            **_COMMON_FIELDS,
        },
    },
    "Invoice": {
        "type": "object",
        "required": ["label", "kind", "amount", "currency", "status", "expires_at", "pay_url"],
        "properties": {
            "label": {"type": "string"},
            "kind": {"type": "string", "enum": ["subscription", "donation"]},
            "plan": {"type": ["string", "null"]},
            "chat_id": {"type": ["integer", "null"]},
            "amount": _MONEY,
            "currency": {"type": "string", "const": "RUB"},
            "status": {"type": "string", "enum": ["open", "paid", "underpaid", "overpaid", "expired", "late", "held"]},
            "description": {"type": "string"},
            "metadata": {"type": "object"},
            "customer": {"type": ["string", "null"]},
            "created_at": _TIME, "expires_at": _TIME, "paid_at": _TIME,
            "pay_url": {"type": "string", "format": "uri", "description": "the signed payment page to send the payer to"},
        },
    },
    "Payment": {
        "type": "object", "required": ["operation_id", "amount", "status", "received_at"],
        "properties": {
            "operation_id": {"type": "string"}, "label": {"type": "string"},
            "invoice_label": {"type": ["string", "null"]},
            "amount": {**_MONEY, "description": "what the payer paid"},
            "credited": {**_MONEY, "description": "what reached the wallet after the fee"},
            "currency": {"type": "string", "const": "RUB"},
            "status": {"type": "string", "enum": ["paid", "overpaid", "underpaid", "late", "unmatched", "held"]},
            "held": {"type": "boolean"},
            "source": {"type": "string", "enum": ["notification", "reconcile", "manual"]},
            "notification_type": {"type": "string"},
            "chat_id": {"type": ["integer", "null"]},
            "promo_code": {"type": ["string", "null"], "description": "the promo code fixed into the invoice (issue 19)"},
            "received_at": _TIME, "accepted_at": _TIME, "granted_until": _TIME,
        },
    },
    "PaymentPage": {
        "type": "object", "required": ["data", "next_cursor", "has_more"],
        "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Payment"}},
                       "next_cursor": {"type": ["string", "null"], "description": "pass as cursor for the next page"},
                       "has_more": {"type": "boolean"}},
    },
    "Subscription": {
        "type": "object", "required": ["chat_id", "ends_at", "active"],
        "properties": {"chat_id": {"type": "integer"}, "plan": {"type": ["string", "null"]}, "ends_at": _TIME,
                       "active": {"type": "boolean"}},
    },
    "WebhookEvent": {
        "type": "object", "required": ["id", "type", "created", "data"],
        "description": "The body POSTed to webhook endpoints, signed in the Ymds-Signature header "
                       "(t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">).",
        "properties": {
            "id": {"type": "string", "description": "evt_...: deduplicate on it"},
            "type": {"type": "string", "enum": ["invoice.paid", "invoice.underpaid", "payment.unmatched",
                                                "subscription.extended", "subscription.expired"]},
            "created": {"type": "integer", "description": "Unix seconds"},
            "data": {"type": "object"},
        },
    },
}


def _document(public_url: str, plans=()) -> dict:
    time_param = {"schema": UNIX_OR_ISO, "description": "Unix seconds or ISO 8601"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ymds integration API", "version": __version__,
                 "description": "Create invoices and read payments of a ymds installation. Keys come from "
                                "`ymds api-key create`; every error is {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": public_url.rstrip("/") or "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                    "schema": {"type": "object"}}}}}}},
            "/api/v1/invoices": {"post": {
                "operationId": "createInvoice", "summary": "Create an invoice (scope invoices:write)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                                "description": "a retry with the same key and body returns the first answer; "
                                               "with another body: 409"}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/InvoiceCreate"}}}},
                "responses": {"201": _ok("The invoice and its pay_url", "Invoice"),
                              "400": _error("Malformed JSON"), "409": _error("Idempotency-Key reused with another body"),
                              "413": _error("Body over 16 KiB"), "415": _error("Not application/json"),
                              "422": _error("A field is missing or wrong"), **_COMMON}}},
            "/api/v1/invoices/{label}": {"get": {
                "operationId": "getInvoice", "summary": "One invoice (scope invoices:read)",
                "parameters": [{"name": "label", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("The invoice", "Invoice"), "404": _error("No such invoice"), **_COMMON}}},
            "/api/v1/payments": {"get": {
                "operationId": "listPayments", "summary": "Payments in arrival order (scope payments:read)",
                "parameters": [
                    {"name": "since", "in": "query", **time_param},
                    {"name": "until", "in": "query", **time_param},
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": [
                        "paid", "overpaid", "underpaid", "late", "unmatched", "held"]}},
                    {"name": "label", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 256}},
                    {"name": "chat_id", "in": "query", "schema": {"type": "integer", **_INT64}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": r"^[0-9]{1,18}$"},
                     "description": "next_cursor of the previous page"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                "default": 100}}],
                "responses": {"200": _ok("A page of payments", "PaymentPage"), "422": _error("A bad parameter"),
                              **_COMMON}}},
            "/api/v1/subscriptions/{chat_id}": {"get": {
                "operationId": "getSubscription", "summary": "A chat's subscription (scope subscriptions:read)",
                "parameters": [{"name": "chat_id", "in": "path", "required": True,
                                "schema": {"type": "integer", **_INT64}}],
                "responses": {"200": _ok("The subscription", "Subscription"),
                              "404": _error("No subscription for this chat"), **_COMMON}}},
            **_subscriber_paths(),
            **selling_paths(_error, _COMMON),  # issue 19: promo and access codes
        },
        "webhooks": {"event": {"post": {
            "summary": "An event POSTed to each endpoint registered with `ymds webhook add`",
            "parameters": [{"name": "Ymds-Signature", "in": "header", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookEvent"}}}},
            "responses": {"200": {"description": "Any 2xx acknowledges; anything else is retried for 24 hours"}}}}},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "ymds_... from `ymds api-key create`"}},
            "schemas": _schemas(plans),
        },
    }


def _subscriber_paths() -> dict:
    """Subscriber management (issue 19): list, grant, extend, revoke."""
    chat = [{"name": "chat_id", "in": "path", "required": True, "schema": {"type": "integer", **_INT64}}]
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                   "description": "a retry with the same key and request changes nothing again; another request: 409"}
    write = {"400": _error("Malformed JSON"), "404": _error("Not a chat id, or (extend, revoke) no subscription"),
             "409": _error("Idempotency-Key reused with another request"),
             "413": _error("Body over 16 KiB"), "415": _error("Not application/json"),
             "422": _error("A field is missing or wrong, or an unknown plan"), **_COMMON}

    def change(operation: str, summary: str, body: str) -> dict:
        return {"post": {"operationId": operation, "summary": summary + " (scope subscriptions:write)",
                         "parameters": chat + [idempotency], "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": f"#/components/schemas/{body}"}}}},
                         "responses": {"200": _ok("The subscription after the change", "Subscription"), **write}}}
    return {
        "/api/v1/subscriptions": {"get": {
            "operationId": "listSubscriptions", "summary": "Subscribers, soonest end first (scope subscriptions:read)",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["active", "expired", "all"],
                                                             "default": "active"}},
                {"name": "plan", "in": "query", "schema": {"type": "string", "minLength": 1, "maxLength": 64}},
                {"name": "expiring_within", "in": "query", "description": "only those ending within this many seconds",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 9999999999}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                            "default": 100}}],
            "responses": {"200": _ok("Subscribers", "SubscriptionList"), "422": _error("A bad parameter"),
                          **_COMMON}}},
        "/api/v1/subscriptions/{chat_id}/grant": change(
            "grantSubscription", "Add a plan's period or N days (from now if it has ended); invites the user",
            "SubscriptionGrant"),
        "/api/v1/subscriptions/{chat_id}/extend": change(
            "extendSubscription", "Add N days to an existing subscription", "SubscriptionExtend"),
        "/api/v1/subscriptions/{chat_id}/revoke": change(
            "revokeSubscription", "End the subscription now and remove the user from the plan's chats",
            "SubscriptionRevoke"),
    }


SCHEMAS.update({
    "SubscriptionList": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "items": {"$ref": "#/components/schemas/Subscription"}}}},
    "SubscriptionGrant": {"type": "object", "additionalProperties": False, "description": "A plan or days, one of them.",
                          "oneOf": [{"required": ["plan"]}, {"required": ["days"]}],
                          "properties": {"plan": {"type": "string", "minLength": 1, "maxLength": 64},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 36500}}},
    "SubscriptionExtend": {"type": "object", "additionalProperties": False, "required": ["days"],
                           "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 36500}}},
    "SubscriptionRevoke": {"type": "object", "additionalProperties": False, "properties": {}},
})


SCHEMAS.update(SELLING_SCHEMAS)


def _schemas(plans) -> dict:
    schemas = json.loads(json.dumps(SCHEMAS))
    ids = [p for p in plans]
    if ids:  # the configured plans, so that generated requests name real ones
        schemas["PlanInvoice"]["properties"]["plan"]["enum"] = ids
        schemas["SubscriptionGrant"]["properties"]["plan"]["enum"] = ids
        with_plans(schemas, ids)
    return schemas


def openapi_document(public_url: str, plans=()) -> bytes:
    """The document as bytes; ``plans`` are the configured plan ids."""
    return json.dumps(_document(public_url, tuple(plans)), separators=(",", ":"), sort_keys=True).encode("utf-8")

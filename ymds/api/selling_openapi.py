"""The OpenAPI paths and schemas of the selling routes (issue 19, ymds.api.selling), merged
into the document by ymds.api.openapi."""

from __future__ import annotations

from typing import Any

_TIME_IN = {"type": "number", "minimum": 0, "maximum": 99999999999, "description": "Unix seconds"}
_TIME_OUT = {"type": ["string", "null"], "format": "date-time"}
_COUNT = {"type": "integer", "minimum": 1, "maximum": 1000000}
# a positive amount with at most two decimals (0.01 ... 9999999999.99)
_OFF = r"^(?:[1-9][0-9]{0,9}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?))$"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def selling_paths(error: Any, common: dict) -> dict:
    """The paths; ``error(description)`` makes an error response, ``common`` the shared ones."""
    write = {"400": error("Malformed JSON"), "413": error("Body over 16 KiB"), "415": error("Not application/json"),
             "422": error("A field is missing or wrong, an unknown plan, or the code exists"), **common}

    def body(schema: str) -> dict:
        return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}
    return {
        "/api/v1/promo-codes": {
            "get": {"operationId": "listPromoCodes", "summary": "Every promo code with its uses (scope promo:read)",
                    "responses": {"200": _answer("Promo codes", "PromoCodeList"), **common}},
            "post": {"operationId": "createPromoCode", "summary": "Create a promo code (scope promo:write)",
                     "requestBody": body("PromoCodeCreate"),
                     "responses": {"201": _answer("The promo code", "PromoCodeCreated"),
                                   "409": error("A promo code with this text exists already"), **write}}},
        "/api/v1/promo-codes/{code}/disable": {"post": {
            "operationId": "disablePromoCode",
            "summary": "Stop a promo code; pay links already made keep their price (scope promo:write)",
            "parameters": [{"name": "code", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"}}],
            "responses": {"200": _answer("Disabled", "PromoCodeDisabled"),
                          "404": error("No such promo code, or disabled already"), **common}}},
        "/api/v1/access-codes": {"post": {
            "operationId": "createAccessCodes",
            "summary": "Make gift or access codes users redeem with /redeem CODE (scope codes:write)",
            "requestBody": body("AccessCodesCreate"),
            "responses": {"201": _answer("The codes", "AccessCodes"), **write}}},
    }


SELLING_SCHEMAS: dict[str, Any] = {
    "PromoCode": {"type": "object", "properties": {
        "code": {"type": "string"}, "percent": {"type": ["integer", "null"]},
        "off": {"type": ["string", "null"], "description": "rubles off, e.g. \"50.00\""},
        "plans": {"type": "array", "items": {"type": "string"}, "description": "empty: every plan"},
        "uses": {"type": ["integer", "null"]}, "per_user": {"type": ["integer", "null"]},
        "used": {"type": "integer", "description": "discounted invoices made and not expired unpaid"},
        "starts_at": _TIME_OUT, "ends_at": _TIME_OUT, "first_only": {"type": "boolean"},
        "active": {"type": "boolean"}}},
    "PromoCodeList": {"type": "object", "required": ["data"], "properties": {
        "data": {"type": "array", "items": _ref("PromoCode")}}},
    "PromoCodeCreate": {
        "type": "object", "additionalProperties": False, "required": ["code"],
        "description": "Exactly one of percent and off.",
        "oneOf": [{"required": ["percent"]}, {"required": ["off"]}],
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
            "percent": {"type": "integer", "minimum": 1, "maximum": 100},
            "off": {"type": "string", "pattern": _OFF},
            "plans": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
            "uses": _COUNT, "per_user": _COUNT, "starts_at": _TIME_IN, "ends_at": _TIME_IN,
            "first_only": {"type": "boolean"}}},
    "PromoCodeCreated": {"type": "object", "properties": {
        "code": {"type": "string"}, "percent": {"type": ["integer", "null"]}, "off": {"type": ["string", "null"]},
        "plans": {"type": "array", "items": {"type": "string"}}}},
    "PromoCodeDisabled": {"type": "object", "properties": {"code": {"type": "string"}, "active": {"const": False}}},
    "AccessCodesCreate": {
        "type": "object", "additionalProperties": False, "description": "A plan or days, one of them or both.",
        "anyOf": [{"required": ["plan"]}, {"required": ["days"]}],
        "properties": {"plan": {"type": "string", "minLength": 1, "maxLength": 32},
                       "days": {"type": "integer", "minimum": 1, "maximum": 1000000},
                       "count": {"type": "integer", "minimum": 1, "maximum": 10000},
                       "uses": {"type": "integer", "minimum": 1, "maximum": 1000000},
                       "expires_at": _TIME_IN}},
    "AccessCodes": {"type": "object", "properties": {
        "codes": {"type": "array", "items": {"type": "string"}}, "plan": {"type": ["string", "null"]},
        "days": {"type": "integer"}, "uses": {"type": "integer"}, "expires_at": _TIME_OUT}},
}


def with_plans(schemas: dict, plans: list) -> None:
    """Name the configured plan ids in the request schemas (generated requests use real ones)."""
    schemas["PromoCodeCreate"]["properties"]["plans"]["items"]["enum"] = list(plans)
    schemas["AccessCodesCreate"]["properties"]["plan"]["enum"] = list(plans)


__all__ = ["SELLING_SCHEMAS", "selling_paths", "with_plans"]

"""The integration REST API (/api/v1): web-side resources and the billing-side tasks they call."""

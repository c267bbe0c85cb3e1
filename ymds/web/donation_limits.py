"""The key the public donation form is rate limited by (issue 14).

One IPv6 customer usually gets a whole /64 (often more), so limiting per IPv6 address lets
one visitor open invoices without bound by changing the low bits.  An IPv6 address is
therefore limited by its /64 network, an IPv4 address by itself (an IPv4-mapped IPv6
address counts as its IPv4 address).  The overall cap is billing's: ymds.billing.donation_cap.
"""

from __future__ import annotations

import ipaddress


def donation_bucket(address: str) -> str:
    """``"203.0.113.7"`` → itself; ``"2001:db8:1:2:aaaa::1"`` → ``"2001:db8:1:2::/64"``;
    anything that is not an IP address is returned as is."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


__all__ = ["donation_bucket"]

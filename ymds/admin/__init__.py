"""The owner's dashboard (issue 16): sign-in links, Redis sessions, pages, charts.

The web side only: every number and every action comes through the injected
:class:`ymds.admin.data.DashboardData`, so the web role never touches the ledger.
"""

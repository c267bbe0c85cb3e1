# Metadata lives in setup.cfg.  The package list is here because the twistd plugin
# directory twisted/plugins/ must stay a namespace (no __init__.py) and be listed by hand,
# as magic-wormhole-mailbox-server does.
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["ymds", "ymds.*"]) + ["twisted.plugins"],
    # (package_data given here replaces setup.cfg's, so all of it lives here)
    package_data={
        "twisted": ["plugins/ymds_plugin.py"],
        "ymds": ["web/templates/*", "web/static/*", "billing/schema/*.sql"],
    },
)

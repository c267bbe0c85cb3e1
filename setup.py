# Metadata lives in setup.cfg.  The package list is here because the twistd plugin
# directory twisted/plugins/ must stay a namespace (no __init__.py) and be listed by hand,
# as magic-wormhole-mailbox-server does.
#
# package_dir={"": "."} makes `pip install -e .` put the checkout on sys.path with a plain
# .pth file (setuptools does so for a simple "everything under one directory" layout)
# instead of its import-hook finder: Twisted finds plugins by scanning sys.path for
# twisted/plugins/ directories, which the finder never adds, so `twistd` did not list ymds.
from setuptools import find_packages, setup

setup(
    package_dir={"": "."},
    packages=find_packages(include=["ymds", "ymds.*"]) + ["twisted.plugins"],
    # (package_data given here replaces setup.cfg's, so all of it lives here)
    package_data={
        "twisted": ["plugins/ymds_plugin.py"],
        "ymds": ["web/templates/*", "web/static/*", "billing/schema/*.sql"],
    },
)

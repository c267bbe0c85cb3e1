"""The built wheel carries everything a non-editable install needs: the twistd plugin,
templates, static files and the schema migrations (the README's demo uses `pip install .`)."""
import os
import subprocess
import sys
import zipfile

from twisted.trial import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WheelTests(unittest.TestCase):
    def test_wheel_contents(self):
        out = os.path.abspath(self.mktemp())
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO],
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        [wheel] = [f for f in os.listdir(out) if f.endswith(".whl")]
        names = set(zipfile.ZipFile(os.path.join(out, wheel)).namelist())
        expected = {"twisted/plugins/ymds_plugin.py"}
        for folder in ("ymds/web/templates", "ymds/web/static", "ymds/billing/schema"):
            for name in os.listdir(os.path.join(REPO, folder)):
                if not name.endswith((".pyc",)) and not name.startswith("__"):
                    expected.add(f"{folder}/{name}")
        self.assertEqual(expected - names, set())
        self.assertNotIn("twisted/plugins/__init__.py", names)  # Twisted's namespace stays open
        self.assertFalse([n for n in names if n.startswith("tests/")])

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


def copy_checkout(destination: str) -> str:
    """The files a `pip install` of the checkout reads, copied so the install's build
    artefacts (ymds.egg-info, dropin.cache) never land in the shared working tree."""
    import shutil
    os.makedirs(destination, exist_ok=True)
    for name in ("ymds", "twisted", "setup.py", "setup.cfg", "pyproject.toml", "README.md"):
        source = os.path.join(REPO, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(destination, name),
                            ignore=shutil.ignore_patterns("__pycache__", "dropin.cache", "*.pyc"))
        elif os.path.exists(source):
            shutil.copy(source, destination)
    return destination


class EditableInstallTests(unittest.TestCase):
    """`pip install -e .` in its default (PEP 660, not editable_mode=compat) mode gives a
    twistd that lists ymds: Twisted finds plugins on sys.path, which setuptools' import-hook
    finder does not extend."""

    def test_editable_install_lists_the_twistd_plugin(self):
        import sysconfig
        work = os.path.abspath(self.mktemp())
        source = copy_checkout(os.path.join(work, "src"))
        # trial --jobs hands its workers PYTHONPATH = its own sys.path (the checkout under test):
        # the fresh venv must not inherit it, or the checkout is found instead of the copy.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        venv = os.path.join(work, "venv")
        subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120, env=env)
        python = os.path.join(venv, "bin", "python")
        site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True, env=env).stdout.strip()
        # The dependencies (Twisted, setuptools, wheel) come from this environment, with no
        # network; a plain path line does not run that environment's own .pth files, so our
        # own editable install there does not leak in.
        with open(os.path.join(site, "deps.pth"), "w") as f:
            f.write(sysconfig.get_paths()["purelib"] + "\n")
        result = subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                                 "--no-index", "-e", source], capture_output=True, text=True, timeout=300, cwd=work, env=env)
        self.assertEqual(result.returncode, 0, result.stdout[-2000:] + result.stderr[-2000:])
        twistd = ("import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd', '--help']; run()")
        result = subprocess.run([python, "-c", twistd], capture_output=True, text=True, timeout=120, cwd=work, env=env)
        self.assertIn("ymds", [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")],
                      result.stdout[-3000:] + result.stderr[-2000:])
        # The plugin found is the checkout's (edits take effect without reinstalling).
        where = subprocess.run([python, "-c", "import ymds; print(ymds.__file__)"], capture_output=True, text=True,
                               timeout=60, cwd=work, env=env)
        self.assertTrue(where.stdout.strip().startswith(source), where.stdout + where.stderr)

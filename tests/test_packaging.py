"""`pip install .` then `python -m bot` works without the Makefile: the wheel carries the
migrations, the catalogs (compiled at start) and the default persona."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_installed_package_migrates_and_speaks_every_language(tmp_path: Path) -> None:
    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # A copy of the checkout: setuptools writes build files into the tree it builds.
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "data", "build", "*.egg-info",
                                                                 "__pycache__", "*.mo"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, cwd=tmp_path, timeout=300)
    [wheel] = wheels.glob("frontdesk-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, cwd=tmp_path, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    migrate = subprocess.run([sys.executable, "-m", "bot", "migrate"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    assert migrate.stdout.strip().endswith("migrations applied")
    probe = ("import bot, services.persona as p; from bot.i18n import create_i18n; i = create_i18n('en'); "
             "print(bot.__file__); print(i.gettext('Help', locale='ru'), i.gettext('Help', locale='uz')); "
             "print(len(p.default_persona()) > 100)")
    checked = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0, checked.stderr
    installed_at, translations, persona = checked.stdout.split("\n")[:3]
    assert installed_at.startswith(str(target))
    assert translations == "Помощь Yordam"
    assert persona == "True"

"""`pip install .` then `python -m bot` works without the Makefile: the wheel carries the
migrations, the catalogs (compiled at start) and the default persona. The locks (requirements/,
`make lock`) hold what pyproject.toml declares, and running apart from testing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

RUNTIME_LOCK, DEV_LOCK = ROOT / "requirements" / "runtime.txt", ROOT / "requirements" / "dev.txt"


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


def _pins(lock: Path) -> dict[str, tuple[Version, int]]:
    """{package: (version, number of hashes)} for this interpreter (a lock may pin other versions elsewhere)."""
    pins: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.removesuffix("\\").strip())
            current = None
            if requirement.marker is None or requirement.marker.evaluate():
                [spec] = requirement.specifier
                assert spec.operator == "==", line
                current = canonicalize_name(requirement.name)
                pins[current] = (Version(spec.version), 0)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in declared]


def test_the_locks_pin_what_pyproject_declares_with_hashes_and_running_needs_no_test_tools() -> None:
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    for lock, pins, declared in ((RUNTIME_LOCK, runtime, _declared()), (DEV_LOCK, dev, _declared() + _declared("dev"))):
        for requirement in declared:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement} is not in {lock.name}: run `make lock`"
            assert requirement.specifier.contains(pins[name][0], prereleases=True), \
                f"{lock.name} pins {name}=={pins[name][0]}, outside {requirement}: run `make lock`"
        assert all(hashes for _, hashes in pins.values()), f"a pin without a hash in {lock.name}"
    # The tools that install the project are locked too: nothing unpinned is fetched to build it.
    assert {"pip", "setuptools"} <= runtime.keys()
    # Running installs no test or lint tool; testing runs on exactly the versions that run.
    assert not {"pytest", "playwright", "mypy", "ruff", "pip-audit", "uv", "fpdf2"} & runtime.keys()
    assert {name: dev[name] for name in runtime} == runtime
    # Past the releases with known vulnerabilities, in pyproject.toml's floors as in the locks.
    last_vulnerable = {"aiohttp": "3.14.3", "jinja2": "3.1.5", "cryptography": "49.0.0"}
    for requirement in _declared():
        if (name := canonicalize_name(requirement.name)) in last_vulnerable:
            assert not requirement.specifier.contains(last_vulnerable[name]), requirement
            assert runtime[name][0] > Version(last_vulnerable[name])


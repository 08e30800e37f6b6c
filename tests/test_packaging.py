"""`pip install .` then `python -m bot` works without the Makefile: the wheel carries the
migrations, the catalogs (compiled at start) and the default persona. The locks (requirements/,
`make lock`) hold what pyproject.toml declares, running apart from testing, and `make test` audits them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from aiohttp import web
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT, free_port

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


class FakeOSV:
    """An OSV API (the /v1/query of osv.dev) that knows one advisory, or none."""

    def __init__(self, advisory_for: str | None) -> None:
        self.advisory_for = advisory_for
        self.queried: list[str] = []

    async def query(self, request: web.Request) -> web.Response:
        package = (await request.json())["package"]["name"]
        self.queried.append(package)
        if package != self.advisory_for:
            return web.json_response({})
        return web.json_response({"vulns": [{
            "id": "GHSA-test-0000-0000", "aliases": ["CVE-2099-0001"], "summary": "a test advisory",
            "affected": [{"package": {"name": package, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "99.0"}]}]}],
        }]})


async def _audit(osv_url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "tests" / "audit_lock.py"), str(RUNTIME_LOCK), "--osv-url", osv_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT,
        env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
    output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_audit_fails_on_a_known_vulnerability_and_only_warns_when_the_service_is_unreachable() -> None:
    jinja2 = _pins(RUNTIME_LOCK)["jinja2"][0]
    for advisory_for in ("jinja2", None):
        osv = FakeOSV(advisory_for)
        app = web.Application()
        app.router.add_post("/v1/query", osv.query)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            status, output = await _audit(f"http://127.0.0.1:{port}/v1/query")
        finally:
            await runner.cleanup()
        assert set(osv.queried) == set(_pins(RUNTIME_LOCK))  # every locked package was asked about
        if advisory_for:
            assert status == 1, output
            [finding] = [line for line in output.splitlines() if line.strip().startswith(f"jinja2 {jinja2}: ")]
            for shown in ("GHSA-test-0000-0000", "CVE-2099-0001", "fixed in 99.0"):
                assert shown in finding
        else:
            assert status == 0, output
            assert "no known vulnerabilities" in output
            assert "WARNING" not in output
    # Nothing listens there any more: offline, the tests still run, and say the audit did not.
    status, output = await _audit(f"http://127.0.0.1:{port}/v1/query")
    assert status == 0, output
    assert "WARNING: dependency audit skipped" in output
    assert "could not be reached" in output

"""Known vulnerabilities in a lock file's pinned versions: pip-audit, with a verdict that tells an
advisory from an unreachable service.

    python tests/audit_lock.py requirements/dev.txt [--osv-url URL] [pip-audit options, e.g. --ignore-vuln ID]

Exits 1 when the vulnerability service names a known vulnerability in a pinned version, or when the
audit fails while the service answers. When the service cannot be reached, or answers for none of
the packages (a network that lets only the package index through), it warns and exits 0: the tests
must still run offline. pip-audit asks PyPI's vulnerability data by default, OSV with --osv-url.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

PYPI_PROBE = "https://pypi.org/pypi/pip/json"  # where pip-audit's default service lives
TIMEOUT = 15  # seconds for each request, pip-audit's own default


def unreachable(osv_url: str | None) -> str | None:
    """Why the vulnerability service gives no answers, or None when it answers."""
    if osv_url:
        query = json.dumps({"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "0"}).encode()
        request = urllib.request.Request(osv_url, data=query, headers={"Content-Type": "application/json"})
    else:
        request = urllib.request.Request(PYPI_PROBE)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError and timeouts are OSErrors
        return str(error) or type(error).__name__
    return None


def warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lock", type=Path, help="a requirements file with every pin hashed (make lock)")
    parser.add_argument("--osv-url", help="ask this OSV API instead of PyPI's vulnerability data")
    args, pip_audit_options = parser.parse_known_args()
    service = f"OSV at {args.osv_url}" if args.osv_url else "PyPI's vulnerability data"
    with tempfile.TemporaryDirectory() as work:
        report_path = Path(work) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "--requirement", str(args.lock), "--disable-pip",
                   "--progress-spinner", "off", "--timeout", str(TIMEOUT), "--format", "json",
                   "--output", str(report_path), *pip_audit_options]
        if args.osv_url:
            command += ["--vulnerability-service", "osv", "--osv-url", args.osv_url]
        # stdout is only pip-audit's summary line: the verdict below comes from the report.
        ran = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        report: dict[str, Any] | None = json.loads(report_path.read_text()) if report_path.exists() else None
    if report is None:  # pip-audit stopped before its report: the service, or something else?
        reason = unreachable(args.osv_url)
        if reason is not None:
            warn(f"dependency audit skipped: {service} could not be reached ({reason}); "
                 f"the versions in {args.lock} were not checked for known vulnerabilities")
            return 0
        print(ran.stderr[-4000:], file=sys.stderr)
        print(f"dependency audit failed (pip-audit exited {ran.returncode}) while {service} answers",
              file=sys.stderr)
        return 1
    dependencies: list[dict[str, Any]] = report["dependencies"]
    findings = [(dependency, vulnerability) for dependency in dependencies
                for vulnerability in dependency.get("vulns", [])]
    skipped = [dependency for dependency in dependencies if "skip_reason" in dependency]
    if findings:
        print(f"Known vulnerabilities in {args.lock} ({service}):", file=sys.stderr)
        for dependency, vulnerability in findings:
            fixed = ", ".join(vulnerability["fix_versions"]) or "no fixed release yet"
            aliases = ", ".join(vulnerability.get("aliases", []))
            print(f"  {dependency['name']} {dependency['version']}: {vulnerability['id']}"
                  f"{f' ({aliases})' if aliases else ''}; fixed in {fixed}", file=sys.stderr)
        print("Raise the floor in pyproject.toml or run `make lock-upgrade`; a finding without a fix can be "
              "passed over with --ignore-vuln ID in tests/run.sh, with a comment saying why.", file=sys.stderr)
        return 1
    if skipped and len(skipped) == len(dependencies):
        warn(f"dependency audit skipped: {service} had no answer for any of the {len(dependencies)} packages "
             f"in {args.lock} ({skipped[0]['skip_reason']}); they were not checked for known vulnerabilities")
        return 0
    if skipped:
        names = ", ".join(f"{dependency['name']}" for dependency in skipped)
        warn(f"{service} had no answer for {len(skipped)} of the packages in {args.lock}: {names}")
    print(f"Dependency audit: no known vulnerabilities in the {len(dependencies) - len(skipped)} packages "
          f"checked in {args.lock} ({service})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

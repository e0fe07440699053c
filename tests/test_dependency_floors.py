"""The dependency floors in pyproject.toml are real: the code runs with exactly those versions.

Installs every runtime and test dependency at its floor (`name==floor`) into a
folder put first on PYTHONPATH, so it shadows the newer versions installed
globally, then imports every module and runs a few fast test files with them.
llama-cpp-python is the exception: it is built from source for the C API the
code uses, so the globally built one is reused.

Cost: the first run downloads and installs about 60 MB of wheels (~45 s, cached
by pip and kept under the test cache by the set of floors); each run then takes
about a minute for the tests. Skipped when the package index cannot be reached.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.floors

NOT_INSTALLED = {"llama-cpp-python"}  # built locally (see above)
# Test-only packages that no floor test uses: the openai client (serve tests) and the
# extras llama-cpp-python's own server needs (remote-member tests); both run real models.
NOT_EXERCISED = {"openai", "starlette-context", "pydantic-settings", "PyYAML"}
# Fast test files that exercise each dependency: config (platformdirs), hub (huggingface-hub,
# filelock), gguf headers, the chat app (textual), templates (jinja2), async tests (pytest-asyncio).
FLOOR_TESTS = [
    "tests/test_config.py",
    "tests/test_gguf_info.py",
    "tests/test_hub_downloads.py",
    "tests/test_tui_views.py",
    "tests/test_template_sandbox.py::test_real_templates_render_exactly_as_plain_jinja",
    "tests/test_template_sandbox.py::test_a_hostile_template_fails_in_one_line_within_bounds",
]
OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable|ConnectTimeout"
    r"|ProxyError|Could not fetch URL|Name or service not known|Connection refused"
)


def floors() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = []
    for requirement in project["dependencies"] + project["optional-dependencies"]["test"]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)(,.*)?", requirement.replace(" ", ""))
        assert match, f"{requirement!r}: every dependency needs a '>=' floor"
        if match.group(1) not in NOT_INSTALLED | NOT_EXERCISED:
            pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


@pytest.fixture(scope="module")
def floor_site(tmp_path_factory) -> Path:
    pins = floors()
    key = hashlib.sha256(" ".join(pins + [sys.version]).encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "coolfusion-local-tests"
    site = base / f"floors-{key}"
    if (site / ".complete").exists():
        return site
    partial = tmp_path_factory.mktemp("floors")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
         "--target", str(partial), *pins],
        capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        if OFFLINE.search(result.stderr):
            pytest.skip("the package index cannot be reached")
        pytest.fail(f"installing the floors failed:\n{result.stderr[-2000:]}")
    (partial / ".complete").write_text(" ".join(pins))
    site.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(site, ignore_errors=True)
    shutil.move(str(partial), str(site))
    return site


def floor_env(site: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # Globally installed pytest plugins may not import under the floors: load only ours.
    env.update(PYTHONPATH=f"{site}{os.pathsep}{REPO}", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return env


IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
from importlib.metadata import version
import coolfusion_local
for module in pkgutil.walk_packages(coolfusion_local.__path__, "coolfusion_local."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
for pin in sys.argv[1:]:
    name, floor = pin.split("==")
    numbers = lambda text: [int(part) for part in text.split(".")] + [0] * (4 - text.count("."))
    assert numbers(version(name)) == numbers(floor), f"{name} {version(name)} shadows the floor {floor}"
print("ok")
"""


def test_every_module_imports_with_the_floors(floor_site):
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING, *floors()], cwd=REPO,
                            env=floor_env(floor_site), capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


def test_fast_tests_pass_with_the_floors(floor_site):
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin",
         "-m", "not models", *FLOOR_TESTS],
        cwd=REPO, env=floor_env(floor_site), capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

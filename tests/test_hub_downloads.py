"""Hugging Face downloads: the real huggingface_hub code against a stand-in Hub on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from coolfusion_local.config import ModelSpec
from coolfusion_local.errors import CoolfusionError
from coolfusion_local.models.hub import ModelState, model_status, resolve_model_path
from gguf_samples import write_tiny_gguf
from hub_standin import COMMIT, StandInHub, point_huggingface_hub_at

REPO_ID = "test-org/tiny-GGUF"


# --- Hugging Face, against the stand-in Hub -------------------------------------------------------

@pytest.fixture
def hub(tmp_path, monkeypatch, sealed_home):
    """huggingface_hub pointed at a stand-in on 127.0.0.1, with its cache under tmp_path."""
    from huggingface_hub import constants

    standin = StandInHub().start()
    point_huggingface_hub_at(standin, monkeypatch, sealed_home.hf_home)
    # Small chunks, so that a connection cut after a few KB leaves something to resume from.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)
    yield standin
    standin.stop()


@pytest.fixture
def tiny(tmp_path) -> bytes:
    return write_tiny_gguf(tmp_path / "served.gguf").read_bytes()


def _spec(**fields) -> ModelSpec:
    return ModelSpec(**{"name": "tiny", "repo": REPO_ID, "quant": "Q4_K_M", **fields})


def test_a_quant_is_downloaded_verified_and_then_found_offline(hub, tiny, sealed_home):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    hub.add_file(REPO_ID, "tiny-Q8_0.gguf", tiny + b"")
    seen = []
    path = resolve_model_path(_spec(), download=True, progress=lambda *event: seen.append(event))
    assert path.read_bytes() == tiny
    assert path.name == "tiny-Q4_K_M.gguf" and str(path).startswith(str(sealed_home.hf_home / "hub"))
    assert path.resolve().name == hashlib.sha256(tiny).hexdigest()
    assert ("downloading tiny-Q4_K_M.gguf", len(tiny), len(tiny)) in seen
    assert model_status(_spec()).state is ModelState.READY
    asked = len(hub.requests)
    assert resolve_model_path(_spec()) == path  # found in the cache: no request at all
    assert resolve_model_path(_spec(quant=None, file="tiny-Q4_K_M.gguf")) == path
    assert len(hub.requests) == asked


def test_nothing_touches_the_network_unless_a_download_is_asked_for(hub, tiny):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    assert model_status(_spec()).state is ModelState.NOT_DOWNLOADED
    with pytest.raises(CoolfusionError) as caught:
        resolve_model_path(_spec())
    assert str(caught.value) == (
        f"model 'tiny' ({REPO_ID}, quant Q4_K_M) is not downloaded yet: run `coolfusion models pull tiny`")
    assert hub.requests == []


def test_a_cut_download_resumes_where_it_stopped(hub, tiny):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny, cut_first_download_at=5000)
    path = resolve_model_path(_spec(), download=True)
    assert path.read_bytes() == tiny
    ranges = hub.downloads_of("tiny-Q4_K_M.gguf")
    assert ranges[0] is None and len(ranges) == 2
    assert ranges[1] == "bytes=4096-"  # the 4 whole 1 KB chunks that arrived are kept


def test_a_download_that_does_not_match_the_listing_is_removed(hub, tiny):
    corrupt = tiny[:-10] + b"x" * 10
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", corrupt, listed_data=tiny)
    with pytest.raises(CoolfusionError) as caught:
        resolve_model_path(_spec(), download=True)
    message = str(caught.value)
    assert "tiny-Q4_K_M.gguf from test-org/tiny-GGUF does not match the Hub's listing (sha256 " in message
    assert message.endswith("removed it, run `coolfusion models pull tiny` to try again")
    assert model_status(_spec()).state is ModelState.NOT_DOWNLOADED
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)  # the Hub is fixed; pulling again works
    assert resolve_model_path(_spec(), download=True).read_bytes() == tiny


def test_a_download_that_is_not_gguf_is_removed(hub):
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>" * 20
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", page)
    with pytest.raises(CoolfusionError, match=r"the download is unusable: .* is not a GGUF file .*an HTML page.*"
                                               r"removed it, run `coolfusion models pull tiny` to try again"):
        resolve_model_path(_spec(), download=True)
    assert model_status(_spec()).state is ModelState.NOT_DOWNLOADED


def test_a_cached_file_damaged_later_is_caught(hub, tiny):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    path = resolve_model_path(_spec(), download=True)
    blob = path.resolve()
    blob.write_bytes(tiny[:-1] + b"\x01")
    os.utime(blob, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    assert model_status(_spec()).state is ModelState.UNVERIFIED
    with pytest.raises(CoolfusionError, match=r"the cached file .* is damaged \(sha256 .*run `coolfusion models pull tiny`"):
        resolve_model_path(_spec())


def test_split_models_download_every_part(hub, tmp_path):
    first = write_tiny_gguf(tmp_path / "a.gguf", name="part one").read_bytes()
    second = write_tiny_gguf(tmp_path / "b.gguf", name="part two").read_bytes()
    hub.add_file(REPO_ID, "big-Q8_0-00001-of-00002.gguf", first)
    hub.add_file(REPO_ID, "big-Q8_0-00002-of-00002.gguf", second)
    path = resolve_model_path(_spec(quant="Q8_0"), download=True)
    assert path.name == "big-Q8_0-00001-of-00002.gguf"
    second_path = path.with_name("big-Q8_0-00002-of-00002.gguf")
    assert second_path.read_bytes() == second
    assert resolve_model_path(_spec(quant="Q8_0")) == path
    second_path.resolve().write_bytes(second[:-1] + b"\x01")  # the second part goes bad later
    os.utime(second_path.resolve(), ns=(time.time_ns(), time.time_ns() + 10_000_000))
    with pytest.raises(CoolfusionError, match=r"big-Q8_0-00002-of-00002.gguf is damaged"):
        resolve_model_path(_spec(quant="Q8_0"))


def test_a_pinned_revision_is_used(hub, tiny):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    path = resolve_model_path(_spec(revision=COMMIT), download=True)
    assert path.parent.name == COMMIT
    with pytest.raises(CoolfusionError, match=r"the repo has no revision 'v9'; check revision in models.toml"):
        resolve_model_path(_spec(revision="v9"), download=True)


@pytest.mark.parametrize(
    "spec_fields, expected",
    [
        ({"repo": "test-org/missing"}, "no such repo on http://127.0.0.1:"),
        ({"quant": None, "file": "nope.gguf"}, "the repo has no file 'nope.gguf'; it has: tiny-Q4_K_M.gguf"),
        ({"quant": "Q2_K"}, "quant 'Q2_K' matches no file; the repo has: tiny-Q4_K_M.gguf"),
    ],
    ids=["repo", "file", "quant"],
)
def test_hub_mistakes_are_one_line(hub, tiny, spec_fields, expected):
    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    with pytest.raises(CoolfusionError) as caught:
        resolve_model_path(_spec(**spec_fields), download=True)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_offline_mode_is_honoured(hub, tiny, monkeypatch):
    from huggingface_hub import constants

    hub.add_file(REPO_ID, "tiny-Q4_K_M.gguf", tiny)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CoolfusionError) as caught:
        resolve_model_path(_spec(), download=True)
    assert str(caught.value) == (f"model 'tiny' ({REPO_ID}) is not downloaded and HF_HUB_OFFLINE=1 is set: "
                                 "unset HF_HUB_OFFLINE and run `coolfusion models pull tiny` again")
    assert hub.requests == []


def test_an_unreachable_hub_fails_fast_with_one_line(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    started = time.perf_counter()
    with pytest.raises(CoolfusionError) as caught:
        resolve_model_path(_spec(), download=True)
    assert time.perf_counter() - started < 5
    assert "cannot download from http://127.0.0.1:9" in str(caught.value)
    assert str(caught.value).endswith("check the connection and run `coolfusion models pull tiny` again")

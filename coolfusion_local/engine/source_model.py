"""One source model: a GGUF file in llama.cpp, with an explicit KV-cache state.

A thin wrapper over llama.cpp's C API (through llama-cpp-python's bindings),
written for Cool-Fusion's access pattern rather than for plain completion:

* Sequence 0 of the KV cache holds the shared text (prompt + the answer agreed
  so far), followed by this model's own look-ahead ("pending" tokens,
  kept because if its proposal wins they are exactly what it would generate
  next). Past the look-ahead a proposal has seen may come more of the
  model's own greedy path, worked out ahead of time ("hidden" look-ahead:
  decoded by a drafter, or checked in one batch against a draft, see
  `drafting.py`); `step` hands those tokens out one by one without decoding,
  so every round reads exactly the tokens it would have decoded itself.
* Candidates are scored in one batched decode: each candidate gets its own
  sequence id that shares the prefix cells of sequence 0 (`seq_cp` only tags
  cells in a unified KV cache), and logits are requested only for the rows
  that score something. No `logits_all`, no re-evaluation of the prefix.
* Committing the winning segment reuses the cells computed while scoring it,
  so a model whose candidate lost pays nothing extra to catch up.

The text <-> token half (tokenising, pieces, end-of-turn tokens) lives in
`vocabulary.py`; this module is the context and KV-cache half.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import llama_cpp
import numpy as np

from ..errors import CoolfusionError
from ..runtime import exact_batch_cache
from ..runtime.devices import offloaded_layers
from ..runtime.extra_buffers import check_loadable, decide
from . import llama_log
from .device_probes import probe_in_child, time_decodes_in_child
from .guard import top_two_margin
from .members import ContextFull, Scored, Step
from .shared_text import SharedText
from .vocabulary import Vocabulary

from .sampling import Sampling
from .token_sampler import TokenSampler

SCORING_SEQUENCES = 8  # candidates scored in one batch (sequence ids 1..8)
MAX_OUTPUTS_PER_DECODE = 64  # bounds the logits buffer: 64 rows x vocab floats
EXACT_BATCH_PROBED = exact_batch_cache.PROBED_UP_TO  # the largest batch exact_batch_size() tries


def _logsumexp(values: np.ndarray) -> float:
    peak = float(values.max())
    return peak + float(np.log(np.exp(values - peak).sum()))


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    # Beyond 4 logical cores assume SMT: llama.cpp runs best on physical cores.
    return cores if cores <= 4 else max(1, cores // 2)


class SourceModel(SharedText):
    """A loaded GGUF model with its own llama.cpp context and KV cache (an engine/members.py `DraftingModel`)."""

    is_local = True
    can_draft = True

    def __init__(
        self,
        name: str,
        path: Path | str,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        n_batch: int = 512,
        vocab_only: bool = False,
        cpu_extra_buffers: bool | None = None,
        progress: Callable[[float], None] | None = None,
    ):
        self.name = name
        self.path = Path(path)
        self.vocab_only = vocab_only
        llama_log.install()
        llama_log.take_recent_problems()
        self._model = None
        self._ctx = None
        self._batch = None

        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = n_gpu_layers
        model_params.vocab_only = vocab_only
        # Read the weights into llama.cpp's own buffers rather than mapping the
        # file. With a mapping, tensors llama.cpp repacks for the CPU's SIMD
        # kernels (most of a Q4_K model on AVX2) stay resident twice, as file
        # pages and as the repacked copy: 2.2 GB for a 1.2 GB pair of models.
        model_params.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
        # llama.cpp's AMX kernels crash some CPUs (runtime/extra_buffers.py): None asks
        # the per-machine decision, which probes a CPU with AMX in a child process first.
        if cpu_extra_buffers is None and not vocab_only:
            decision = decide(probe_model=self.path)
            check_loadable(decision)
            cpu_extra_buffers = decision.enabled
        self.cpu_extra_buffers = bool(cpu_extra_buffers) if not vocab_only else False
        model_params.use_extra_bufts = self.cpu_extra_buffers

        interrupted = threading.Event()  # Ctrl-C while llama.cpp works (see llama_log.interrupts_held)

        # Always set a callback: without one llama.cpp prints dots to stderr.
        def on_progress(fraction: float, user_data: ctypes.c_void_p) -> bool:
            if interrupted.is_set():
                return False  # llama.cpp cancels the load
            if progress is not None:
                progress(float(fraction))
            return True

        # Keep a reference: ctypes frees callbacks that Python forgets.
        self._progress_callback = llama_cpp.llama_progress_callback(on_progress)
        model_params.progress_callback = self._progress_callback
        started = time.perf_counter()
        with llama_log.interrupts_held(interrupted, on_interrupt=self.close):
            self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), model_params)
        if not self._model:
            reason = llama_log.load_failure_reason(llama_log.take_recent_problems())
            raise CoolfusionError(f"model {name!r}: cannot load {self.path}: {reason}")
        Vocabulary.__init__(self, llama_cpp.llama_model_get_vocab(self._model))
        self.n_layers = llama_cpp.llama_model_n_layer(self._model)
        self.n_params = llama_cpp.llama_model_n_params(self._model)  # as gguf_info counts them
        # Of n_layers + 1 (the output layer counts, as in llama.cpp's "offloaded 25/25 layers"), and onto what.
        self.n_gpu_layers, self.device = offloaded_layers(n_gpu_layers, self.n_layers) if not vocab_only else (0, None)
        self.n_ctx = 0
        self.n_batch = n_batch
        if not vocab_only:
            if llama_cpp.llama_model_is_recurrent(self._model) or llama_cpp.llama_model_is_hybrid(self._model):
                self.close()
                raise CoolfusionError(
                    f"model {name!r}: recurrent/hybrid architectures cannot roll back their state "
                    "segment by segment; pick a transformer model"
                )
            threads = n_threads or default_threads()
            ctx_params = llama_cpp.llama_context_default_params()
            ctx_params.n_ctx = n_ctx
            ctx_params.n_batch = n_batch
            # llama.cpp reserves its compute buffer for a whole micro-batch of
            # outputs (n_ubatch x vocabulary floats: 300 MB for Qwen at 512);
            # we never ask for more than MAX_OUTPUTS_PER_DECODE rows at once.
            ctx_params.n_ubatch = min(n_batch, MAX_OUTPUTS_PER_DECODE)
            ctx_params.n_seq_max = SCORING_SEQUENCES + 1
            # One cache shared by all sequences, so candidate sequences reuse
            # the prefix cells of sequence 0 instead of each getting 1/9 of it.
            ctx_params.kv_unified = True
            # Sliding-window layers must keep every cell: we roll back often.
            ctx_params.swa_full = True
            ctx_params.n_threads = threads
            ctx_params.n_threads_batch = threads
            ctx_params.no_perf = True
            with llama_log.interrupts_held(interrupted, on_interrupt=self.close):
                self._ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
            if not self._ctx:
                problems = llama_log.take_recent_problems()
                reason = problems[-1] if problems else "not enough memory for the context?"
                self.close()
                raise CoolfusionError(f"model {name!r}: cannot create a context of {n_ctx} tokens: {reason}")
            self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
            # llama.cpp caps a decode at min(n_ctx, n_batch) tokens and aborts the process past it.
            self.n_batch = llama_cpp.llama_n_batch(self._ctx)
            self._memory = llama_cpp.llama_get_memory(self._ctx)
            self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
            self.n_threads = threads
        self.load_seconds = time.perf_counter() - started

        # KV state of sequence 0 (see the module docstring).
        self._clear_shared_text()
        self._pending_rows: list[np.ndarray] = []  # the row that predicted each pending token
        self._row: np.ndarray | None = None  # the row after the last cached token
        # (row, margin) of each token a sampler chose from a row still held: how sure the draw
        # was of it (token_sampler.py), which the guard judges instead of the raw row's margin.
        self._sampled_margins: list[tuple[np.ndarray, float]] = []
        self._scoring_in_use = False
        self._visible = 0  # pending tokens a proposal has seen; the rest is hidden look-ahead
        self._exact_batch: int | None = None  # see exact_batch_size()
        self.exact_batch_probe_seconds = 0.0  # spent measuring it in this process (0: read from the cache)
        self.exact_batch_note: str | None = None  # why the probe gave no size (engine/device_probes.py)
        self.decoded_tokens = 0  # every token this model ran through llama_decode
        self.hidden_read = 0  # look-ahead tokens a step took ready-made (drafted or checked) instead of decoding
        self.decode_calls = 0  # llama_decode calls (a batch counts once)
        # Measured cost of one single-token decode, to pick the cheapest drafter.
        self._single_decode_seconds = 0.0
        self._single_decodes = 0

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - safety net for forgotten closes
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ metadata

    def chat_template(self) -> str | None:
        template = llama_cpp.llama_model_chat_template(self._model, None)
        return template.decode("utf-8", errors="replace") if template else None

    # ------------------------------------------------------------------ decoding

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> list[int]:
        """Run one llama_decode over (token, position, sequence, want_logits) entries.

        Returns the batch indices whose logits were requested.
        """
        batch = self._batch
        for index, (token, position, sequence, want) in enumerate(entries):
            if position >= self.n_ctx:
                raise ContextFull(f"model {self.name!r}: its context of {self.n_ctx} tokens is full")
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = sequence
            batch.logits[index] = want
        batch.n_tokens = len(entries)
        status = llama_cpp.llama_decode(self._ctx, batch)
        if status == 1:
            raise ContextFull(f"model {self.name!r}: its context of {self.n_ctx} tokens is full")
        if status != 0:
            raise CoolfusionError(f"model {self.name!r}: llama_decode failed with status {status}")
        self.decoded_tokens += len(entries)
        self.decode_calls += 1
        return [i for i, entry in enumerate(entries) if entry[3]]

    def _row_at(self, batch_index: int) -> np.ndarray:
        pointer = llama_cpp.llama_get_logits_ith(self._ctx, batch_index)
        return np.ctypeslib.as_array(pointer, shape=(self.vocab_size,))

    def _remove(self, sequence: int, start: int) -> None:
        if not llama_cpp.llama_memory_seq_rm(self._memory, sequence, start, -1):
            raise CoolfusionError(f"model {self.name!r}: llama.cpp refused to roll back its cache")

    def _extend_sequence0(self, tokens: list[int]) -> None:
        """Decode `tokens` after the cache of sequence 0; keep the last row."""
        position = len(self._cache)
        extended = False
        try:
            for chunk_start in range(0, len(tokens), self.n_batch):
                chunk = tokens[chunk_start : chunk_start + self.n_batch]
                last = chunk_start + len(chunk) == len(tokens)
                entries = [
                    (token, position + chunk_start + i, 0, last and i == len(chunk) - 1)
                    for i, token in enumerate(chunk)
                ]
                wanted = self._decode(entries)
                if wanted:
                    self._row = self._row_at(wanted[-1]).copy()
            extended = True
        finally:
            if not extended:  # a later chunk failed: drop the earlier chunks' cells (see check_draft)
                self._remove(0, position)
        self._cache.extend(tokens)

    def _truncate_sequence0(self, keep: int) -> None:
        if keep < len(self._cache):
            self._remove(0, keep)
            del self._cache[keep:]

    # ------------------------------------------------------------------ the shared state

    def start_answer(self, prompt_tokens: list[int]) -> int:
        """Make sequence 0 hold exactly `prompt_tokens`; returns how many were evaluated.

        Reuses the longest cached prefix (earlier turns of the conversation).
        """
        self._release_scoring()
        if len(prompt_tokens) >= self.n_ctx:
            raise ContextFull(
                f"model {self.name!r}: the prompt takes {len(prompt_tokens)} tokens, "
                f"its context holds {self.n_ctx}"
            )
        common = 0
        limit = min(len(self._cache), len(prompt_tokens))
        while common < limit and self._cache[common] == prompt_tokens[common]:
            common += 1
        # Re-evaluate at least the last prompt token: its row predicts the answer.
        common = min(common, len(prompt_tokens) - 1)
        self._truncate_sequence0(common)
        self._extend_sequence0(prompt_tokens[common:])
        self._committed = self._answer_start = len(prompt_tokens)
        self._pending_nll, self._pending_rows = [], []
        self._visible = 0
        return len(prompt_tokens) - common

    def forget(self) -> None:
        """Empty the KV cache, as after loading: the next answer evaluates its prompt in full.

        Answers then do not depend on what ran before them (cached prefixes
        evaluated in other batch splits give slightly different numbers).
        """
        llama_cpp.llama_memory_clear(self._memory, True)
        self._scoring_in_use = False
        self._clear_shared_text()
        self._pending_rows = []
        self._visible = 0
        self._row = None

    def sampler(self, sampling: Sampling) -> TokenSampler:
        """llama.cpp's sampler chain over this model's logits rows, for one answer."""
        return TokenSampler(sampling, self.vocab_size)

    @property
    def pending(self) -> list[Step]:
        """Proposed tokens already past the shared text (the hidden look-ahead left out)."""
        tokens = self._cache[self._committed : self._committed + self._visible]
        return [Step(t, n, False) for t, n in zip(tokens, self._pending_nll)]

    @property
    def hidden(self) -> list[int]:
        """The model's own greedy tokens past what proposals have seen, already in the cache."""
        return self._cache[self._committed + self._visible :]

    @property
    def look_ahead(self) -> list[int]:
        """Every token past the shared text: seen by proposals, then hidden."""
        return self._cache[self._committed :]

    @property
    def seconds_per_decode(self) -> float | None:
        """Measured seconds of one single-token decode; None until a few were timed."""
        if self._single_decodes < 4:
            return None
        return self._single_decode_seconds / self._single_decodes

    def _decode_one(self, token: int) -> None:
        started = time.perf_counter()
        self._extend_sequence0([token])
        self._single_decode_seconds += time.perf_counter() - started
        self._single_decodes += 1

    def drop_hidden(self) -> None:
        """Forget the hidden look-ahead (its cells too): the model is then where it would be without drafts."""
        keep = self._committed + self._visible
        self._truncate_sequence0(keep)
        if self._visible < len(self._pending_rows):
            self._row = self._pending_rows[self._visible]
        del self._pending_rows[self._visible :], self._pending_nll[self._visible :]

    def step(self, sampler: TokenSampler | None = None) -> Step:
        """Extend the look-ahead by one token (an end token is not decoded).

        Greedy without a sampler; with one, llama.cpp's sampler chain picks the
        token. Its NLL is always the plain one, whatever picked it. Greedy
        takes the next hidden token when there is one: it is this model's
        argmax there, so the result is the same, with no decode.
        """
        if len(self._cache) > self._committed + self._visible:
            if sampler is None:
                index = self._visible
                self._visible += 1
                self.hidden_read += 1
                return Step(self._cache[self._committed + index], self._pending_nll[index], False)
            self.drop_hidden()  # sampling never drafts; never read a greedy path as a sample
        row = self._row
        if sampler is None:
            token = int(row.argmax())
        else:
            token = sampler.pick(row, self._cache[self._answer_start :])
            self._note_sampled_margin(row, sampler.last_margin)
        nll = _logsumexp(row) - float(row[token])
        if self.is_end(token):
            return Step(token, nll, True)
        self._extend_look_ahead(row, token, nll)
        self._visible += 1
        return Step(token, nll, False)

    def _note_sampled_margin(self, row: np.ndarray, margin: float | None) -> None:
        held = [*self._pending_rows, self._row]
        self._sampled_margins = [(r, m) for r, m in self._sampled_margins if any(r is h for h in held)]
        if margin is not None:
            self._sampled_margins.append((row, margin))

    def _extend_look_ahead(self, row: np.ndarray, token: int, nll: float) -> None:
        """Decode `token`, which `row` predicted, past the look-ahead."""
        self._pending_rows.append(row)
        self._pending_nll.append(nll)
        self._decode_one(token)

    def next_greedy_token(self) -> int:
        """This model's greedy token after all of its look-ahead (known without decoding)."""
        return int(self._row.argmax())

    def draft(self, enough: Callable[[bytes], bool], limit: int) -> bool:
        """Extend the hidden look-ahead greedily until `enough(text of all look-ahead)` or
        `limit` look-ahead tokens; returns False when the model ends its turn first."""
        text = self.detokenize(self.look_ahead)
        while not enough(text) and len(self._cache) - self._committed < limit:
            row = self._row
            token = int(row.argmax())
            if self.is_end(token):
                return False
            self._extend_look_ahead(row, token, _logsumexp(row) - float(row[token]))
            text += self.piece(token)
        return True

    def exact_batch_size(self) -> int:
        """The most tokens one decode may take and still give the rows one-token decodes give, bit for bit.

        llama.cpp picks its matrix kernels by batch size: on a CPU with
        repacked quantised weights, a decode of 4 or more tokens takes another
        kernel whose logits differ from one-token decodes by up to ~0.4
        (llama.cpp #27407), enough to flip a near-tie between two tokens.
        Measured on a spare sequence, the same tokens decoded one by one, then
        in batches of 2..8, once per model and machine: the cache folder keeps
        it (runtime/exact_batch_cache.py).
        """
        if self._exact_batch is None:
            key = exact_batch_cache.model_key(
                self.path, extra_buffers=self.cpu_extra_buffers, threads=self.n_threads,
                gpu_layers=self.n_gpu_layers, ubatch=min(self.n_batch, MAX_OUTPUTS_PER_DECODE),
                largest=EXACT_BATCH_PROBED, **({"device": self.device} if self.device else {}))
            self._exact_batch = exact_batch_cache.recall(key, largest=EXACT_BATCH_PROBED)
            if self._exact_batch is None:
                started = time.perf_counter()
                measured, keep = self._measure_exact_batch()
                self.exact_batch_probe_seconds = time.perf_counter() - started
                self._exact_batch = measured or 1
                if measured and keep:
                    exact_batch_cache.remember(key, measured, self.name)
        return self._exact_batch

    def _measure_exact_batch(self) -> tuple[int | None, bool]:
        """The probe's size and whether it may be kept: in this process on the CPU, in a
        child process where layers live on a GPU device (engine/device_probes.py)."""
        if not self.n_gpu_layers:
            return self._probe_exact_batch(), True
        verdict = probe_in_child(self)
        if verdict.note:
            self.exact_batch_note = verdict.note
            logging.getLogger("coolfusion.drafting").warning(verdict.note)
        return verdict.size, verdict.keep

    def _probe_exact_batch(self, largest: int = EXACT_BATCH_PROBED) -> int | None:
        """None where the context is too small to probe (1 is then the safe size)."""
        sequence = SCORING_SEQUENCES  # free outside scoring
        self._release_scoring()
        tokens = self.tokenize(b"The quick brown fox jumps over the lazy dog. 12 + 30 = 42")[: largest + 2]
        if len(tokens) < largest + 2 or len(tokens) + 1 >= self.n_ctx:
            return None
        bos = [self.bos_token] if self.add_bos else []
        tokens = (bos + tokens)[: largest + 2]
        one_by_one = []
        for position, token in enumerate(tokens):
            self._decode([(token, position, sequence, True)])
            one_by_one.append(self._row_at(0).copy())
        exact = 1
        for size in range(2, largest + 1):
            self._remove(sequence, 1)
            self._decode([(token, 1 + i, sequence, True) for i, token in enumerate(tokens[1 : 1 + size])])
            if not all(np.array_equal(self._row_at(i), one_by_one[1 + i]) for i in range(size)):
                break
            exact = size
        self._remove(sequence, 0)
        return exact

    @property
    def largest_decode(self) -> int:
        """The most tokens one decode may take with a logits row for each."""
        return min(MAX_OUTPUTS_PER_DECODE, self.n_batch)

    def measure_decode_times(self, sizes: Sequence[int], repeats: int) -> dict[int, list[float]]:
        """`time_decodes` of each size after one warm-up decode of the largest (the first decode of a
        size allocates): in this process on the CPU, in a child process where layers live on a GPU
        device, where llama.cpp has crashed doing this (engine/device_probes.py: DeviceProbeFailed)."""
        if self.n_gpu_layers:
            return time_decodes_in_child(self, sizes, repeats)
        return self._decode_times_here(sizes, repeats)

    def _decode_times_here(self, sizes: Sequence[int], repeats: int) -> dict[int, list[float]]:
        self.time_decodes(max(sizes), 1)
        return {size: self.time_decodes(size, repeats) for size in sizes}

    def time_decodes(self, size: int, repeats: int, context: int = 32) -> list[float]:
        """Seconds of `repeats` decodes of `size` tokens with a logits row for each (what a draft
        check costs), after `context` tokens, on the spare sequence: the answer's cache is untouched."""
        if not 1 <= size <= self.largest_decode:
            raise ValueError(f"a decode takes 1 to {self.largest_decode} tokens with a row each, not {size}")
        sequence = SCORING_SEQUENCES  # free outside scoring
        self._release_scoring()
        text = b"The quick brown fox jumps over the lazy dog. 12 + 30 = 42. "
        tokens = self.tokenize(text * (1 + (context + size) // 8))[: context + size]
        if len(tokens) < context + size or context + size + 1 >= self.n_ctx:
            raise CoolfusionError(f"model {self.name!r}: its context is too small to time a decode of {size}")
        self._remove(sequence, 0)
        for start in range(0, context, self.n_batch):
            chunk = tokens[start : min(context, start + self.n_batch)]
            self._decode([(t, start + i, sequence, False) for i, t in enumerate(chunk)])
        timings = []
        for _ in range(repeats):
            started = time.perf_counter()
            self._decode([(t, context + i, sequence, True) for i, t in enumerate(tokens[context:])])
            timings.append(time.perf_counter() - started)
            self._remove(sequence, context)
        self._remove(sequence, 0)
        return timings

    def check_draft(self, guess: list[int], chunk: int = MAX_OUTPUTS_PER_DECODE) -> int:
        """Decode `guess` after the look-ahead in one batch; keep the longest prefix
        that is this model's own greedy path, as hidden look-ahead; returns its length.

        Row i of the batch predicts guess token i + 1, and the row before the
        first token is already at hand, so a guess that is wrong from its first
        token costs nothing. Cells past the kept prefix are rolled back.
        `chunk`: at most that many tokens per decode (`exact_batch_size`
        keeps the numbers of one-token decodes).
        """
        if not guess or self.is_end(guess[0]) or self.next_greedy_token() != guess[0]:
            return 0
        if len(self._cache) + len(guess) >= self.n_ctx:
            return 0
        position = len(self._cache)
        rows_per_decode = max(1, min(chunk, self.largest_decode))
        kept_rows: list[np.ndarray] = [self._row]  # kept_rows[i] predicts guess[i]
        kept = 0
        checked = False
        try:
            for chunk_start in range(0, len(guess), rows_per_decode):
                chunk = guess[chunk_start : chunk_start + rows_per_decode]
                self._decode([(token, position + chunk_start + i, 0, True) for i, token in enumerate(chunk)])
                agreed = True
                for i in range(len(chunk)):
                    kept += 1  # guess[chunk_start + i] was the argmax of the row before it
                    row = self._row_at(i).copy()
                    kept_rows.append(row)
                    following = chunk_start + i + 1
                    if following < len(guess) and (self.is_end(guess[following]) or int(row.argmax()) != guess[following]):
                        agreed = False
                        break
                if not agreed:
                    break
            checked = True
        finally:
            if not checked:
                # A decode failed in a later chunk (the cache full): the earlier chunks' cells
                # must go, or sequence 0 holds positions its token list does not, and every
                # later decode fails ("inconsistent sequence positions").
                self._remove(0, len(self._cache))
        for token, row in zip(guess[:kept], kept_rows):
            self._pending_rows.append(row)
            self._pending_nll.append(_logsumexp(row) - float(row[token]))
        self._cache.extend(guess[:kept])
        self._row = kept_rows[kept]
        self._remove(0, len(self._cache))  # roll back the cells of the rejected tail
        return kept

    @property
    def _committed_row(self) -> np.ndarray:
        """The row predicting the first token after the shared text."""
        return self._pending_rows[0] if self._pending_rows else self._row

    def top_margin(self, index: int, sampler: "TokenSampler | None" = None) -> float:
        """How sure the model was where look-ahead token `index` was chosen (index = the number
        of proposed tokens: the row after them). From rows already decoded: no decode.

        Greedy: p(top-1) − p(top-2) of the row. Where `sampler` drew the token: its
        probability minus the likeliest other's in the distribution drawn from
        (negative when it was not the likeliest); on the row after the proposal,
        where nothing was drawn, p(top-1) − p(top-2) of that distribution.
        """
        rows = self._pending_rows
        row = rows[index] if index < len(rows) else self._row
        for picked, margin in reversed(self._sampled_margins):
            if picked is row:
                return margin
        if sampler is not None and index >= len(rows):
            return sampler.margin_after(row, self._cache[self._answer_start :])
        return top_two_margin(row)

    def next_token_nll(self, token: int) -> float:
        """-log P(token | the shared text), from the row already computed: no decode."""
        row = self._committed_row
        return _logsumexp(row) - float(row[token])

    def end_nll(self) -> float:
        """-log P(the turn ends here | pending look-ahead), over all end tokens."""
        if self._visible < len(self._pending_rows):  # hidden tokens follow: the row after the last seen one
            return self._end_nll(self._pending_rows[self._visible])
        return self._end_nll(self._row)

    def _end_nll(self, row: np.ndarray) -> float:
        if len(self._eog) == 0:
            return float("inf")
        return _logsumexp(row) - _logsumexp(row[self._eog])

    def score(self, requests: list[tuple[int, list[int], bool]]) -> list[Scored]:
        """Score candidates in one batch: per request (start, tokens, ends_answer).

        Each request gets sequence i+1, sharing the cells of sequence 0 before
        `start`. Only rows that predict something are computed: a candidate
        that starts right after the shared text takes its first token's
        probability from the row already computed there, and its last token is
        decoded only when its row is needed (to score the end of the answer);
        otherwise that is left to `commit`, if the candidate wins. A candidate
        that starts earlier (the join re-tokenised differently) decodes the
        token at `start - 1` again on its sequence to get that row.
        """
        if len(requests) > SCORING_SEQUENCES:
            raise ValueError(f"at most {SCORING_SEQUENCES} candidates per batch")
        self._release_scoring()
        self._scoring_in_use = True
        committed_row = self._committed_row
        entries: list[tuple[int, int, int, bool]] = []
        targets: list[tuple[int, int | None]] = []  # per entry: (request, token its row predicts)
        nll_sums = [0.0] * len(requests)
        last_rows: list[np.ndarray | None] = [None] * len(requests)
        decoded = [0] * len(requests)
        for index, (start, tokens, ends) in enumerate(requests):
            sequence = index + 1
            if not 0 < start <= self._committed:
                raise ValueError("a candidate must start inside the shared text")
            if start == self._committed:
                llama_cpp.llama_memory_seq_cp(self._memory, 0, sequence, 0, start)
                if not tokens:
                    last_rows[index] = committed_row
                    continue
                nll_sums[index] += _logsumexp(committed_row) - float(committed_row[tokens[0]])
                row_tokens, first_position = tokens, start
            else:
                llama_cpp.llama_memory_seq_cp(self._memory, 0, sequence, 0, start - 1)
                row_tokens, first_position = [self._cache[start - 1], *tokens], start - 1
            if not ends:
                row_tokens = row_tokens[:-1]  # the last token's row predicts nothing we score
            decoded[index] = first_position + len(row_tokens) - start
            for offset, token in enumerate(row_tokens):
                following = tokens[first_position + offset + 1 - start] if first_position + offset + 1 - start < len(tokens) else None
                entries.append((token, first_position + offset, sequence, True))
                targets.append((index, following))
        rows_per_decode = self.largest_decode
        for chunk_start in range(0, len(entries), rows_per_decode):
            chunk = entries[chunk_start : chunk_start + rows_per_decode]
            self._decode(chunk)
            for i in range(len(chunk)):
                request, following = targets[chunk_start + i]
                row = self._row_at(i)
                if following is None:
                    last_rows[request] = row.copy()
                else:
                    nll_sums[request] += _logsumexp(row) - float(row[following])
        results = []
        for index, (start, tokens, ends) in enumerate(requests):
            nll, count = nll_sums[index], len(tokens)
            if ends:
                nll += self._end_nll(last_rows[index])
                count += 1
            results.append(Scored(nll, count, index + 1, start, max(decoded[index], 0), last_rows[index]))
        return results

    def commit(self, start: int, tokens: list[int], scored: Scored | None = None) -> None:
        """Make the shared text end with `tokens` placed at `start`.

        Cheapest first: the cache already holds them (this model proposed the
        winner: its look-ahead stays pending); or they were just scored on a
        candidate sequence (cells are copied, nothing decoded); or decode them.
        """
        target = self._cache[:start] + tokens
        end = len(target)
        if end >= self._committed and self._cache[:end] == target:
            self._pending_nll = self._pending_nll[end - self._committed :]
            self._pending_rows = self._pending_rows[end - self._committed :]
            # Look-ahead the proposals had not seen stays hidden: a proposal
            # then reads the same tokens as if it had decoded them itself.
            self._visible = max(0, self._committed + self._visible - end)
            self._committed = end
        elif scored is not None and self._scoring_in_use and scored.start == start:
            # The candidate's sequence holds its cells from `start` on (and from
            # `start - 1` when that token was decoded again there).
            first = start if start == self._committed else start - 1
            self._truncate_sequence0(first)
            llama_cpp.llama_memory_seq_cp(self._memory, scored.sequence, 0, first, start + scored.decoded)
            self._cache.extend(target[first : start + scored.decoded])
            if start + scored.decoded < end:
                self._extend_sequence0(target[start + scored.decoded :])
            else:
                self._row = scored.last_row
            self._committed = end
            self._pending_nll, self._pending_rows = [], []
            self._visible = 0
        else:
            common = 0
            while common < min(len(self._cache), end) and self._cache[common] == target[common]:
                common += 1
            common = min(common, end - 1)
            self._truncate_sequence0(common)
            self._extend_sequence0(target[common:])
            self._committed = end
            self._pending_nll, self._pending_rows = [], []
            self._visible = 0
        self._release_scoring()

    def _release_scoring(self) -> None:
        if self._scoring_in_use:
            for sequence in range(1, SCORING_SEQUENCES + 1):
                llama_cpp.llama_memory_seq_rm(self._memory, sequence, -1, -1)
            self._scoring_in_use = False

    # ------------------------------------------------------------------ checks

    def smoke_test(self) -> str:
        """Evaluate a short prompt and decode one greedy token (for `models check`)."""
        prompt = self.tokenize(b"The capital of France is", add_bos=self.add_bos)
        self.start_answer(prompt)
        step = self.step()
        return "" if step.ends else self.piece(step.token).decode("utf-8", errors="replace")

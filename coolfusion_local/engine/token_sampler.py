"""llama.cpp's sampler chain, applied to a logits row a source model already holds.

The fusion loop keeps its own copies of logits rows (the context's buffer is
overwritten by cross-scoring), so tokens are picked with `llama_sampler_apply`
on a token-data array built from the row, not with `llama_sampler_sample`.

The repetition penalty is a sampler of its own, kept out of the chain: the text
it must see changes under it (another model's segment wins, a look-ahead is
dropped), so before each pick it is reset and fed the last `repeat_last_n`
tokens of the answer as it stands. Resetting the chain itself would also
reseed its random generator and replay the same numbers.

The lead-sure guard (guard.py) asks how sure a sampling model was of the token
it chose: `last_margin` is that token's probability minus the likeliest other
token's, in the distribution the chain drew from (after the penalty,
top-k/top-p/min-p and temperature), so a token sampled against the model's
argmax counts as unsure (a negative margin), however sure the raw row was.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np

from .sampling import Sampling

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


def _probabilities(array) -> np.ndarray:
    """Softmax over the candidates a sampler chain left in `array` (the samplers may move
    and shrink it; their logits already carry the temperature)."""
    address = ctypes.cast(array.data, ctypes.c_void_p).value
    size = int(array.size)
    view = np.frombuffer((ctypes.c_char * (size * _TOKEN_DATA.itemsize)).from_address(address), dtype=_TOKEN_DATA)
    logits = view["logit"].astype(np.float64)
    finite = np.isfinite(logits)
    probabilities = np.zeros(size)
    if finite.any():
        shifted = np.exp(logits[finite] - logits[finite].max())
        probabilities[finite] = shifted / shifted.sum()
    return probabilities


class TokenSampler:
    """Picks one model's next tokens with the settings of one answer."""

    def __init__(self, sampling: Sampling, vocab_size: int):
        assert ctypes.sizeof(llama_cpp.llama_token_data) == _TOKEN_DATA.itemsize
        self.sampling = sampling
        self._data = np.zeros(vocab_size, dtype=_TOKEN_DATA)
        self._ids = np.arange(vocab_size, dtype=np.int32)
        self._penalties = None
        self._fed: list[int] = []
        self._shaper = None  # the chain without its draw, for `margin_after`
        self.last_margin: float | None = None  # see the module docstring
        if sampling.repeat_penalty != 1.0 and sampling.repeat_last_n != 0:
            self._penalties = llama_cpp.llama_sampler_init_penalties(
                vocab_size, sampling.repeat_last_n, sampling.repeat_penalty, 0.0, 0.0
            )
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(params)
        if sampling.greedy:
            links = [llama_cpp.llama_sampler_init_greedy()]
        else:
            seed = llama_cpp.LLAMA_DEFAULT_SEED if sampling.seed is None else sampling.seed
            links = [
                llama_cpp.llama_sampler_init_top_k(sampling.top_k),
                llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
                llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1),
                llama_cpp.llama_sampler_init_temp(sampling.temperature),
                llama_cpp.llama_sampler_init_dist(seed),
            ]
        for link in links:
            llama_cpp.llama_sampler_chain_add(self._chain, link)  # the chain owns and frees them
        if not sampling.greedy:
            self._shaper = llama_cpp.llama_sampler_chain_init(params)
            for link in (
                llama_cpp.llama_sampler_init_top_k(sampling.top_k),
                llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1),
                llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1),
                llama_cpp.llama_sampler_init_temp(sampling.temperature),
            ):
                llama_cpp.llama_sampler_chain_add(self._shaper, link)

    def pick(self, row: np.ndarray, history: list[int]) -> int:
        """The next token after `history` (the answer so far, this model's tokens), from `row`.

        Sets `last_margin`: how sure the draw was of the token it chose."""
        array = self._penalised(row, history)
        llama_cpp.llama_sampler_apply(self._chain, ctypes.byref(array))
        if array.selected < 0:  # every token filtered out: cannot happen with min_keep 1
            self.last_margin = 0.0
            return int(row.argmax())
        probabilities = _probabilities(array)
        chosen = float(probabilities[array.selected])
        others = np.delete(probabilities, array.selected)
        self.last_margin = chosen - (float(others.max()) if len(others) else 0.0)
        return int(array.data[array.selected].id)

    def margin_after(self, row: np.ndarray, history: list[int]) -> float:
        """p(top-1) − p(top-2) of the distribution a draw from `row` would use (nothing is drawn)."""
        if self._shaper is None:
            from .guard import top_two_margin

            return top_two_margin(row)
        array = self._penalised(row, history)
        llama_cpp.llama_sampler_apply(self._shaper, ctypes.byref(array))
        probabilities = np.sort(_probabilities(array))
        return float(probabilities[-1] - (probabilities[-2] if len(probabilities) > 1 else 0.0))

    def _penalised(self, row: np.ndarray, history: list[int]):
        """`row` as llama.cpp's token-data array, the repetition penalty applied."""
        data = self._data
        data["id"] = self._ids
        data["logit"] = row
        data["p"] = 0.0
        array = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1, sorted=False
        )
        if self._penalties is not None:
            self._feed(history[-self.sampling.repeat_last_n :] if self.sampling.repeat_last_n > 0 else history)
            llama_cpp.llama_sampler_apply(self._penalties, ctypes.byref(array))
        return array

    def _feed(self, window: list[int]) -> None:
        if window == self._fed:
            return
        llama_cpp.llama_sampler_reset(self._penalties)
        for token in window:
            llama_cpp.llama_sampler_accept(self._penalties, token)
        self._fed = list(window)

    def close(self) -> None:
        if self._penalties is not None:
            llama_cpp.llama_sampler_free(self._penalties)
            self._penalties = None
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None
        if self._shaper is not None:
            llama_cpp.llama_sampler_free(self._shaper)
            self._shaper = None

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass

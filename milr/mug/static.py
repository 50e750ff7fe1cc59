"""Static KV cache and a compiled single-token decode step: the opt-in fast path (`MILRConfig.compile`).

The eager loops grow a `DynamicCache` by one column per token, so every step has new shapes. Here a
decode preallocates transformers' `StaticCache` for the prompt plus every new token, keeps one
full-length attention mask for the whole decode (left padding zeroed, the rest ones: causality hides
the slots not written yet), and runs every step after the prefill through `torch.compile(dynamic=False)`.
On CUDA the step is compiled with `mode="reduce-overhead"`, so it replays as a CUDA graph.

Static shapes mean one compiled graph per (rows, cache length): rows are padded up to the next
batch bucket (1, 2, 4, ..., 64, then multiples of 64) and the cache length up to a multiple of
`LENGTH_STEP`, so a handful of graphs serves every batch. Caches are pooled per shape and reused
(same tensors, so CUDA graphs replay instead of re-recording). The prefill has a new length every
call and stays eager.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager

import torch
from transformers import StaticCache

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LENGTH_STEP = 64  # cache lengths are rounded up to a multiple of this
RECOMPILE_LIMIT = 64  # graphs one compiled step may hold (dynamo's default, 8, is too few for all buckets)


def batch_bucket(n: int) -> int:
    """The number of rows a batch of `n` is padded to: the next bucket, beyond 64 the next multiple of 64."""
    if n < 1:
        raise ValueError(f"a batch needs at least one row, got {n}")
    for b in BATCH_BUCKETS:
        if n <= b:
            return b
    return -(-n // BATCH_BUCKETS[-1]) * BATCH_BUCKETS[-1]


def length_bucket(n: int, step: int = LENGTH_STEP) -> int:
    return -(-n // step) * step


class StaticSession:
    """One decode over a pooled static cache: call it with each step's inputs, get the last hidden
    states [rows, H] back. The first call is the (eager) prefill, every later one the compiled step."""

    def __init__(self, decoder: StaticDecoder, cache: StaticCache, mask: torch.Tensor, positions: torch.Tensor):
        self.decoder, self.cache, self.mask, self.positions = decoder, cache, mask, positions
        self.started = False

    def __call__(self, *, input_ids=None, inputs_embeds=None) -> torch.Tensor:
        d = self.decoder
        if self.started:
            if d.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            h = d.step(self.cache, self.mask, self.positions, input_ids, inputs_embeds)
        else:
            h = d.forward(self.cache, self.mask, self.positions, input_ids, inputs_embeds)
            self.started = True
        self.positions = self.positions[:, -1:] + 1
        # A CUDA graph overwrites its outputs at the next replay; callers keep these states.
        return h.clone()


class StaticDecoder:
    """Pooled static caches and the compiled decode step of one language model (a `LlamaModel`).

    `compile=False` keeps the static cache but runs every step eagerly (the same numbers, no compile
    time): that is how the tests check the cache logic apart from the compiler. `backend` is
    torch.compile's (a benchmark's smoke run passes "eager" to trace without code generation)."""

    def __init__(self, lm: torch.nn.Module, *, compile: bool = True, backend: str = "inductor", max_caches: int = 4):
        self.lm = lm
        self.device = next(lm.parameters()).device
        self.max_caches = max_caches
        self._pool: OrderedDict[tuple[int, int], list[StaticCache]] = OrderedDict()
        self._lock = threading.Lock()
        self.cuda_graphs = compile and backend == "inductor" and self.device.type == "cuda"
        self.step = self.forward
        if compile:
            dynamo = torch._dynamo.config
            dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
            mode = "reduce-overhead" if self.cuda_graphs else None
            self.step = torch.compile(self.forward, dynamic=False, mode=mode, backend=backend)

    def forward(self, cache, mask, positions, input_ids=None, inputs_embeds=None) -> torch.Tensor:
        return self.lm(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        ).last_hidden_state[:, -1]

    def _checkout(self, rows: int, length: int) -> StaticCache:
        with self._lock:
            free = self._pool.get((rows, length))
            if free:
                self._pool.move_to_end((rows, length))
                cache = free.pop()
                cache.reset()
                return cache
        return StaticCache(config=self.lm.config, max_cache_len=length)

    def _give_back(self, rows: int, length: int, cache: StaticCache) -> None:
        with self._lock:
            self._pool.setdefault((rows, length), []).append(cache)
            self._pool.move_to_end((rows, length))
            while len(self._pool) > self.max_caches:
                self._pool.popitem(last=False)

    def clear(self) -> None:
        """Free every pooled cache (their memory goes back to the allocator)."""
        with self._lock:
            self._pool.clear()

    @contextmanager
    def session(self, mask: torch.Tensor | None, positions: torch.Tensor, new_tokens: int):
        """A decode of `new_tokens` after a left-padded prompt (`mask` [rows, T] or None, `positions`)."""
        rows, width = positions.shape
        length = length_bucket(width + new_tokens)
        full = torch.ones(rows, length, dtype=torch.bool, device=positions.device)
        if mask is not None:
            full[:, :width] = mask.bool()
        cache = self._checkout(rows, length)
        try:
            yield StaticSession(self, cache, full, positions)
        finally:
            self._give_back(rows, length, cache)


def pad_rows(rows: Sequence[Sequence[int]], width: int) -> list[Sequence[int]]:
    """`rows` followed by copies of its first row up to `width` rows (bucket filler, outputs unused)."""
    return [*rows, *[rows[0]] * (width - len(rows))]

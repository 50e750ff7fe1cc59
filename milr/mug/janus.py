"""JanusMUG: Janus-Pro as a unified model (MUG) that keeps the latents MILR optimises.

Built on transformers' `JanusForConditionalGeneration`. It writes the reasoning (greedy, KV cache),
draws image tokens with our own classifier-free-guidance loop (transformers' `generate` cannot
return per-token latents), decodes images, and answers yes/no questions about an image
(self-reward). Latents are the last-layer hidden states after the final norm: the input of
`lm_head` for text and of `generation_head` for image tokens; z_i is the state that predicts token i.

Every decode takes a batch of rows (DESIGN §2): rows are left-padded with an attention mask and
position ids, each row keeps its own forced tokens and its own `torch.Generator`, so a row's result
does not depend on its batch mates (up to the float noise of batched matmuls). The single-prompt
calls (`reason`, `draw`) are the batch of one through the same loops.

Prompts follow DeepSeek's chat format, built by hand for parity with the original Janus code:
`[system\\n\\n]<|User|>: {message}\\n\\n<|Assistant|>:` after BOS.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

import torch
from PIL import Image
from transformers import (
    AutoTokenizer,
    JanusConfig,
    JanusForConditionalGeneration,
    JanusImageProcessorPil,
)
from transformers.cache_utils import Cache, DynamicLayer

from milr import prompts
from milr.mug.static import StaticDecoder, batch_bucket, pad_rows

SPECIAL_TOKENS = {
    "bos": "<｜begin▁of▁sentence｜>",
    "eos": "<｜end▁of▁sentence｜>",
    "pad": "<｜▁pad▁｜>",
    "boi": "<begin_of_image>",
    "eoi": "<end_of_image>",
    "image": "<image_placeholder>",
}

WEIGHTS_HELP = (
    "Janus-Pro weights for {name!r} are not available here. Download them once on a machine with "
    "network access, e.g. `hf download deepseek-community/Janus-Pro-7B --local-dir ./Janus-Pro-7B` "
    "(or Janus-Pro-1B), then pass that folder as the model. Without network access, the packaged "
    "ShapesWorld model (`--model shapes`) runs everywhere."
)


# Optional file in a checkpoint folder: {"config": {MILRConfig fields}, "prompts": {"reasoning": ...}}.
RECOMMENDED_FILE = "milr_defaults.json"

# transformers' weight file names: safetensors (loaded by default) and pickle (only on explicit opt-in).
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Keywords of transformers' `from_pretrained` that say where files come from: they go to every loader
# (config, weights, tokenizer, image processor), the others to the model's `from_pretrained` only.
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "proxies", "token")

# The dtypes milr loads (MILRConfig.dtype names them), by every name transformers users write.
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
DeviceMap: TypeAlias = "str | int | torch.device | Mapping[str, str | int | torch.device]"
# device_map values that ask accelerate to spread a model over whatever devices there are
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_dtype(value: torch.dtype | str | None, field: str = "dtype") -> torch.dtype | Literal["auto"] | None:
    """`torch.bfloat16`, `"bfloat16"`, `"bf16"`, `"torch.bfloat16"` → `torch.bfloat16`; `"auto"` (the
    checkpoint's own dtype) and None (bf16 on GPU, fp32 on CPU) unchanged. Anything else is refused
    with `field` named and the valid values listed."""
    if value is None or (isinstance(value, torch.dtype) and value in DTYPE_NAMES):
        return value
    if isinstance(value, str):
        key = value.strip().lower().removeprefix("torch.")
        if key == "auto":
            return "auto"
        if key in DTYPES:
            return DTYPES[key]
    raise ValueError(
        f"{field}={value!r} is not a dtype milr loads; use torch.float32, torch.bfloat16 or torch.float16, "
        f"one of the strings {', '.join(repr(k) for k in DTYPES)}, or 'auto' (the checkpoint's own dtype)"
    )


def dtype_name(dtype: torch.dtype) -> Literal["float32", "bfloat16", "float16"]:
    """The `MILRConfig.dtype` name of a dtype milr loads."""
    if dtype not in DTYPE_NAMES:
        raise ValueError(
            f"the checkpoint's dtype is {dtype}, which milr does not run; pass dtype='bfloat16' or 'float32'"
        )
    return DTYPE_NAMES[dtype]  # type: ignore[return-value]


def deprecated_torch_dtype(dtype: torch.dtype | str | None, kwargs: dict[str, Any]) -> torch.dtype | str | None:
    """Take transformers' old `torch_dtype=` keyword out of `kwargs` as `dtype`, as transformers 5 does,
    with a `FutureWarning`; giving both is an error rather than a silent choice."""
    if "torch_dtype" not in kwargs:
        return dtype
    old = kwargs.pop("torch_dtype")
    if dtype is not None and old is not None:
        raise ValueError(f"pass the dtype once: dtype={dtype!r} and its deprecated alias torch_dtype={old!r} both set")
    warnings.warn("`torch_dtype` is deprecated; use `dtype` (as in transformers 5)", FutureWarning, stacklevel=3)
    return old


def single_device(device_map: DeviceMap) -> torch.device | None:
    """The one device a `device_map` names (`"cpu"`, `"cuda:1"`, `0`, `{"": "cuda"}`), or None for a
    placement strategy (`"auto"`) or a map over several devices (or onto `"disk"`)."""
    if isinstance(device_map, Mapping):
        devices = {_map_device(v) for v in device_map.values()}
        return devices.pop() if len(devices) == 1 and None not in devices else None
    return _map_device(device_map)


def _map_device(value: str | int | torch.device) -> torch.device | None:
    if isinstance(value, torch.device):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return torch.device("cuda", value)  # an int is a GPU index, as in transformers
    if isinstance(value, str) and value not in DEVICE_MAP_STRATEGIES:
        try:
            return torch.device(value)
        except RuntimeError:  # "disk", a typo: not one device milr can decode on
            return None
    return None


def weight_files(name_or_path: str, revision: str | None = None, **hub: Any) -> list[str]:
    """The weight files a checkpoint has here (a local folder, or a hub id's files already in the
    cache), without any download: the safetensors and pickle names transformers loads."""
    from huggingface_hub import try_to_load_from_cache

    folder = Path(name_or_path)
    if folder.is_dir():
        return [f for f in (*SAFE_WEIGHTS, *PICKLE_WEIGHTS) if (folder / f).is_file()]
    if folder.is_absolute():
        return []  # a folder that is not there: the loader says so
    cache = {"cache_dir": str(hub["cache_dir"])} if hub.get("cache_dir") else {}
    try:
        cached = {f: try_to_load_from_cache(name_or_path, f, revision=revision, **cache) for f in SAFE_WEIGHTS}
        cached |= {f: try_to_load_from_cache(name_or_path, f, revision=revision, **cache) for f in PICKLE_WEIGHTS}
    except ValueError:  # not a valid hub id (e.g. a relative folder that is not there): the loader says so
        return []
    return [f for f, path in cached.items() if isinstance(path, str)]


def _placement_kwargs(device_map: DeviceMap | None, device: str | torch.device | None) -> dict[str, Any]:
    """What transformers' `from_pretrained` gets for placement. A `device_map` naming one device needs
    `accelerate` in transformers; without it the model loads on the CPU and is moved (the same result),
    so `device_map="cpu"` works everywhere. Spreading a model over devices needs accelerate."""
    if device_map is None:
        return {}
    one = single_device(device_map)
    if device is not None and one is not None and not same_device(one, torch.device(device)):
        raise ValueError(f"device={str(device)!r} and device_map={device_map!r} disagree; pass one of them")
    from transformers.utils import is_accelerate_available

    if is_accelerate_available():
        return {"device_map": device_map}
    if one is None:
        raise ImportError(
            f"device_map={device_map!r} spreads the model over devices, which needs the accelerate package "
            "(pip install accelerate); for one device pass device='cuda' (or device_map='cuda')"
        )
    return {}


def same_device(a: torch.device, b: torch.device) -> bool:
    """`cpu` is `cpu:0`, and `cuda` (the current GPU) matches any `cuda:N`: only a named other device differs."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _loaded_device(model: JanusForConditionalGeneration) -> torch.device:
    """The one device a `device_map` put the model on; milr decodes on one device, so a model spread
    over several (or offloaded to disk) is refused with the fix."""
    placed = list((getattr(model, "hf_device_map", None) or {}).values()) or [p.device for p in model.parameters()]
    devices = {str(_map_device(v) or v) for v in placed}
    one = _map_device(placed[0]) if len(devices) == 1 else None
    if one is None:
        raise ValueError(
            f"device_map put the model on {', '.join(sorted(devices))}, but milr decodes on one device: pass "
            "device='cuda:0' or a device_map with one device (e.g. 'cuda:0'), or a smaller dtype to fit it"
        )
    return one


def _target(device_map: DeviceMap | None) -> torch.device | None:
    return None if device_map is None else single_device(device_map)


def dtype_label(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).removeprefix("torch."))


class ModelWeightsNotFoundError(OSError):
    """Raised when a model's weights cannot be found locally or on the hub."""


class PickleCheckpointError(ModelWeightsNotFoundError):
    """A checkpoint has pickle weights (`pytorch_model.bin`) but no safetensors ones. Unpickling can run
    arbitrary code, so milr refuses it unless the caller trusts it (`use_safetensors=False`)."""


def refuse_pickle_only(name: str, files: Sequence[str]) -> None:
    """`PickleCheckpointError` when `files` (from `weight_files`) are pickle weights only."""
    if files and not any(f in SAFE_WEIGHTS for f in files):
        raise PickleCheckpointError(pickle_refusal(name, [f for f in files if f in PICKLE_WEIGHTS]))


def pickle_refusal(name: str, pickles: Sequence[str]) -> str:
    shown = Path(name).name if Path(name).is_absolute() else name  # no local path in messages or logs
    found = f" ({', '.join(pickles)})" if pickles else ""
    return (
        f"model {shown!r} has no safetensors weights, only pickle ones{found}: loading a pickle file can run "
        "arbitrary code, so milr loads model.safetensors only. Convert the checkpoint (load it once in a trusted "
        "place and `model.save_pretrained(folder)`, which writes safetensors), or, if you trust where it came "
        "from, pass use_safetensors=False to from_pretrained"
    )


def shipped_weight_names(name_or_path: str, *, allow_pickle: bool = False, **hub: Any) -> set[str]:
    """Tensor names in a checkpoint's weight files (a local folder or an already cached hub id), read
    from the safetensors headers (or index) only. With `allow_pickle` (the caller trusts the
    checkpoint), a pickle checkpoint's names are read too, memory-mapped and without tensor data.
    `hub`: where hub files come from (`revision`, `cache_dir`, `local_files_only`, ...)."""
    from safetensors import safe_open
    from transformers.utils import cached_file

    def find(filename: str) -> str | None:
        local = Path(name_or_path) / filename
        if local.is_file():
            return str(local)
        if Path(name_or_path).is_dir():
            return None
        return cached_file(name_or_path, filename, **hub, _raise_exceptions_for_missing_entries=False)

    for index_name in ("model.safetensors.index.json", *(("pytorch_model.bin.index.json",) if allow_pickle else ())):
        index = find(index_name)
        if index is not None:
            return set(json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"])
    single = find("model.safetensors")
    if single is not None:
        with safe_open(single, "pt") as f:
            return set(f.keys())
    pickled = find("pytorch_model.bin") if allow_pickle else None
    if pickled is None:
        return set()
    try:
        return set(torch.load(pickled, map_location="meta", weights_only=True, mmap=True))
    except RuntimeError:  # a legacy (pre-zip) torch.save file cannot be memory-mapped; "meta" still reads no data
        return set(torch.load(pickled, map_location="meta", weights_only=True))


def untied_if_shipped(config: JanusConfig, name: str, *, allow_pickle: bool = False, **hub: Any) -> JanusConfig:
    """Untie `lm_head` from the input embeddings when the checkpoint ships its own `lm_head.weight`.

    transformers 5.x gives `JanusConfig` a top-level `tie_word_embeddings=True` that wins over the text
    config's own setting; Janus-Pro ships separate `lm_head` weights, and loading them tied silently
    replaces them by the embeddings (text logits off by about 40 on a cross-check)."""
    if "lm_head.weight" in shipped_weight_names(name, allow_pickle=allow_pickle, **hub):
        config.tie_word_embeddings = False
        config.text_config.tie_word_embeddings = False
    return config


@dataclass
class TextRollout:
    """One reasoning decode. `latents[i]` predicted `ids[i]`; `ids` may end with EOS."""

    ids: list[int]
    text: str
    latents: torch.Tensor  # [M, H], post-norm, on the model's device


@dataclass
class ImageRollout:
    """One image decode. `latents[i]` are the (cond, uncond) states that predicted `ids[i]`."""

    ids: list[int]
    latents: torch.Tensor  # [N, 2, H]
    image: Image.Image
    fused_logits: torch.Tensor | None = field(default=None, repr=False)  # [N, V], only when recorded


def render_chat(message: str, system: str = "") -> str:
    """DeepSeek's single-turn chat format as the original Janus code renders it."""
    # DeepSeek's template strips the message (`message.strip()`) before it renders the turn.
    head = f"{system}\n\n" if system else ""
    return f"{head}<|User|>: {message.strip()}\n\n<|Assistant|>:"


def image_prompt(prompt: str, reasoning: str) -> str:
    """The text the image is drawn under: the prompt, then the reasoning (MILR's `f"{p}. {r}"`)."""
    reasoning = reasoning.strip()
    return f"{prompt}. {reasoning}" if reasoning else prompt


def _check_prompt(name: str, text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty string, got {text!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def left_pad(
    rows: Sequence[Sequence[int]], pad: int, device
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Left-pad id rows into [B, T]: (ids, attention mask or None when no row is padded, position ids).

    Positions count only real tokens (`cumsum(mask) - 1`), so a padded row sees the same rotary
    positions as it would alone. Without padding the mask is None: the batch of one then runs exactly
    the unmasked forward it always did."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), width), dtype=torch.long, device=device)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), device=device)
            mask[i, width - len(r) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, (None if bool(mask.all()) else mask), positions


def set_thread_count(count: int) -> int:
    """Set this thread's intra-op thread count; returns the one it had. Reads it first: torch gives a
    thread the count any thread set last, on the thread's first torch call, which would also undo a
    set made before that call."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    return before


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def sample_rows(
    probs: torch.Tensor, generators: Sequence[torch.Generator | None], forced: Sequence[int | None]
) -> torch.Tensor:
    """One token per row of `probs` [B, V]: `forced[b]` where given, else a draw from row b with
    `generators[b]`, the very token `torch.multinomial(probs[b], 1, generator=generators[b])` draws.

    For one sample torch's multinomial is the exponential race `argmax(p / q)` with q ~ Exp(1) drawn
    from the generator (aten's fast path; a test holds the two equal). Drawing each row's q from its
    own generator and taking the argmax of the whole batch at once gives the same tokens and leaves
    each generator where multinomial would, at a fraction of the per-row calls. A forced row draws
    nothing, as before."""
    noise = torch.ones_like(probs)
    for b, (generator, pinned) in enumerate(zip(generators, forced, strict=True)):
        if pinned is None:
            noise[b].exponential_(1, generator=generator)
    picks = (probs / noise).argmax(-1)
    pinned_rows = [b for b, pinned in enumerate(forced) if pinned is not None]
    if pinned_rows:
        picks[pinned_rows] = torch.tensor([forced[b] for b in pinned_rows], device=picks.device)
    return picks


def _advance(mask: torch.Tensor | None, positions: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Mask and position ids for the next single-token step of every row."""
    if mask is not None:
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)
    return mask, positions[:, -1:] + 1


class _GrowingLayer(DynamicLayer):
    """A `DynamicLayer` that writes each step into a preallocated buffer and hands attention a view of
    the filled part, instead of concatenating: `DynamicCache` copies the whole cache at every token,
    about half of a 16-image decode's time on a CPU. Same numbers, bit for bit. A full buffer doubles,
    up to `limit` (the decode's full length), so a reasoning that stops early reserves little."""

    def __init__(self, capacity: int, limit: int):
        super().__init__()
        self.capacity, self.limit, self.length = capacity, limit, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._k = key_states.new_empty(*key_states.shape[:2], self.capacity, key_states.shape[-1])
        self._v = value_states.new_empty(*value_states.shape[:2], self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            self.capacity = max(end, min(2 * self.capacity, self.limit))
            grown_k = self._k.new_empty(*self._k.shape[:2], self.capacity, self._k.shape[-1])
            grown_v = self._v.new_empty(*self._v.shape[:2], self.capacity, self._v.shape[-1])
            grown_k[:, :, : self.length] = self._k[:, :, : self.length]
            grown_v[:, :, : self.length] = self._v[:, :, : self.length]
            self._k, self._v = grown_k, grown_v
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def reset(self) -> None:
        super().reset()
        self.length = 0


class _DynamicSession:
    """The eager decode: a growing KV cache and a mask that grows by one column per step. Call it with
    each step's inputs; it returns the last hidden states [rows, H]."""

    GROW_FROM = 128  # initial room for new tokens (reasoning usually stops at EOS well before its cap)

    def __init__(self, lm, mask: torch.Tensor | None, positions: torch.Tensor, new_tokens: int):
        self.lm, self.mask, self.positions = lm, mask, positions
        width, layers = positions.shape[1], lm.config.num_hidden_layers
        room = min(new_tokens, self.GROW_FROM)
        self.cache = Cache(layers=[_GrowingLayer(width + room, width + new_tokens) for _ in range(layers)])

    def __call__(self, *, input_ids=None, inputs_embeds=None) -> torch.Tensor:
        h = self.lm(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=self.mask,
            position_ids=self.positions,
            cache=self.cache,
            use_cache=True,
        ).last_hidden_state[:, -1]
        self.mask, self.positions = _advance(self.mask, self.positions)
        return h


class JanusMUG:
    """Janus-Pro (or any `JanusForConditionalGeneration`) with latent-keeping decode loops.

    Every weight is frozen (`requires_grad_(False)`): only MILR's latents ever get gradients.
    """

    def __init__(
        self,
        model: JanusForConditionalGeneration,
        tokenizer,
        image_processor: JanusImageProcessorPil | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        name: str = "janus",
        max_reasoning_tokens: int = 512,
        compile: bool = False,
    ):
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.device, self.dtype, self.name = device, dtype, name
        self.revision: str | None = None  # the hub revision loaded (`from_pretrained(revision=...)`)
        self.max_reasoning_tokens = max_reasoning_tokens
        self.compile = compile  # static KV cache + compiled decode step (MILRConfig.compile)
        self.static: StaticDecoder | None = None  # built at the first decode with `compile` on
        self.ids = {key: self._token_id(tok) for key, tok in SPECIAL_TOKENS.items()}
        self.num_image_tokens = model.config.vision_config.num_image_tokens
        self.context_length = model.config.text_config.max_position_embeddings
        self.image_vocab = model.config.vq_config.num_embeddings
        self.text_vocab = model.config.text_config.vocab_size
        self._yes_no = self._answer_token_ids()
        # A checkpoint may ship its own settings in milr_defaults.json: `config` (MILRConfig fields it
        # recommends) and `prompts` (the reasoning instruction it was trained with). Small models
        # trained here want a short instruction: a 4-layer ShapesWorld LM trained behind the long
        # default instruction (~140 tokens) plateaued at prompt-agnostic plans (text loss flat at 0.50
        # from step 200 to 1750, colours and shapes ignored), so ship e.g. "plan the image for: {prompt}".
        self.recommended: dict = {}
        self.reasoning_template = prompts.load("reasoning")
        self.reasoning_system = prompts.load("reasoning_system")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        device_map: DeviceMap | None = None,
        revision: str | None = None,
        use_safetensors: bool = True,
        max_reasoning_tokens: int = 512,
        compile: bool = False,
        **model_kwargs: Any,
    ) -> JanusMUG:
        """Load model, tokenizer and image processor from a local folder or the hub.

        `device` defaults to CUDA when available; `dtype` (a `torch.dtype`, a name such as "bfloat16"
        or "bf16", or "auto" for the checkpoint's own) to bf16 on GPU and fp32 on CPU. `device_map`
        and `revision` go to transformers' loaders; so do `model_kwargs` (`attn_implementation`, and
        `cache_dir`, `token`, `local_files_only`, which every loader gets). Weights load from
        safetensors only: a pickle-only checkpoint raises `PickleCheckpointError` unless
        `use_safetensors=False` says it is trusted. Missing weights (no network, no local copy) raise
        `ModelWeightsNotFoundError` with the fix.
        """
        name = str(name_or_path)
        dtype = parse_dtype(deprecated_torch_dtype(dtype, model_kwargs))
        hub = {"revision": revision, **{k: model_kwargs.pop(k) for k in HUB_KWARGS if k in model_kwargs}}
        if use_safetensors:
            refuse_pickle_only(name, weight_files(name, **hub))
        placement = _placement_kwargs(device_map, device)
        try:
            config = JanusConfig.from_pretrained(name, **hub)
            config = untied_if_shipped(config, name, allow_pickle=not use_safetensors, **hub)
            model = JanusForConditionalGeneration.from_pretrained(
                name,
                config=config,
                dtype=dtype or "auto",
                use_safetensors=use_safetensors,
                **placement,
                **hub,
                **model_kwargs,
            )
            tokenizer = AutoTokenizer.from_pretrained(name, **hub)
        except OSError as err:
            if use_safetensors and "cannot be loaded with `safetensors`" in str(err):  # a hub repo of pickles
                raise PickleCheckpointError(pickle_refusal(name, [])) from err
            raise ModelWeightsNotFoundError(WEIGHTS_HELP.format(name=name) + f" (loader said: {err})") from err
        try:
            image_processor = JanusImageProcessorPil.from_pretrained(name, **hub)
        except OSError:
            image_processor = None  # generation works without it; `understand` will say so
        mug = cls(
            model,
            tokenizer,
            image_processor,
            device=_loaded_device(model) if placement else (device or _target(device_map)),
            dtype=model.dtype if dtype == "auto" else dtype,
            name=name,
            max_reasoning_tokens=max_reasoning_tokens,
            compile=compile,
        )
        mug.revision = revision
        defaults = Path(name) / RECOMMENDED_FILE
        if defaults.is_file():
            mug.apply_defaults(json.loads(defaults.read_text(encoding="utf-8")))
        return mug

    def __repr__(self) -> str:
        revision = f"@{self.revision}" if self.revision else ""
        return f"JanusMUG({self.name!r}{revision}, device={str(self.device)!r}, dtype={dtype_label(self.dtype)})"

    def apply_defaults(self, defaults: dict) -> None:
        """Take a checkpoint's `milr_defaults.json`: recommended config and its reasoning prompts."""
        self.recommended = dict(defaults.get("config", {}))
        chat = defaults.get("prompts", {})
        self.reasoning_template = chat.get("reasoning", self.reasoning_template)
        self.reasoning_system = chat.get("reasoning_system", self.reasoning_system)
        if "{prompt}" not in self.reasoning_template:
            raise ValueError(f"{RECOMMENDED_FILE}: prompts.reasoning must contain '{{prompt}}'")

    def _token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no special token {token!r}; Janus-Pro tokenizers define it")
        return int(tid)

    def _answer_token_ids(self) -> dict[str, list[int]]:
        """Single-token spellings of yes/no ('Yes', ' Yes', 'yes', ...) that this tokenizer has."""
        out: dict[str, list[int]] = {}
        for word in ("yes", "no"):
            ids = set()
            for spelling in (word, word.capitalize(), " " + word, " " + word.capitalize()):
                enc = self.tokenizer.encode(spelling, add_special_tokens=False)
                if len(enc) == 1 and enc[0] != self.tokenizer.unk_token_id:
                    ids.add(enc[0])
            out[word] = sorted(ids)
        return out

    # ------------------------------------------------------------------ prompts
    def encode_chat(self, message: str, system: str = "") -> list[int]:
        """BOS + the rendered chat, as ids."""
        return [self.ids["bos"], *self.tokenizer.encode(render_chat(message, system), add_special_tokens=False)]

    def reasoning_ids(self, prompt: str) -> list[int]:
        return self.encode_chat(self.reasoning_template.format(prompt=prompt), self.reasoning_system)

    def image_prompt_ids(self, text: str) -> list[int]:
        """Chat ids for drawing under `text`, ending with `<begin_of_image>`."""
        return [*self.encode_chat(text), self.ids["boi"]]

    def _check_context(self, name: str, n_prompt: int, n_new: int) -> None:
        if n_prompt + n_new > self.context_length:
            raise ValueError(
                f"{name} is too long: {n_prompt} prompt tokens + {n_new} to generate exceed the model's "
                f"context of {self.context_length} tokens; shorten the prompt"
            )

    def _check_ids(self, name: str, ids, vocab: int) -> list[int]:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < vocab]
        if bad:
            raise ValueError(f"{name} holds ids outside the vocabulary [0, {vocab}): {bad[:5]}")
        return ids

    # ------------------------------------------------------------------ heads
    def text_logits(self, z: torch.Tensor) -> torch.Tensor:
        """`lm_head` logits from text latents [..., H] (differentiable in z)."""
        return self.model.lm_head(z.to(self.dtype)).float()

    def image_logits(self, z: torch.Tensor, cfg: float = 5.0, temperature: float = 1.0) -> torch.Tensor:
        """CFG-fused, temperature-scaled image logits from latent pairs [..., 2, H] (cond, uncond)."""
        logits = self.model.model.generation_head(z.to(self.dtype)).float()
        cond, uncond = logits[..., 0, :], logits[..., 1, :]
        return (uncond + cfg * (cond - uncond)) / temperature

    # ------------------------------------------------------------------ text
    @torch.no_grad()
    def reason(self, prompt: str, prefix_ids=None, *, max_new_tokens: int | None = None) -> TextRollout:
        """Greedy reasoning for `prompt`; `prefix_ids` are forced first, then the model continues."""
        return self.reason_batch([prompt], [prefix_ids or []], max_new_tokens=max_new_tokens)[0]

    @torch.no_grad()
    def reason_batch(
        self, prompts: Sequence[str], prefix_ids: Sequence[Sequence[int]] | None = None, *, max_new_tokens=None
    ) -> list[TextRollout]:
        """Greedy reasoning for every prompt in one batched decode; row i forces `prefix_ids[i]` first.

        A forced prefix is emitted whole, even when it holds EOS: only a token the model chose itself
        ends a row, as in the authors' loop (their prefix is appended to the prompt, then greedy
        generation runs until EOS)."""
        prefix_ids = list(prefix_ids) if prefix_ids is not None else [[] for _ in prompts]
        if len(prefix_ids) != len(prompts):
            raise ValueError(f"prefix_ids has {len(prefix_ids)} rows for {len(prompts)} prompts; give one per prompt")
        max_new = max_new_tokens or self.max_reasoning_tokens
        _check_positive("max_new_tokens", max_new)
        rows, forced, caps = [], [], []
        for i, prompt in enumerate(prompts):
            _check_prompt("prompt", prompt)
            ids = self.reasoning_ids(prompt)
            self._check_context("prompt", len(ids), 1)
            rows.append(ids)
            forced.append(self._check_ids("prefix_ids", prefix_ids[i] or [], self.text_vocab))
            # Reasoning stops at EOS; the cap only guards the context window.
            caps.append(min(max_new, self.context_length - len(ids)))
        return self._text_loop(rows, forced, caps) if rows else []

    def _width(self, count: int) -> int:
        """Rows a batch of `count` decodes as: itself, or its bucket on the compiled path (few graphs)."""
        return batch_bucket(count) if self.compile else count

    @contextmanager
    def _session(self, mask: torch.Tensor | None, positions: torch.Tensor, new_tokens: int):
        """The decode state of one batch: an eager growing cache, or with `compile` on a pooled static
        cache whose steps after the prefill run compiled (milr/mug/static.py)."""
        if not self.compile:
            yield _DynamicSession(self.model.model.language_model, mask, positions, new_tokens)
            return
        if self.static is None:
            self.static = StaticDecoder(self.model.model.language_model)
        with self.static.session(mask, positions, new_tokens) as session:
            yield session

    def _text_loop(self, rows: list[list[int]], forced: list[list[int]], caps: list[int]) -> list[TextRollout]:
        batch, width = len(rows), self._width(len(rows))
        inputs, mask, positions = left_pad(pad_rows(rows, width), self.ids["pad"], self.device)
        out_ids: list[list[int]] = [[] for _ in rows]
        latents: list[list[torch.Tensor]] = [[] for _ in rows]
        done = [False] * batch
        with self._session(mask, positions, max(caps)) as step:
            for s in range(max(caps)):
                h = step(input_ids=inputs)[:batch]  # [B, H]; bucket filler rows dropped
                greedy = self.model.lm_head(h).argmax(-1).tolist()
                next_tokens = []
                for r in range(batch):
                    if not done[r]:
                        latents[r].append(h[r])
                        is_forced = s < len(forced[r])
                        tok = forced[r][s] if is_forced else greedy[r]
                        out_ids[r].append(tok)
                        done[r] = (tok == self.ids["eos"] and not is_forced) or len(out_ids[r]) >= caps[r]
                    # A finished row keeps feeding pad (its outputs are ignored) so the batch stays rectangular.
                    next_tokens.append(out_ids[r][-1] if not done[r] else self.ids["pad"])
                if all(done):
                    break
                next_tokens += [self.ids["pad"]] * (width - batch)
                inputs = torch.tensor(next_tokens, device=self.device).view(width, 1)
        return [
            TextRollout(
                ids=ids, text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(), latents=torch.stack(z)
            )
            for ids, z in zip(out_ids, latents, strict=True)
        ]

    # ------------------------------------------------------------------ image
    def cfg_prompt_ids(self, text: str) -> torch.Tensor:
        """[2, T] ids: the conditional row, and the unconditional row.

        The unconditional row pads by position, as DeepSeek's code does: it keeps the first token
        (BOS) and the last (`<begin_of_image>`) and pads everything in between, so a literal
        `<begin_of_image>` inside a prompt is padded too. Rows are in transformers' order (cond
        first, then uncond); at batch 1 this equals the original Janus code's interleaving.
        """
        cond = torch.tensor(self.image_prompt_ids(text), device=self.device)
        uncond = torch.full_like(cond, self.ids["pad"])
        uncond[0], uncond[-1] = cond[0], cond[-1]
        return torch.stack([cond, uncond])

    @torch.no_grad()
    def draw(
        self,
        image_prompt: str,
        *,
        prefix_ids=None,
        forced: dict[int, int] | None = None,
        cfg: float = 5.0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        record_logits: bool = False,
    ) -> ImageRollout:
        """Sample image tokens under `image_prompt` with CFG and keep their latents.

        `prefix_ids` forces the first tokens; `forced` maps arbitrary positions to tokens (the
        `random` image subset). Everything else is sampled from the fused distribution.
        """
        forced = dict(forced or {})
        for pos, tok in enumerate(self._check_ids("prefix_ids", prefix_ids or [], self.image_vocab)):
            forced[pos] = tok
        return self.draw_batch(
            [image_prompt],
            forced=[forced],
            cfg=cfg,
            temperature=temperature,
            generators=[generator],
            record_logits=record_logits,
        )[0]

    @torch.no_grad()
    def draw_batch(
        self,
        image_prompts: Sequence[str],
        *,
        forced: Sequence[dict[int, int]] | None = None,
        cfg: float = 5.0,
        temperature: float = 1.0,
        generators: Sequence[torch.Generator | None] | None = None,
        record_logits: bool = False,
    ) -> list[ImageRollout]:
        """Draw one image per prompt in one batched CFG decode (2 rows per image: cond, uncond).

        `forced[i]` maps positions of image i to tokens; `generators[i]` is image i's own sampling
        stream, so its tokens do not depend on which images share the batch."""
        _check_positive("cfg", cfg)
        _check_positive("temperature", temperature)
        n = self.num_image_tokens
        count = len(image_prompts)
        forced = [dict(f or {}) for f in forced] if forced is not None else [{} for _ in range(count)]
        generators = list(generators) if generators is not None else [None] * count
        if len(forced) != count or len(generators) != count:
            raise ValueError(
                f"draw_batch got {count} prompts, {len(forced)} forced maps and {len(generators)} generators; "
                "give one of each per prompt"
            )
        cond_rows, uncond_rows = [], []
        for prompt, pinned in zip(image_prompts, forced, strict=True):
            _check_prompt("image_prompt", prompt)
            self._check_ids("forced", pinned.values(), self.image_vocab)
            if any(not 0 <= p < n for p in pinned):
                raise ValueError(f"forced positions must lie in [0, {n}), got {sorted(pinned)}")
            rows = self.cfg_prompt_ids(prompt)
            self._check_context("image_prompt", rows.shape[1], n)
            cond_rows.append(rows[0].tolist())
            uncond_rows.append(rows[1].tolist())
        if not count:
            return []
        return self._image_loop(cond_rows + uncond_rows, forced, cfg, temperature, generators, record_logits)

    def _image_loop(self, rows, forced, cfg, temperature, generators, record_logits) -> list[ImageRollout]:
        tokens, latents, fused = self._image_tokens(rows, forced, cfg, temperature, generators, record_logits)
        images = self.decode_images(tokens.tolist())
        count = len(forced)
        return [
            ImageRollout(
                ids=tokens[b].tolist(),
                latents=torch.stack([latents[:, b], latents[:, count + b]], 1),
                image=images[b],
                fused_logits=fused[:, b] if fused is not None else None,
            )
            for b in range(count)
        ]

    def _image_tokens(self, rows, forced, cfg, temperature, generators, record_logits):
        """The CFG token loop: `rows` = all conditional rows, then all unconditional ones (transformers'
        order). Returns tokens [B, N], latents [N, 2B, H] and, when recorded, fused logits [N, B, V]."""
        count, n = len(forced), self.num_image_tokens
        width = self._width(count)  # images decoded; rows past `count` fill the bucket, outputs unused
        rows = [*pad_rows(rows[:count], width), *pad_rows(rows[count:], width)]
        ids, mask, positions = left_pad(rows, self.ids["pad"], self.device)
        tokens = torch.empty(width, n, dtype=torch.long, device=self.device)
        hidden = self.model.model.language_model.config.hidden_size
        latents = torch.empty(n, 2 * count, hidden, device=self.device, dtype=self.dtype)
        fused_all = [] if record_logits else None
        with self._session(mask, positions, n) as step:
            embeds = self.model.get_input_embeddings()(ids)  # [2W, T, H]
            for i in range(n):
                h = step(inputs_embeds=embeds)  # [2W, H]
                cond, uncond = h[:count], h[width : width + count]
                latents[i, :count], latents[i, count:] = cond, uncond
                fused = self.image_logits(torch.stack([cond, uncond], 1), cfg, temperature)  # [B, V]
                if fused_all is not None:
                    fused_all.append(fused)
                tokens[:count, i] = sample_rows(torch.softmax(fused, -1), generators, [f.get(i) for f in forced])
                tokens[count:, i] = tokens[0, i]
                if i + 1 < n:
                    embeds = self.model.prepare_embeddings_for_image_generation(tokens[:, i : i + 1].repeat(2, 1))
        return tokens[:count], latents, (torch.stack(fused_all) if fused_all is not None else None)

    @torch.no_grad()
    def decode_image(self, ids: list[int]) -> Image.Image:
        """VQ-decode image tokens to a PIL RGB image."""
        return self.decode_images([ids])[0]

    def decode_images(self, rows: list[list[int]]) -> list[Image.Image]:
        """VQ-decode token rows, one image at a time: decoded in a batch, float noise of the batched
        convolutions moves a pixel by one level now and then, and an image would depend on its batch
        mates. Pixels are clipped, then truncated to uint8 as DeepSeek's code does (rounding would
        move about half of all values by one).

        On a CPU the images decode side by side on the cores the caller's intra-op threads leave
        free (the graph's nodes run at one thread: `milr.orchestrator.graph.node_threads`), each at
        the caller's thread count, so every image gets the same numbers as when decoded alone."""
        for ids in rows:
            self._check_ids("image ids", ids, self.image_vocab)
        threads = torch.get_num_threads()
        workers = min(len(rows), _cores() // threads) if self.device.type == "cpu" else 1
        if workers <= 1:
            return [self._decode_one(ids) for ids in rows]

        def decode_alone(ids: list[int]) -> Image.Image:
            set_thread_count(threads)  # a new thread starts at another count; the floats follow it
            return self._decode_one(ids)

        with ThreadPoolExecutor(workers, thread_name_prefix="milr-vq") as pool:
            return list(pool.map(decode_alone, rows))

    @torch.no_grad()  # grad mode is per thread: a decode thread starts with it on
    def _decode_one(self, ids: list[int]) -> Image.Image:
        pixels = self.model.decode_image_tokens(torch.tensor([ids], device=self.device))[0].float()  # [H, W, 3]
        arr = ((pixels + 1) / 2 * 255).clamp(0, 255).to(torch.uint8).cpu().numpy()
        return Image.fromarray(arr, mode="RGB")

    # ------------------------------------------------------------------ understanding
    @torch.no_grad()
    def understand(self, image: Image.Image, question: str) -> float:
        """P(yes) / (P(yes) + P(no)) for the first answer token, in one forward pass."""
        _check_prompt("question", question)
        if self.image_processor is None:
            raise ValueError(f"model {self.name!r} has no image processor; understanding needs one")
        if not self._yes_no["yes"] or not self._yes_no["no"]:
            raise ValueError(f"tokenizer of {self.name!r} has no single-token 'yes'/'no'")
        placeholder = SPECIAL_TOKENS["boi"] + SPECIAL_TOKENS["image"] * self.num_image_tokens + SPECIAL_TOKENS["eoi"]
        ids = self.encode_chat(f"{placeholder}\n{question}", prompts.load("understanding_system"))
        self._check_context("question", len(ids), 1)
        pixels = self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        logits = self.model(
            input_ids=torch.tensor([ids], device=self.device),
            pixel_values=pixels.to(self.device, self.dtype),
            logits_to_keep=1,
        ).logits[0, -1]
        probs = torch.softmax(logits.float(), -1)
        p_yes = probs[self._yes_no["yes"]].sum()
        p_no = probs[self._yes_no["no"]].sum()
        return float(p_yes / (p_yes + p_no))

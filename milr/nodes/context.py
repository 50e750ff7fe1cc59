"""What the three graph nodes share: the checkpointed state, the run context and the latent store.

`MILRState` holds only serialisable values (DESIGN §2): LangGraph's serializer cannot hold tensors
or images, so those live in the in-process `LatentStore` and in the trace folder, and a resumed run
reads them back from `latents/round_XX.safetensors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypedDict

import torch
from PIL import Image

from milr.config import MILRConfig
from milr.critics.base import Critic
from milr.mug.janus import JanusMUG, TextRollout
from milr.mug.latents import LatentPrefix, image_positions, text_prefix_length
from milr.traces import TraceWriter


class MILRState(TypedDict, total=False):
    """Checkpointed graph state: plain values only."""

    prompt: str
    spec: dict | None
    run_id: str
    round: int  # the round generated last (-1 before round 0)
    score: float | None  # mixed score of that round
    scores: list[float | None]  # every finished round's score, in order
    reasoning: str
    text_prefix_ids: list[int]
    text_prefix_changed: bool
    image_prefix_ids: list[int]
    updated: str  # modality changed by the update before this round: none | text | image | both
    update_stats: dict  # grad and step norms of that update
    seconds: dict  # decode / critics / update seconds of this round
    stop_reason: str | None


@dataclass
class MILRContext:
    """Run-time objects the nodes need; passed as LangGraph's runtime context, never checkpointed."""

    mug: JanusMUG
    critic: Critic
    config: MILRConfig
    writer: TraceWriter
    store: LatentStore


@dataclass
class LatentStore:
    """The optimised prefixes, their Adam states and the sampling generator of one run."""

    text: LatentPrefix | None = None
    image: LatentPrefix | None = None
    generator: torch.Generator | None = None
    reasoning: TextRollout | None = None  # last reasoning decode (reused when its prefix is unchanged)
    image_out: Image.Image | None = None  # the last round's image, until the critique writes it
    restored_round: int = field(default=-1)

    @property
    def ready(self) -> bool:
        return self.generator is not None

    def start(self, mug: JanusMUG, config: MILRConfig) -> None:
        self.generator = torch.Generator(device=mug.device).manual_seed(config.seed)

    def capture(self, mug: JanusMUG, config: MILRConfig, text: TextRollout, image_latents: torch.Tensor) -> None:
        """Round 0: keep the prefixes MILR will optimise (DESIGN §3)."""
        if "text" in config.optimize:
            lt = text_prefix_length(len(text.ids), config.lambda_text)
            self.text = LatentPrefix("text", text.latents[:lt], list(range(lt)), config.lr)
        if "image" in config.optimize:
            # A separate seeded generator picks the random subset, so the sampling stream is the same
            # for `prefix` and `random` runs.
            subset_gen = torch.Generator().manual_seed(config.seed + 1)
            pos = image_positions(mug.num_image_tokens, config.lambda_image, config.image_subset, subset_gen)
            self.image = LatentPrefix("image", image_latents[pos], pos, config.lr)
        self.reasoning = text

    def prefix(self, modality: str) -> LatentPrefix:
        found = self.text if modality == "text" else self.image
        if found is None:
            raise RuntimeError(f"no {modality} prefix: it is not in MILRConfig.optimize")
        return found

    # -------------------------------------------------------------- persistence (resume)
    def tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        out: dict[str, torch.Tensor] = {}
        for prefix in (self.text, self.image):
            if prefix is not None:
                out.update(prefix.state_tensors())
        out["generator_state"] = self.generator.get_state()
        meta = {"reasoning_ids": json.dumps(self.reasoning.ids), "reasoning": self.reasoning.text}
        return out, meta

    def restore(self, mug: JanusMUG, config: MILRConfig, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        self.start(mug, config)
        self.generator.set_state(tensors["generator_state"])
        if "text.z" in tensors:
            self.text = LatentPrefix.from_state_tensors("text", tensors, config.lr, mug.device)
        if "image.z" in tensors:
            self.image = LatentPrefix.from_state_tensors("image", tensors, config.lr, mug.device)
        ids = json.loads(meta["reasoning_ids"])
        # Latents of the full reasoning are not needed after round 0: only the optimised prefix is.
        self.reasoning = TextRollout(ids=ids, text=meta["reasoning"], latents=torch.empty(0))

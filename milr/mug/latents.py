"""The optimised latent prefixes and MILR's REINFORCE step (DESIGN §3), on one screen.

Text: Zt = z_t[:int(λt·M0)] ([Lt, H]). Image: Zv = z_v at Lv = max(1, int(λv·N)) positions, kept
as (cond, uncond) pairs ([Lv, 2, H]); positions are the first Lv (`prefix`) or a seeded random
subset (`random`, the paper's Table 5). One Adam per modality; no weight is touched.

Reward sign: R = s - 1 ∈ [-1, 0]. loss = -R · Σ log softmax(head(Z))[argmax head(Z)]. With R < 0,
a step lowers the probability of the current argmax tokens until they flip (a push away from the
decode that failed, scaled by how badly it failed); R = 0 leaves everything as it is. A positive
reward would only sharpen the current tokens: nothing would ever change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Head = Callable[[torch.Tensor], torch.Tensor]  # latents -> logits [..., V], differentiable


def reward_from_score(score: float) -> float:
    """R = s - 1: the only place a critic score becomes a reward."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must lie in [0, 1], got {score}")
    return score - 1.0


def reinforce_loss(logits: torch.Tensor, reward: float) -> torch.Tensor:
    """-R · Σ_i log p_i(argmax_i): the authors' argmax-REINFORCE surrogate."""
    logp = torch.log_softmax(logits, dim=-1)
    chosen = logp.gather(-1, logp.argmax(-1, keepdim=True))
    return -reward * chosen.sum()


@dataclass
class StepStats:
    modality: str
    loss: float
    grad_norm: float
    step_norm: float


class LatentPrefix:
    """One modality's optimised latents and its Adam state."""

    def __init__(self, modality: str, latents: torch.Tensor, positions: list[int], lr: float):
        self.modality = modality
        self.positions = positions  # which decode steps these latents predicted
        self.z = torch.nn.Parameter(latents.detach().float().clone())
        self.adam = torch.optim.Adam([self.z], lr=lr)

    def step(self, head: Head, reward: float) -> StepStats:
        before = self.z.detach().clone()
        self.adam.zero_grad(set_to_none=True)
        loss = reinforce_loss(head(self.z), reward)
        loss.backward()
        grad_norm = float(self.z.grad.norm())
        self.adam.step()
        return StepStats(self.modality, loss.item(), grad_norm, float((self.z.detach() - before).norm()))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Latents, positions and Adam moments as flat tensors (for safetensors)."""
        # Copies, not views: on CPU `.cpu()` aliases, and the optimiser keeps updating in place.
        out = {f"{self.modality}.z": self.z.detach().cpu().clone()}
        out[f"{self.modality}.positions"] = torch.tensor(self.positions, dtype=torch.long)
        state = self.adam.state.get(self.z)
        if state:
            out[f"{self.modality}.exp_avg"] = state["exp_avg"].cpu().clone()
            out[f"{self.modality}.exp_avg_sq"] = state["exp_avg_sq"].cpu().clone()
            out[f"{self.modality}.adam_step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
        return out

    @classmethod
    def from_state_tensors(cls, modality: str, t: dict[str, torch.Tensor], lr: float, device) -> LatentPrefix:
        prefix = cls(modality, t[f"{modality}.z"].to(device), t[f"{modality}.positions"].tolist(), lr)
        if f"{modality}.exp_avg" in t:
            prefix.adam.state[prefix.z] = {
                "step": t[f"{modality}.adam_step"].reshape(()).clone(),
                "exp_avg": t[f"{modality}.exp_avg"].to(device).clone(),
                "exp_avg_sq": t[f"{modality}.exp_avg_sq"].to(device).clone(),
            }
        return prefix


def text_prefix_length(m0: int, lambda_text: float) -> int:
    """Lt = int(λt·M0), at least one token (the authors' code allows 0 for very short reasoning)."""
    return min(m0, max(1, int(lambda_text * m0)))


def image_positions(n: int, lambda_image: float, subset: str, generator: torch.Generator | None) -> list[int]:
    """Lv = max(1, int(λv·N)) positions: the first ones (`prefix`) or a seeded random set (`random`)."""
    k = min(n, max(1, int(lambda_image * n)))
    if subset == "prefix":
        return list(range(k))
    if subset == "random":
        return sorted(torch.randperm(n, generator=generator)[:k].tolist())
    raise ValueError(f"image_subset must be 'prefix' or 'random', got {subset!r}")


def argmax_tokens(head: Head, z: torch.Tensor) -> list[int]:
    """Text prefix after a step: the argmax token of each optimised latent."""
    with torch.no_grad():
        return head(z).argmax(-1).tolist()


def sample_tokens(head: Head, z: torch.Tensor, generator: torch.Generator | None) -> list[int]:
    """Image prefix after a step: sampled from the fused distribution of each optimised latent."""
    with torch.no_grad():
        probs = torch.softmax(head(z), -1)
        return torch.multinomial(probs, 1, generator=generator)[:, 0].tolist()

"""T2I-CompBench's model-based scorers as critics: BLIP-VQA ("blip_vqa"), CLIPScore ("clip") and
the 2-D spatial score ("t2i_spatial").

T2I-CompBench (Karine-Huang/T2I-CompBench, MIT) scores each category with a different model:

- color, shape, texture: BLIP-VQA over spaCy noun chunks → `BlipVQACritic` (transformers BLIP,
  rule-based noun phrases);
- non_spatial: CLIPScore, the raw cosine of OpenAI CLIP ViT-B/32 → `ClipScoreCritic` (transformers CLIP);
- spatial: UniDet boxes and `determine_position` → `T2ISpatialCritic` (the same rule over GroundingDINO boxes);
- complex: 3-in-1 (UniDet, BLIP, CLIP by sub-file) → the mean of BLIP-VQA and CLIP, both required.

All three are *substitutions*, not bit-exact ports: scores follow T2I-CompBench's definitions but
will not reproduce its published numbers to the last digit (see each class). `t2i_compbench_critic`
maps a category to its critic. Weights load lazily on first use (or `load()`) and fail with
`WeightsUnavailableError` and the fix when they are neither cached nor downloadable; tests pass
already-built tiny models instead. Each critic has `score_batch`: one forward over up to `batch_size`
images (the spatial critic through its detector's `detect_batch`), equal to scoring each alone.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Sequence

import structlog
import torch
from PIL import Image

from milr.critics.base import Critique, PromptSpec, check_batch, check_parts
from milr.critics.geneval import Detection, detect_many
from milr.critics.mixer import Mixer
from milr.critics.vision import (
    DEFAULT_BATCH_SIZE,
    WEIGHTS_HELP,
    WeightsUnavailableError,
    _device,
    _Lazy,
    batches,
    load_pretrained,
)

log = structlog.get_logger(__name__)

DEFAULT_BLIP_VQA = "Salesforce/blip-vqa-base"
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
MAX_CHUNKS = 8  # T2I-CompBench's np_num: questions for the first 8 noun chunks, a missing one counts as 1
# T2I-CompBench reads the first answer token's scores at these ids of BLIP's BERT vocabulary. They are
# not used as constants here: the ids come from the loaded tokenizer, and `BlipVQACritic.load()` warns
# when default-sized weights disagree with them.
ORIGINAL_YES_NO_IDS = (2748, 2053)
BERT_VOCAB_SIZE = 30522  # bert-base-uncased, which BLIP's tokenizer extends with [DEC] and [ENC]


# ---------------------------------------------------------------------------------------------- noun phrases
# spaCy's noun chunks, minus these (BLIP_vqa.py's exclusion list, compared case-insensitively here)
DROPPED_CHUNKS = frozenset({"top", "the side", "the left", "the right"})
DETERMINERS = frozenset(
    "a an the this these those some many several few each every its their his her my our your "
    "one two three four five six seven eight nine ten".split()
)
# words that end a phrase and belong to none: prepositions, conjunctions, relative words
BREAK_WORDS = frozenset(
    "and or but nor with without on in of at by for from into onto upon to under over above below beneath "
    "underneath beside besides between behind near next against across along around among inside outside "
    "atop through throughout toward towards via like while which who whom whose that where when as than "
    "both either neither all then there here also".split()
)
# verbs that recur in T2I-CompBench's sentence prompts, in forms that are not nouns there ("stood", not "stand":
# "a book stand"); verbs followed by a determiner ("bowl beat the batter") are caught by a rule in `noun_phrases`
VERBS = frozenset(
    "is are was were be been being am has have had do does did sit sits sat sitting standing stood lying resting "
    "hangs hung hanging parked placed stacked mounted arranged attached kept held holds made shines shining "
    "flashes reads looks looked seems appears floated flowed led naps perches sparkled provided displayed "
    "attracted created used fascinated struggled waving".split()
)
# attribute words that coordinate inside one phrase: "a black and white cat", "a tan, clean bathroom"
ATTRIBUTES = frozenset(
    "red orange yellow green blue purple pink brown black white gray grey gold silver tan beige whitish "
    "big small large little long short tall narrow wide thin thick clean "
    "round square rectangular oval circular triangular cubic cylindrical spherical conical pyramidal pentagonal "
    "metallic wooden fluffy plastic leather glass fabric rubber".split()
)
COORDINATORS = frozenset({"and", ","})
_TOKEN = re.compile(r"[\w'’-]+(?:[:.]\w+)*|[^\w\s]")


def noun_phrases(prompt: str, max_chunks: int | None = MAX_CHUNKS) -> list[str]:
    """The prompt's noun phrases, a small rule-based stand-in for spaCy's `noun_chunks`.

    T2I-CompBench asks BLIP one question per spaCy (`en_core_web_sm`) noun chunk; spaCy is not a
    dependency here, and its prompts are simple enough for rules:

    - a phrase is a run of words between breaks: punctuation, prepositions and conjunctions
      ("with", "on", "in", "of", "and", ...; `BREAK_WORDS`) and common verbs (`VERBS`: "is", "sits", ...);
    - "and" or a comma between an attribute (`ATTRIBUTES`: colours, sizes, shapes, materials) and a
      word that is not a determiner does not break: "a black and white cat", "a tan, clean bathroom";
    - a determiner or number ("a", "the", "its", "two", ...) opens a new phrase, and the word just
      before it inside a run is taken for a verb and dropped ("bowl mix the batter" → "bowl", "the batter");
    - phrases are cut from the prompt as written, article included ("a red book"); phrases without a
      letter, of determiners only, or in T2I-CompBench's exclusion list ('top', 'the side', 'the left',
      'the right') are dropped; the first `max_chunks` (8, T2I-CompBench's `np_num`) are kept.

    "a green bench and a blue bowl" → ["a green bench", "a blue bowl"]; "A bathroom with white tile and
    a beige toilet." → ["A bathroom", "white tile", "a beige toilet"]. It has no part-of-speech tags,
    so an unlisted verb stays in its phrase ("The big house and the small cabin provided different
    types" gives "the small cabin provided different types", spaCy "the small cabin", "different types").
    """
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(prompt)]
    phrases: list[list[tuple[str, int, int]]] = []
    current: list[tuple[str, int, int]] = []

    def flush() -> None:
        if current:
            phrases.append(list(current))
            current.clear()

    def is_word(i: int) -> bool:
        low = tokens[i][0].lower()
        return tokens[i][0][0].isalnum() and low not in BREAK_WORDS and low not in VERBS

    for i, (token, _, _) in enumerate(tokens):
        low = token.lower()
        if not is_word(i):
            coordinated = (
                low in COORDINATORS
                and current
                and current[-1][0].lower() in ATTRIBUTES
                and i + 1 < len(tokens)
                and is_word(i + 1)
                and tokens[i + 1][0].lower() not in DETERMINERS
            )
            if not coordinated:
                flush()
            continue
        if low in DETERMINERS and current:
            current.pop()  # "holds a pink umbrella": a word right before a determiner is a verb
            flush()
        current.append(tokens[i])
    flush()
    out = []
    for words in phrases:
        text = prompt[words[0][1] : words[-1][2]]
        if not any(c.isalpha() for c in text) or all(w.lower() in DETERMINERS for w, _, _ in words):
            continue
        if text.lower() in DROPPED_CHUNKS:
            continue
        out.append(text)
    return out if max_chunks is None else out[:max_chunks]


# ---------------------------------------------------------------------------------------------- loading
def _from_pretrained(loader, name: str, what: str, **kwargs):
    """`vision.load_pretrained`, also turning the hub's "not a repo id" `ValueError` (a local path that
    does not exist) into `WeightsUnavailableError`."""
    from huggingface_hub.errors import HFValidationError

    try:
        return load_pretrained(loader, name, what, **kwargs)
    except HFValidationError as err:
        raise WeightsUnavailableError(WEIGHTS_HELP.format(what=what, name=name) + f" (loader said: {err})") from err


def _split_model_arg(model, model_name: str) -> tuple[object | None, str]:
    """`model` may be a built model or a hub id / local folder (then it replaces `model_name`)."""
    if isinstance(model, str | os.PathLike):
        return None, os.fspath(model)
    return model, model_name


def _abstain(name: str, error: str, started: float) -> Critique:
    return Critique(critic=name, error=error, seconds=time.perf_counter() - started)


def _is_blank(prompt) -> bool:
    return not isinstance(prompt, str) or not prompt.strip()


# ---------------------------------------------------------------------------------------------- BLIP-VQA
class BlipVQACritic(_Lazy):
    """T2I-CompBench's BLIP-VQA score (colour, shape, texture): the product over the prompt's noun
    phrases of P(yes) / (P(yes) + P(no)) for the question "{phrase}?".

    Substitutions, stated plainly:
    - The model is the **transformers port** of BLIP VQA (`Salesforce/blip-vqa-base`, converted from
      BLIP's `model_base_vqa_capfilt_large.pth`), run through `BlipForQuestionAnswering`'s own
      modules as its `generate` does (vision encoder → question encoder → one decoder step from
      the decoder start token); T2I-CompBench runs the original `.pth` in Salesforce's BLIP code.
    - Images are resized to the processor's size (384 px for the port); T2I-CompBench uses 480 px.
      `image_size=480` resizes to 480 and interpolates the position embeddings instead.
    - Noun phrases come from `noun_phrases`, a rule-based stand-in for spaCy's noun chunks.
    - Questions run batched by token length (see `yes_probabilities_batch`), so each answer equals
      asking its question alone; `score_batch` encodes up to `batch_size` images per forward and
      batches their questions together.

    P(yes) / (P(yes) + P(no)) = sigmoid(logit_yes - logit_no) of the first answer token, with the
    ids of "yes" and "no" from the loaded tokenizer (2748 and 2053 in BLIP's BERT vocabulary, the
    ids T2I-CompBench reads). A prompt without any noun phrase is asked whole ("{prompt}?") and
    `details["fallback"]` says so; an empty prompt abstains.

    Args:
        model (`BlipForQuestionAnswering` or `str`, *optional*): a built model (then pass `processor`),
            or a hub id / local folder loaded lazily; defaults to `model_name`.
        processor (`BlipProcessor`, *optional*): its image processor and BERT tokenizer.
        model_name (`str`, defaults to `"Salesforce/blip-vqa-base"`).
        device (`str`, *optional*): defaults to CUDA when available.
        max_chunks (`int`, defaults to 8): questions per prompt (T2I-CompBench's `np_num`).
        image_size (`int`, *optional*): square input size; None keeps the processor's.
        batch_size (`int`, defaults to 16): images per vision forward in `score_batch`.
        name (`str`, *optional*, defaults to `"blip_vqa"`).
    """

    name = "blip_vqa"

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        model_name: str = DEFAULT_BLIP_VQA,
        device: str | torch.device | None = None,
        max_chunks: int = MAX_CHUNKS,
        image_size: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
    ):
        super().__init__()
        model, self.model_name = _split_model_arg(model, model_name)
        if (model is None) != (processor is None):
            raise ValueError("pass both a built model and its processor, or neither (to load `model_name`)")
        if max_chunks < 1:
            raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
        self.model, self.processor, self.device = model, processor, _device(device)
        self.max_chunks, self.image_size, self.batch_size = max_chunks, image_size, batch_size
        self.name = name or self.name
        self.yes_no_ids: tuple[int, int] | None = None
        if model is not None:
            self.model = model.to(self.device).eval()
            self.model_name = getattr(model, "name_or_path", "") or "(built model)"
            self.yes_no_ids = self._answer_ids()
            self._loaded = True

    def _load(self) -> None:
        from transformers import BlipForQuestionAnswering, BlipProcessor

        self.model = _from_pretrained(BlipForQuestionAnswering, self.model_name, "BLIP-VQA")
        self.model = self.model.to(self.device).eval()
        self.processor = _from_pretrained(BlipProcessor, self.model_name, "BLIP-VQA")
        self.yes_no_ids = self._answer_ids()
        if len(self.processor.tokenizer) >= BERT_VOCAB_SIZE and self.yes_no_ids != ORIGINAL_YES_NO_IDS:
            log.warning(
                "blip_yes_no_ids_differ", model=self.model_name, ids=self.yes_no_ids, original=ORIGINAL_YES_NO_IDS
            )

    def _answer_ids(self) -> tuple[int, int]:
        tokenizer = self.processor.tokenizer
        ids = tuple(tokenizer.convert_tokens_to_ids(word) for word in ("yes", "no"))
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(f"the BLIP tokenizer has no single token for 'yes' and 'no' (got ids {ids})")
        return ids

    def questions(self, prompt: str) -> tuple[list[str], list[str], bool]:
        """(phrases, questions, fallback): one "{phrase}?" per noun phrase, else the whole prompt."""
        chunks = noun_phrases(prompt, self.max_chunks)
        if chunks:
            return chunks, [f"{c}?" for c in chunks], False
        whole = prompt.strip().rstrip(".!?").strip()
        return [whole], [f"{whole}?"], True

    def yes_probabilities(self, image: Image.Image, questions: Sequence[str]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) of the first answer token, per question about `image`."""
        return self.yes_probabilities_batch([image], [questions])[0]

    @torch.inference_mode()
    def yes_probabilities_batch(
        self, images: Sequence[Image.Image], questions: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Per image, P(yes) / (P(yes) + P(no)) of the first answer token for each of its questions.

        Each image is encoded once, `batch_size` images per vision forward. The questions of those
        images run in batches of equal token length, never padded: transformers' BLIP text model
        drops cross-attention masks (seen in 5.24: `BlipTextLayer` hands the mask to
        `BlipTextSelfAttention` as `attention_mask`, which it then replaces with its unset
        `encoder_attention_mask`), so the answer decoder would attend a padded question's padding.
        """
        if len(images) != len(questions):
            raise ValueError(f"need one list of questions per image, got {len(questions)} for {len(images)} images")
        questions = [list(q) for q in questions]
        out = [[math.nan] * len(q) for q in questions]
        asked = [i for i, q in enumerate(questions) if q]
        if not asked:
            return out
        self.load()
        for rows in batches(asked, self.batch_size):
            image_embeds = self._encode_images([images[i] for i in rows])
            pairs = [(r, k) for r, i in enumerate(rows) for k in range(len(questions[i]))]
            encoded = self.processor.tokenizer([questions[rows[r]][k] for r, k in pairs])["input_ids"]
            by_length: dict[int, list[int]] = {}
            for n, ids in enumerate(encoded):
                by_length.setdefault(len(ids), []).append(n)
            for group in by_length.values():
                probs = self._answer_yes([encoded[n] for n in group], image_embeds[[pairs[n][0] for n in group]])
                for n, p in zip(group, probs, strict=True):
                    r, k = pairs[n]
                    out[rows[r]][k] = p
        return out

    def _encode_images(self, images: list[Image.Image]) -> torch.Tensor:
        """[images, patches, D]: BLIP's vision encoder over one batch."""
        size = {"size": {"height": self.image_size, "width": self.image_size}} if self.image_size else {}
        pixels = self.processor.image_processor(
            images=[im.convert("RGB") for im in images], return_tensors="pt", **size
        )
        pixels = pixels["pixel_values"].to(self.device, self.model.dtype)
        return self.model.vision_model(
            pixel_values=pixels, interpolate_pos_encoding=self.image_size is not None
        ).last_hidden_state

    def _answer_yes(self, question_ids: list[list[int]], image_embeds: torch.Tensor) -> list[float]:
        """sigmoid(logit_yes - logit_no) of the first answer token, per question of one token length,
        each with its own image's embeddings (row i of `image_embeds`)."""
        model, (yes, no) = self.model, self.yes_no_ids
        ids = torch.tensor(question_ids, dtype=torch.long, device=self.device)
        mask = torch.ones_like(ids)
        question_embeds = model.text_encoder(
            input_ids=ids,
            attention_mask=mask,
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device),
        ).last_hidden_state
        # one decoder step from the decoder start token ([DEC]), as `BlipForQuestionAnswering.generate`
        start = torch.full((len(question_ids), 1), model.decoder_start_token_id, dtype=torch.long, device=self.device)
        logits = (
            model.text_decoder(input_ids=start, encoder_hidden_states=question_embeds, encoder_attention_mask=mask)
            .logits[:, -1]
            .float()
        )
        return torch.sigmoid(logits[:, yes] - logits[:, no]).tolist()

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]:
        """One verdict per image; blank prompts abstain, the others share the batched forwards."""
        started = time.perf_counter()
        images, prompts, _ = check_batch(images, prompts, specs)
        out: list[Critique | None] = [None] * len(images)
        asked = {}
        for i, prompt in enumerate(prompts):
            if _is_blank(prompt):
                out[i] = _abstain(self.name, f"BLIP-VQA needs a non-empty prompt, got {prompt!r}", started)
            else:
                asked[i] = self.questions(prompt)
        probs = self.yes_probabilities_batch([images[i] for i in asked], [q for _, q, _ in asked.values()])
        for (i, (chunks, questions, fallback)), p in zip(asked.items(), probs, strict=True):
            out[i] = self._verdict(chunks, questions, fallback, p, started)
        return out

    def _verdict(self, chunks, questions, fallback: bool, probs: list[float], started: float) -> Critique:
        if not all(math.isfinite(p) for p in probs):
            return _abstain(self.name, f"BLIP-VQA gave non-finite probabilities {probs}", started)
        score = math.prod(probs)
        verdict = Critique(
            critic=self.name,
            score=min(1.0, max(0.0, score)),
            rationale=" × ".join(f"P(yes | {q!r}) = {p:.3f}" for q, p in zip(questions, probs, strict=True)),
            details={
                "chunks": [
                    {"chunk": c, "question": q, "p_yes": p} for c, q, p in zip(chunks, questions, probs, strict=True)
                ],
                "fallback": fallback,
                "model": self.model_name,
                "yes_no_ids": list(self.yes_no_ids),
            },
            seconds=time.perf_counter() - started,
        )
        log.info("blip_vqa_scored", critic=self.name, score=verdict.score, n=len(questions), seconds=verdict.seconds)
        return verdict


# ---------------------------------------------------------------------------------------------- CLIPScore
class ClipScoreCritic(_Lazy):
    """T2I-CompBench's CLIPScore (non_spatial): the raw cosine of CLIP's image and prompt embeddings.

    As `CLIPScore_eval/CLIP_similarity.py` computes it: OpenAI CLIP ViT-B/32, neither ×100 nor the
    CLIPScore paper's 2.5 weight; here the **transformers port**
    (`openai/clip-vit-base-patch32`) with its processor (224 px, bicubic resize, centre crop, as
    OpenAI's `preprocess`). The score is the cosine clipped to [0, 1] (real cosines sit around 0.2–0.35);
    `details["cosine"]` keeps the raw value. Prompts longer than CLIP's 77 tokens are truncated
    (OpenAI's `clip.tokenize` would raise). T2I-CompBench's `--complex` option (adjectives dropped
    first) is not reproduced.

    Args:
        model (`CLIPModel` or `str`, *optional*): a built model (then pass `processor`), or a hub id /
            local folder loaded lazily; defaults to `model_name`.
        processor (`CLIPProcessor`, *optional*): its image processor and tokenizer.
        model_name (`str`, defaults to `"openai/clip-vit-base-patch32"`).
        device (`str`, *optional*): defaults to CUDA when available.
        batch_size (`int`, defaults to 16): images (and prompts) per forward in `score_batch`.
        name (`str`, *optional*, defaults to `"clip"`).

    A batch pads its prompts to the longest, which changes no cosine: CLIP's text attention is causal
    and the text is pooled at the end-of-text token, before any padding.
    """

    name = "clip"

    def __init__(
        self,
        model=None,
        processor=None,
        *,
        model_name: str = DEFAULT_CLIP,
        device: str | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        name: str | None = None,
    ):
        super().__init__()
        model, self.model_name = _split_model_arg(model, model_name)
        if (model is None) != (processor is None):
            raise ValueError("pass both a built model and its processor, or neither (to load `model_name`)")
        self.model, self.processor, self.device = model, processor, _device(device)
        self.batch_size = batch_size
        self.name = name or self.name
        if model is not None:
            self.model = model.to(self.device).eval()
            self.model_name = getattr(model, "name_or_path", "") or "(built model)"
            self._loaded = True

    def _load(self) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self.model = _from_pretrained(CLIPModel, self.model_name, "CLIP").to(self.device).eval()
        self.processor = _from_pretrained(CLIPProcessor, self.model_name, "CLIP")

    def cosine(self, image: Image.Image, prompt: str) -> float:
        """The cosine of CLIP's L2-normalised image and text embeddings."""
        return self.cosines([image], [prompt])[0]

    @torch.inference_mode()
    def cosines(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        """Per (image, prompt) pair, the cosine of their embeddings; `batch_size` pairs per forward."""
        if len(images) != len(prompts):
            raise ValueError(f"need one prompt per image, got {len(prompts)} for {len(images)} images")
        if not images:
            return []
        self.load()
        out: list[float] = []
        for rows in batches(range(len(images)), self.batch_size):
            out.extend(self._cosines([images[i] for i in rows], [prompts[i] for i in rows]))
        return out

    def _cosines(self, images: list[Image.Image], prompts: list[str]) -> list[float]:
        rgb = [image.convert("RGB") for image in images]
        pixels = self.processor.image_processor(images=rgb, return_tensors="pt")["pixel_values"]
        max_length = self.model.config.text_config.max_position_embeddings
        tokens = self.processor.tokenizer(
            prompts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(self.device)
        image_feats = _features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype)))
        text_feats = _features(
            self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        )
        image_feats = torch.nn.functional.normalize(image_feats.float(), dim=-1)
        text_feats = torch.nn.functional.normalize(text_feats.float(), dim=-1)
        return (image_feats * text_feats).sum(-1).tolist()

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]:
        """One verdict per image; blank prompts abstain, the others share the batched forwards."""
        started = time.perf_counter()
        images, prompts, _ = check_batch(images, prompts, specs)
        out: list[Critique | None] = [None] * len(images)
        asked = []
        for i, prompt in enumerate(prompts):
            if _is_blank(prompt):
                out[i] = _abstain(self.name, f"CLIPScore needs a non-empty prompt, got {prompt!r}", started)
            else:
                asked.append(i)
        cosines = self.cosines([images[i] for i in asked], [prompts[i] for i in asked])
        for i, cosine in zip(asked, cosines, strict=True):
            out[i] = self._verdict(cosine, started)
        return out

    def _verdict(self, cosine: float, started: float) -> Critique:
        if not math.isfinite(cosine):
            return _abstain(self.name, f"CLIP gave a non-finite cosine {cosine}", started)
        verdict = Critique(
            critic=self.name,
            score=min(1.0, max(0.0, cosine)),
            rationale=f"CLIP cosine(image, prompt) = {cosine:.4f}",
            details={"cosine": cosine, "model": self.model_name},
            seconds=time.perf_counter() - started,
        )
        log.info("clip_scored", critic=self.name, score=verdict.score, seconds=verdict.seconds)
        return verdict


def _features(out) -> torch.Tensor:
    """Projected features: a tensor in transformers 4.x, an output with `pooler_output` in 5.x."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


# ---------------------------------------------------------------------------------------------- categories
# ---------------------------------------------------------------------------------------------- spatial
# T2I-CompBench's 2-D spatial relations, in the order its evaluator looks for them in a prompt.
SPATIAL_RELATIONS = (
    "on side of",
    "next to",
    "near",
    "on the left of",
    "on the right of",
    "on the bottom of",
    "on the top of",
    "on top of",
)
NEAR_RELATIONS = ("next to", "on side of", "near")
PERSON_WORDS = {"girl", "boy", "man", "woman"}  # T2I-CompBench detects these as "person"
IOU_THRESHOLD = 0.1
DISTANCE_PX = 150  # T2I-CompBench's "near" distance, in pixels of UniDet's resized frame (below)
# UniDet_eval/experts/model_bank.py resizes every image with torchvision's `Resize(size=479, max_size=480)`
# before detection, and UniDet reports its boxes in that frame: the 150 px are measured there.
UNIDET_SHORT_SIDE = 479
UNIDET_MAX_SIDE = 480
# the lowest box confidence that counts as a detection here. UniDet keeps boxes down to 0.1
# (`unified_roi_heads.py`); 0.35 is GroundingDINO's own default box threshold, kept without a
# measurement on real weights (README, "Real critics", says what measuring it needs)
SPATIAL_BOX_THRESHOLD = 0.35
ARTICLES = ("a ", "an ", "the ")


def spatial_parts(prompt: str) -> tuple[str, str, str] | None:
    """(first object, relation, second object) of a T2I-CompBench spatial prompt, or None.

    T2I-CompBench takes the first and last nouns (spaCy); its spatial prompts are all "X <relation> Y",
    so here the objects are the text on each side of the relation, without article (phrases such as
    "traffic light" stay whole, which GroundingDINO reads), and girl/boy/man/woman become "person"."""
    text = prompt.strip().rstrip(".").lower()
    relation = next((r for r in SPATIAL_RELATIONS if f" {r} " in f" {text} "), None)
    if relation is None:
        return None
    left, _, right = text.partition(f" {relation} ")
    objects = []
    for side in (left, right):
        side = side.strip()
        for article in ARTICLES:
            side = side.removeprefix(article)
        if not side:
            return None
        objects.append("person" if side in PERSON_WORDS else side)
    return objects[0], relation, objects[1]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    # T2I-CompBench's IoU of continuous boxes; GenEval's `compute_iou` adds a pixel on each side.
    overlap_x = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    overlap_y = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = overlap_x * overlap_y
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def unidet_frame(width: int, height: int) -> tuple[int, int]:
    """(width, height) of UniDet's resized frame for a `width` × `height` image: torchvision's
    `Resize(size=479, max_size=480)` (shorter side to 479, the longer capped at 480, both truncated
    to integers as torchvision does). A 512 × 512 image becomes 479 × 479, 512 × 768 becomes 320 × 480."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    short, long = sorted((width, height))
    new_short, new_long = UNIDET_SHORT_SIDE, int(UNIDET_SHORT_SIDE * long / short)
    if new_long > UNIDET_MAX_SIDE:
        new_short, new_long = int(UNIDET_MAX_SIDE * new_short / new_long), UNIDET_MAX_SIDE
    # torchvision refuses a side that truncates to 0 (aspect ratios beyond 240:1); one pixel keeps a score
    new_short = max(new_short, 1)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def to_unidet_frame(box, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """`box` (x1, y1, x2, y2 in pixels of an image of `size` = (width, height)) in UniDet's frame."""
    width, height = size
    frame_w, frame_h = unidet_frame(width, height)
    sx, sy = frame_w / width, frame_h / height
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def position_score(relation: str, box1, box2, *, distance_px: float = DISTANCE_PX) -> float:
    """T2I-CompBench's soft score that `box1` stands in `relation` to `box2` (boxes x1, y1, x2, y2, y down).

    Directional relations need the dominant axis and the right sign of the centre offset, then score 1
    when the boxes barely overlap (IoU < 0.1) and 0.1 / IoU otherwise; "near" relations score 1 when
    either centre offset is under `distance_px`, else distance_px / the larger offset. "on top of"
    scores 0, as in T2I-CompBench (its evaluator lists it but scores only "on the top of"). The boxes
    must be in the frame `distance_px` is meant in: UniDet's for T2I-CompBench (`to_unidet_frame`)."""
    dx = (box2[0] + box2[2]) / 2 - (box1[0] + box1[2]) / 2
    dy = (box2[1] + box2[3]) / 2 - (box1[1] + box1[3]) / 2
    if relation in NEAR_RELATIONS:
        if abs(dx) < distance_px or abs(dy) < distance_px:
            return 1.0
        return distance_px / max(abs(dx), abs(dy))
    wanted = {
        "on the left of": (dx > 0 and abs(dx) > abs(dy)),
        "on the right of": (dx < 0 and abs(dx) > abs(dy)),
        "on the top of": (dy > 0 and abs(dy) > abs(dx)),
        "on the bottom of": (dy < 0 and abs(dy) > abs(dx)),
    }
    if not wanted.get(relation, False):
        return 0.0
    iou = _iou(box1, box2)
    return 1.0 if iou < IOU_THRESHOLD else IOU_THRESHOLD / iou


class T2ISpatialCritic:
    """T2I-CompBench's 2-D spatial score with GroundingDINO in place of UniDet (no transformers port).

    Score = 0.25·conf1 + 0.25·conf2 + 0.5·position when both objects are found (their most confident
    boxes), 0.25·conf of the one found otherwise, and any score under 0.5 becomes 0 — T2I-CompBench's
    rule. Positions are judged in UniDet's frame, as upstream: the boxes are scaled to the image
    resized by `Resize(size=479, max_size=480)` (`unidet_frame`) before the rule runs, so "near"
    means a centre offset under 150 px of that frame (about 160 px of a 512 px image).
    Substitutions, stated: the detector (GroundingDINO reads open phrases; UniDet has fixed
    classes), detections below `box_threshold` (0.35; UniDet keeps 0.1) count as not found, and
    objects are whole phrases (see `spatial_parts`).

    Args:
        detector (`callable`, *optional*): `(image, classes) -> list[Detection]`; defaults to
            `GroundingDinoDetector()` (`IDEA-Research/grounding-dino-tiny`, loaded lazily).
        box_threshold (`float`, defaults to 0.35): lowest confidence that counts as a detection.

    `score_batch` detects every spatial prompt's two objects in one `detect_batch` call when the
    detector has it.
    """

    name = "t2i_spatial"

    def __init__(
        self, detector=None, *, box_threshold: float = SPATIAL_BOX_THRESHOLD, device=None, name: str | None = None
    ):
        if detector is None:
            from milr.critics.vision import GroundingDinoDetector

            detector = GroundingDinoDetector(device=device)
        self.detector, self.box_threshold = detector, box_threshold
        self.name = name or self.name

    def check(self) -> None:
        """Cheap pre-flight: the default models' weights are on disk or downloadable (`WeightsUnavailableError`)."""
        check_parts(self.detector)

    def __call__(self, image: Image.Image, prompt: str, spec: PromptSpec | None = None) -> Critique:
        return self.score_batch([image], [prompt], [spec])[0]

    def score_batch(
        self, images: Sequence[Image.Image], prompts: Sequence[str], specs: Sequence[PromptSpec | None]
    ) -> list[Critique]:
        """One verdict per image; prompts outside the spatial grammar abstain, the others are detected together."""
        started = time.perf_counter()
        images, prompts, _ = check_batch(images, prompts, specs)
        out: list[Critique | None] = [None] * len(images)
        asked: dict[int, tuple[str, str, str]] = {}
        for i, prompt in enumerate(prompts):
            parts = spatial_parts(prompt)
            if parts is None:
                relations = ", ".join(SPATIAL_RELATIONS)
                error = f"not a T2I-CompBench spatial prompt (X <relation> Y; {relations})"
                out[i] = _abstain(self.name, error, started)
            else:
                asked[i] = parts
        found = detect_many(self.detector, [images[i] for i in asked], [[p[0], p[2]] for p in asked.values()])
        for (i, parts), detections in zip(asked.items(), found, strict=True):
            out[i] = self._verdict(images[i], parts, detections, started)
        return out

    def _verdict(self, image: Image.Image, parts: tuple[str, str, str], detections, started: float) -> Critique:
        obj1, relation, obj2 = parts
        best: dict[str, Detection] = {}
        for det in detections:
            if det.score >= self.box_threshold and (det.cls not in best or det.score > best[det.cls].score):
                best[det.cls] = det
        found1, found2 = best.get(obj1), best.get(obj2)
        position = None
        if found1 is not None and found2 is not None:
            box1, box2 = (to_unidet_frame(d.box, image.size) for d in (found1, found2))
            position = position_score(relation, box1, box2)
            raw = 0.25 * found1.score + 0.25 * found2.score + 0.5 * position
        else:
            raw = 0.25 * next((d.score for d in (found1, found2) if d is not None), 0.0)
        score = raw if raw >= 0.5 else 0.0
        details = {
            "objects": [obj1, obj2],
            "relation": relation,
            "confidences": [None if d is None else round(d.score, 4) for d in (found1, found2)],
            "position": position,
            "unidet_frame": list(unidet_frame(*image.size)),  # where the position was judged
            "raw": raw,
        }
        rationale = f"{obj1} {relation} {obj2}: " + (
            f"both found, position {position:.2f}" if position is not None else "not both found"
        )
        return Critique(
            critic=self.name, score=score, rationale=rationale, details=details, seconds=time.perf_counter() - started
        )


CATEGORIES: tuple[str, ...] = ("color", "shape", "texture", "non_spatial", "complex", "spatial")
SUPPORTED: tuple[str, ...] = CATEGORIES


def t2i_compbench_critic(
    category: str,
    *,
    device: str | torch.device | None = None,
    blip_model: str = DEFAULT_BLIP_VQA,
    clip_model: str = DEFAULT_CLIP,
):
    """The critic T2I-CompBench scores `category` with ("non-spatial" and any case are accepted).

    - color, shape, texture → `BlipVQACritic` ("blip_vqa");
    - non_spatial → `ClipScoreCritic` ("clip");
    - complex → `Mixer` ("t2i_complex") of BLIP-VQA and CLIP, equal weights, abstaining when either
      abstains. T2I-CompBench's 3-in-1 uses (UniDet + BLIP)/2 for its spatial sub-file,
      (CLIP + BLIP)/2 for its action sub-file and the mean of all three otherwise: UniDet is left out
      here, so this is its action-sub-file rule for every complex prompt;
    - spatial → `T2ISpatialCritic` ("t2i_spatial"): T2I-CompBench's rule over GroundingDINO boxes,
      UniDet having no transformers port (`DetectorCritic` would not do: it reads GenEval's grammar
      and four relations only, not "next to", "near" or "on side of").

    Unknown categories raise `ValueError` listing the valid ones. Weights load lazily on first use.
    """
    key = category.strip().lower().replace("-", "_").replace(" ", "_") if isinstance(category, str) else category
    if key in ("color", "shape", "texture"):
        return BlipVQACritic(model_name=blip_model, device=device)
    if key == "non_spatial":
        return ClipScoreCritic(model_name=clip_model, device=device)
    if key == "complex":
        critics = [
            BlipVQACritic(model_name=blip_model, device=device),
            ClipScoreCritic(model_name=clip_model, device=device),
        ]
        return Mixer(critics, policy="fail", name="t2i_complex")
    if key == "spatial":
        return T2ISpatialCritic(device=device)
    raise ValueError(
        f"unknown T2I-CompBench category {category!r}; valid: {', '.join(CATEGORIES)} "
        f"(critics for {', '.join(SUPPORTED)})"
    )

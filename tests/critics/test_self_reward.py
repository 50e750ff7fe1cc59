"""SelfReward end to end on a tiny random Janus (real transformers classes), plus its abstentions."""

from __future__ import annotations

import pytest
from PIL import Image

from milr import prompts
from milr.critics import Critic, SelfReward


def test_self_reward_is_janus_yes_probability(mug):
    critic = SelfReward(mug)
    assert isinstance(critic, Critic) and critic.name == "self"
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    critique = critic(image, "a photo of a red cat")
    question = critique.details["question"]
    assert '"a photo of a red cat"' in question and "{prompt}" not in question
    assert question == prompts.load("self_reward").replace("{prompt}", "a photo of a red cat")
    assert 0.0 < critique.score < 1.0
    assert critique.score == pytest.approx(mug.understand(image, question))
    other = critic(Image.new("RGB", (32, 32), (0, 0, 255)), "a photo of a red cat")
    assert other.score != pytest.approx(critique.score)  # the image really reaches the model


class FakeMug:
    def __init__(self, answer):
        self.answer = answer

    def understand(self, image, question):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    "answer, error",
    [(ValueError("model 'x' has no image processor"), "no image processor"), (float("nan"), "not a probability")],
)
def test_self_reward_abstains_when_the_model_cannot_answer(answer, error):
    critique = SelfReward(FakeMug(answer))(Image.new("RGB", (8, 8)), "a cat")
    assert critique.score is None and error in critique.error


def test_other_question_files():
    with pytest.raises(FileNotFoundError, match="no prompt file"):
        SelfReward(FakeMug(0.5), question_prompt="no_such_prompt")

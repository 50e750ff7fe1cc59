"""`check_critic`: the cheap pre-flight check run before any decode or trace folder, naming the
critic and the fix (an API key, a reachable `base_url`; a Mixer checks each of its critics)."""

from __future__ import annotations

import socket

import openai
import pytest

from milr.critics import Mixer, OpenAIJudge, UnifiedReward, WiseJudge
from milr.critics.base import CheckableCritic, CriticCheckError, Critique, check_critic

KEY = "sk-test-0123456789abcdefSECRET"  # fake, as in test_openai_judge


@pytest.fixture
def listening():
    """The URL of a loopback port that accepts connections (nothing is ever sent)."""
    sock = socket.create_server(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()


@pytest.fixture
def closed_port():
    """A loopback port nobody listens on (connections are refused at once)."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


class Plain:
    name = "plain"

    def __call__(self, image, prompt, spec=None):
        return Critique(critic=self.name, score=1.0)


def test_a_judge_without_a_key_names_itself_and_the_fix(no_env):
    with pytest.raises(CriticCheckError) as err:
        check_critic(OpenAIJudge())
    assert str(err.value) == "critic gpt4o: OPENAI_API_KEY is not set; export it or pass api_key="
    assert err.value.critic == "gpt4o"
    with pytest.raises(CriticCheckError, match="critic wise: OPENAI_API_KEY is not set"):
        check_critic(WiseJudge())


def test_a_judge_with_a_key_and_openais_own_api_passes_without_network(no_env, monkeypatch):
    check_critic(OpenAIJudge(api_key=KEY))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    check_critic(OpenAIJudge(mode="graded"))
    check_critic(OpenAIJudge(base_url="https://api.openai.com/v1"))


def test_a_reachable_base_url_passes_and_an_unreachable_one_is_named(no_env, listening, closed_port):
    check_critic(OpenAIJudge(api_key=KEY, base_url=listening))
    check_critic(UnifiedReward(base_url=listening))  # a local server: the key defaults to "EMPTY"
    with pytest.raises(CriticCheckError) as err:
        check_critic(UnifiedReward(base_url=f"http://127.0.0.1:{closed_port}/v1", name="local"))
    message = str(err.value)
    assert message.startswith(f"critic local: cannot reach the server at http://127.0.0.1:{closed_port} (")
    assert message.endswith("start it, or pass base_url= of a running one")


def test_the_reachability_message_never_shows_credentials_in_the_url(no_env, closed_port):
    judge = OpenAIJudge(api_key=KEY, base_url=f"http://user:hunter2hunter2@127.0.0.1:{closed_port}/v1")
    with pytest.raises(CriticCheckError) as err:
        check_critic(judge)
    assert "hunter2" not in str(err.value) and KEY not in str(err.value)


def test_bad_base_urls_are_named(no_env):
    with pytest.raises(CriticCheckError, match="base_url must be an http\\(s\\) URL"):
        check_critic(OpenAIJudge(api_key=KEY, base_url="localhost:8000/v1"))


def test_a_server_judge_without_base_url_says_where_to_point_it(no_env, monkeypatch, listening):
    with pytest.raises(CriticCheckError, match="critic unified: no base_url: .* pass base_url='http://host:8000/v1'"):
        check_critic(UnifiedReward())
    monkeypatch.setenv("OPENAI_BASE_URL", listening)  # the SDK's own variable counts
    check_critic(UnifiedReward())


def test_an_injected_client_needs_no_key_but_its_server_is_checked(no_env, listening, closed_port):
    check_critic(OpenAIJudge(client=openai.OpenAI(api_key=KEY, base_url=listening)))
    dead = openai.OpenAI(api_key=KEY, base_url=f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(CriticCheckError, match="cannot reach"):
        check_critic(OpenAIJudge(client=dead))


def test_a_mixer_checks_every_critic_and_names_each_broken_one(no_env, closed_port):
    mixer = Mixer(
        [OpenAIJudge(name="gpt"), UnifiedReward(base_url=f"http://127.0.0.1:{closed_port}/v1"), Plain()],
        name="mix",
    )
    assert isinstance(mixer, CheckableCritic)
    with pytest.raises(CriticCheckError) as err:
        check_critic(mixer)
    message = str(err.value)
    assert message.startswith("critic mix: critic gpt: OPENAI_API_KEY is not set")
    assert "; critic unified: cannot reach the server" in message and "plain" not in message
    with pytest.raises(CriticCheckError, match="^critic gpt: OPENAI_API_KEY"):  # one broken: its own error
        check_critic(Mixer([OpenAIJudge(name="gpt"), Plain()]))
    check_critic(Mixer([Plain(), OpenAIJudge(api_key=KEY)]))
    check_critic(Mixer([Mixer([Plain()], name="inner")]))


def test_critics_without_check_pass_and_non_critics_are_a_type_error():
    assert not isinstance(Plain(), CheckableCritic)
    check_critic(Plain())
    with pytest.raises(TypeError, match="float is not a critic"):
        check_critic(0.5)

    class NoCall:
        name = "x"

    with pytest.raises(TypeError, match="NoCall is not a critic"):
        check_critic(NoCall())


def test_any_exception_from_a_check_becomes_a_check_error_naming_the_critic():
    class Fussy(Plain):
        name = "fussy"

        def check(self):
            raise FileNotFoundError("weights.safetensors is missing")

    with pytest.raises(CriticCheckError, match="^critic fussy: FileNotFoundError: weights.safetensors is missing$"):
        check_critic(Fussy())


# --------------------------------------------------------------------------- weights
NOT_CACHED = "milr-tests/no-such-model"  # a hub id no cache holds


def test_model_critics_check_their_weights_are_on_disk_or_downloadable(monkeypatch, tmp_path):
    from milr.critics import BlipVQACritic, DetectorCritic, GenEvalOracle, T2ISpatialCritic
    from milr.critics.vision import ClipColorClassifier, GroundingDinoDetector, Mask2FormerDetector

    def no_colors(*args):
        return []

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    critics = [
        DetectorCritic(GroundingDinoDetector(model_name=NOT_CACHED), no_colors),
        GenEvalOracle(Mask2FormerDetector(model_name=NOT_CACHED), ClipColorClassifier(model_name=NOT_CACHED)),
        T2ISpatialCritic(GroundingDinoDetector(model_name=NOT_CACHED)),
        BlipVQACritic(model_name=NOT_CACHED),
    ]
    for critic in critics:
        check_critic(critic)  # online: downloaded on first use
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for critic in critics:
        with pytest.raises(CriticCheckError) as err:
            check_critic(critic)
        message = str(err.value)
        assert message.startswith(f"critic {critic.name}: WeightsUnavailableError: ")
        assert f"'{NOT_CACHED}' are not available here" in message and "hf download" in message
        assert "not in the local hub cache and the hub is off" in message


def test_local_model_folders_are_checked_and_built_models_pass(monkeypatch, tmp_path):
    from milr.critics import DetectorCritic
    from milr.critics.vision import ClipColorClassifier, GroundingDinoDetector
    from tests.critics.conftest import tiny_clip

    folder = tmp_path / "clip"
    folder.mkdir()
    check_critic(DetectorCritic(GroundingDinoDetector(model_name=str(folder)), ClipColorClassifier(*tiny_clip())))
    missing = DetectorCritic(lambda image, classes: [], ClipColorClassifier(model_name=str(tmp_path / "nope")))
    with pytest.raises(CriticCheckError, match="critic detector: WeightsUnavailableError: .*there is no folder"):
        check_critic(missing)

"""`autocoa chat`: the streamed view (styles, budget lines, imagined results), both
environments side by side, the interactive loop, and the `chat` / `serve` commands wired to a
tiny saved model (random weights: here the wiring, not the answers)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from autocoa.agent.config import AgentConfig
from autocoa.cli import app
from autocoa.cli.chat_session import ChatSession
from tests.agent_helpers import FakeSearch
from tests.serve_helpers import echo_engine

runner = CliRunner()
CYAN, YELLOW, GREEN = "\x1b[36m", "\x1b[1;33m", "\x1b[1;32m"


def strip(ansi: str) -> str:
    return Text.from_ansi(ansi).plain


def feed(*lines: str):
    """A ``read`` that returns ``lines``, then raises EOFError (end of input)."""
    it = iter(lines)

    def read(_prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return read


def session(tokenizer, env="real"):
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=200)
    return ChatSession(echo_engine(tokenizer, [FakeSearch()]), AgentConfig(), console, env=env), out


def test_stream_styles_segments_and_shows_the_budget(tokenizer):
    s, out = session(tokenizer)
    (r,) = s.ask("Where is Varnelo?")
    text = out.getvalue()
    assert r.trajectory.answer == "Varnelo"
    assert (
        f"{CYAN}<think>" in text
        and f"{CYAN}l" in text
        and f"{YELLOW}<search>" in text
        and f"{GREEN}<answer>" in text
        and f"{GREEN}Varnelo" in text
    )
    plain = strip(text)
    assert "look up Varnelo" in plain and "Doc 1 (Title: Varnelo) about Varnelo</result>" in plain
    assert "↳ actions 1/8 · real tool calls 1 · tokens" in plain
    assert "answer: Varnelo" in plain and "finish answer" in plain and "[imagined]" not in plain


def test_simulated_and_both_side_by_side(tokenizer):
    s, out = session(tokenizer, env="simulated")
    s.ask("Where is Osmira?")
    plain = strip(out.getvalue())
    assert "[imagined] <result> Osmira is imagined </result>" in plain and "real tool calls 0" in plain
    s, out = session(tokenizer, env="both")
    real, sim = s.ask("Where is Osmira?")
    assert real.n_tool_calls == 1 and sim.n_tool_calls == 0 and sim.trajectory.answer == "Osmira"
    plain = strip(out.getvalue())
    assert "real: tools run" in plain and "simulated: the model imagines the results" in plain
    assert "Doc 1 (Title: Osmira)" in plain and "[imagined]" in plain
    with pytest.raises(ValueError, match="runs real tools"):
        ChatSession(echo_engine(tokenizer), AgentConfig(), env="both")


def test_interactive_loop_commands_and_quit(tokenizer):
    s, out = session(tokenizer)
    read = feed("", "/env simulated", "/env nowhere", "/what", "Where is Lumora?", "/quit", "Where is Kesh?")
    assert s.run(read=read) == 1
    plain = strip(out.getvalue())
    assert "environment: simulated" in plain and "env 'nowhere'" in plain and "Commands:" in plain
    assert "answer: Lumora" in plain and "Kesh" not in plain
    # end of input ends the session too, and the session's tool calls are summed up
    s, out = session(tokenizer)
    assert s.run(read=feed("Where is Pelto?")) == 1
    assert "tools this session: search 1 calls (0 errors, 0 timeouts)" in out.getvalue()


@pytest.fixture
def saved(saved_agent):
    return saved_agent


def test_chat_command_one_shot_and_interactive(saved):
    base = ["chat", "--model", str(saved / "model"), "--config", str(saved / "agent.yaml"), "--device", "cpu"]
    res = runner.invoke(app, [*base, "--index", str(saved / "index"), "--question", "Where is Varnelo?"])
    assert res.exit_code == 0, res.output
    assert "answer:" in res.output and "tokens" in res.output and "/40" in res.output
    res = runner.invoke(app, [*base, "--env", "simulated"], input="Where?\nWho?\n/quit\n")
    assert res.exit_code == 0, res.output
    assert res.output.count("answer:") == 2 and "real tool calls 0" in res.output
    res = runner.invoke(app, [*base, "--index", str(saved / "index"), "--env", "both", "--question", "Where?"])
    assert res.exit_code == 0 and "simulated: the model imagines" in res.output
    res = runner.invoke(app, base)
    assert res.exit_code != 0 and "needs --index" in str(res.exception)
    res = runner.invoke(app, [*base, "--env", "nowhere"])
    assert res.exit_code != 0 and "choose one of" in str(res.exception)


def test_serve_command_builds_the_app(saved, monkeypatch):
    import uvicorn

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    args = ["serve", "--model", str(saved / "model"), "--config", str(saved / "agent.yaml"), "--env", "simulated"]
    res = runner.invoke(app, [*args, "--device", "cpu", "--max-tokens", "64", "--batch-wait-ms", "1"])
    assert res.exit_code == 0, res.output
    assert started["host"] == "127.0.0.1" and "serving model at http://127.0.0.1:8000" in res.output
    with TestClient(started["app"], base_url="http://127.0.0.1") as c:
        r = c.post("/v1/chat/completions", json={"model": "model", "messages": [{"role": "user", "content": "Where?"}]})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 40
        r = c.post(
            "/v1/chat/completions",
            json={"model": "model", "messages": [{"role": "user", "content": "x"}], "max_tokens": 65},
        )
        assert r.status_code == 400 and "at most 64" in r.json()["error"]["message"]
    res = runner.invoke(app, ["serve", "--model", str(saved / "model")])
    assert res.exit_code != 0 and "needs --index" in str(res.exception)

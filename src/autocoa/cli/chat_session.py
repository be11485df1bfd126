"""The interactive terminal session of ``autocoa chat``: ask questions, watch the agent work.

Each answer streams as the engine decodes it, one style per segment (the styles of
:func:`autocoa.display.trajectory_view`): reasoning, each action, its result (marked
``[imagined]`` when the model wrote it itself), the answer; after each result a dim line
shows the budget spent (actions, real tool calls, tokens). ``env="both"`` runs the question
in the real and the simulated environment and shows the two trajectories side by side, which
is how one sees how well the model's world model imagines what search would return.

Each question is answered on its own (the agent is trained on single questions, not on
dialogues). Commands: ``/env real|simulated|both``, ``/help``, ``/quit`` (or end of input).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from autocoa.agent.config import AgentConfig
from autocoa.agent.engine import Engine
from autocoa.agent.prompts import format_prompt
from autocoa.agent.state import Rollout
from autocoa.display import SEGMENT_STYLES, trajectory_view
from autocoa.serve.stream import TokenStream
from autocoa.tags import OBSERVATION, Kind, close_tag, open_tag

ENVS = ("real", "simulated", "both")
HELP = "Ask a question. Commands: /env real|simulated|both, /help, /quit (or Ctrl-D)."


def budget_line(r: Rollout, cfg: AgentConfig) -> str:
    tokens = f"tokens {len(r.ids)}/{cfg.max_new_tokens}"
    return f"actions {r.n_actions}/{cfg.max_actions} · real tool calls {r.n_tool_calls} · {tokens}"


class ChatSession:
    """Answers questions with ``engine`` under ``cfg`` and draws them on ``console``."""

    def __init__(self, engine: Engine, cfg: AgentConfig, console: Console | None = None, env: str = "real"):
        self.engine, self.cfg, self.console = engine, cfg.model_copy(update={"n": 1}), console or Console()
        self.env = env
        self._check_env(env)

    def _check_env(self, env: str) -> None:
        if env not in ENVS:
            raise ValueError(f"env {env!r}: choose one of {', '.join(ENVS)}")
        if env != "simulated" and self.engine.toolbox is None:
            raise ValueError(f"env {env!r} runs real tools: give an index or a retriever (or use simulated)")

    def ask(self, question: str) -> list[Rollout]:
        """Answer one question: streamed, or in both environments side by side."""
        if self.env == "both":
            return self.compare(question)
        return [self.stream(question, self.env)]

    # -- one environment, streamed -----------------------------------------------------
    def stream(self, question: str, env: str) -> Rollout:
        cfg = self.cfg.model_copy(update={"env": env})
        stream = TokenStream(self.engine.decode)
        opener, closer = open_tag(OBSERVATION), close_tag(OBSERVATION)

        def on_step(rollouts: list[Rollout]) -> None:
            (r,) = rollouts
            for kind, text in stream.update(rollouts).get(r.index, []):
                if kind is Kind.OBSERVATION and text.startswith(opener) and env == "simulated":
                    self.console.print(Text("[imagined] ", style="italic magenta"), end="")
                self.console.print(Text(text, style=SEGMENT_STYLES[kind]), end="", soft_wrap=True)
                if kind is Kind.OBSERVATION and text.endswith(closer):
                    self.console.print(Text(f"\n  ↳ {budget_line(r, cfg)}", style="dim"))

        (r,) = self.engine.generate([self._prompt(question)], cfg, on_step=on_step)
        self.console.print()
        self.console.print(self._summary(r, cfg), highlight=False)
        return r

    def _summary(self, r: Rollout, cfg: AgentConfig) -> Text:
        assert r.trajectory is not None
        out = Text()
        out.append("answer: ", style="dim")
        out.append(
            r.trajectory.answer if r.trajectory.answer is not None else "(none)", style=SEGMENT_STYLES[Kind.ANSWER]
        )
        out.append(f"  [{budget_line(r, cfg)} · finish {r.finish}", style="dim")
        if r.forced_answer:
            out.append(" · answer forced by the budget", style="dim")
        if not r.trajectory.well_formed:
            out.append(f" · malformed: {r.trajectory.reason}", style="yellow")
        out.append("]", style="dim")
        return out

    # -- both environments, side by side -----------------------------------------------
    def compare(self, question: str) -> list[Rollout]:
        rollouts = []
        for env in ("real", "simulated"):
            cfg = self.cfg.model_copy(update={"env": env})
            self.console.print(Text(f"running in the {env} environment…", style="dim"))
            (r,) = self.engine.generate([self._prompt(question)], cfg)
            rollouts.append(r)
        table = Table(title=question, show_lines=True, expand=True)
        table.add_column("real: tools run")
        table.add_column("simulated: the model imagines the results")
        table.add_row(
            *(
                trajectory_view(r.trajectory, simulated=env == "simulated")
                for r, env in zip(rollouts, ("real", "simulated"), strict=True)
            )
        )
        table.add_row(*(self._summary(r, self.cfg) for r in rollouts))
        self.console.print(table)
        return rollouts

    def _prompt(self, question: str) -> str:
        return format_prompt(question, self.engine.tokenizer, self.engine.tags)

    # -- the loop ------------------------------------------------------------------------
    def run(self, read: Callable[[str], str] | None = None) -> int:
        """Read questions until ``/quit`` or end of input; returns how many were answered."""
        read = read or self.console.input
        self.console.print(Text(HELP, style="dim"))
        answered = 0
        while True:
            try:
                line = read("> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                break
            if not line:
                continue
            if line in ("/quit", "/exit"):
                break
            if line.startswith("/"):
                self.command(line)
                continue
            try:
                self.ask(line)
                answered += 1
            except KeyboardInterrupt:
                self.console.print(Text("\n[interrupted]", style="yellow"))
        self.print_tool_stats()
        return answered

    def command(self, line: str) -> None:
        name, _, arg = line.partition(" ")
        if name == "/env" and arg.strip():
            try:
                self._check_env(arg.strip())
                self.env = arg.strip()
                self.console.print(Text(f"environment: {self.env}", style="dim"))
            except ValueError as e:
                self.console.print(Text(str(e), style="yellow"))
        else:
            self.console.print(Text(HELP, style="dim"))

    def print_tool_stats(self) -> None:
        box = self.engine.toolbox
        if box is None or not box.stats.calls:
            return
        s = box.stats
        parts = [f"{n} {c} calls ({s.errors[n]} errors, {s.timeouts[n]} timeouts)" for n, c in s.calls.items()]
        self.console.print(Text("tools this session: " + "; ".join(parts), style="dim"))

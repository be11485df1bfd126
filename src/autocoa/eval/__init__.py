"""Evaluation: run the agent and its baselines over QA sets, analyse when it acts, report.

- :mod:`~autocoa.eval.baselines` -- agent, direct, rag and react as prompts, hooks and prefixes;
- :mod:`~autocoa.eval.runner` -- methods over records -> ``predictions.jsonl`` and ``metrics.json``;
- :mod:`~autocoa.eval.report` -- the results table and plots.

The metrics themselves live in :mod:`autocoa.metrics`, shared with the RL rewards, and the
analysis of when an agent acts and how true its observations are in :mod:`autocoa.analysis`,
shared with synthesis and RL's logs.
"""

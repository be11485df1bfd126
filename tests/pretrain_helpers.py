"""A pretraining config small enough for tests (seconds on CPU)."""

TINY = dict(
    vocab_size=400,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    intermediate_size=64,
    block_size=64,
    batch_size=8,
    epochs=1.0,
    eval_facts=20,
)

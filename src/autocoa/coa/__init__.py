"""Chain-of-Action (Pan et al., 2024): a prompted decompose-act-verify-answer workflow of a
chat model on our tools (:mod:`autocoa.coa.method`), its chain's prompts and parser
(:mod:`autocoa.coa.chain`) and the chat backends (:mod:`autocoa.coa.llm`). Its verifier,
MRFS, is :func:`autocoa.metrics.mrfs`."""

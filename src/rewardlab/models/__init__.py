"""Learned rewards: reward models and LLM judges over OpenAI-compatible endpoints.

- `rewardlab.models.embedding`: embedding reward models (a frozen sentence-embedding model and
  a small trained head; ensembles with mean / min / std) — reward ``embedding_rm``;
- `rewardlab.models.classifier`: any local sequence-classification reward model — reward
  ``classifier_rm``;
- `rewardlab.models.implicit`: rewards from a policy's and a reference's log-probabilities —
  ``implicit_dpo``, ``implicit_prm``, ``simpo_likelihood``, ``self_certainty``;
- `rewardlab.models.judge`: LLM judges over OpenAI-compatible endpoints.

The model-backed modules need the ``models`` extra (torch, transformers,
sentence-transformers) only when a model is loaded: importing them is cheap, so their rewards
are listed and configurable without it. Models load from local paths only.
"""

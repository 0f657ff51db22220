"""Credit assignment: turning scores into learning signals. Pure functions over `Score`s and
arrays (numpy only; no trainer is imported).

- `rewardlab.credit.advantages`: advantage estimators over rollout groups (GRPO, Dr. GRPO, RLOO,
  REINFORCE++ and its baseline variant, DAPO's filter, GRPO-λ, Pref-GRPO, gated rewards), each
  following a named trainer convention (TRL, verl, OpenRLHF) and the degenerate-case rules.
- `rewardlab.credit.steps`: splitting a response into reasoning steps (character offsets kept),
  aggregating process rewards, PURE's min-form weights, Clip and Delta shaping, PRIME's implicit
  process reward advantages.
- `rewardlab.credit.turns`: per-turn rewards of agent trajectories, discounted turn returns,
  MatchTIR's dual-level advantage.
- `rewardlab.credit.tokens`: step, turn and span rewards placed on token positions through a
  tokenizer's character offsets, as the per-token arrays and masks trainers consume.
"""

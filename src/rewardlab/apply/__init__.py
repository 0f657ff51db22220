"""Applying rewards: scoring files (`scorefile`, resumable, in chunks) and using scores outside
RL: rollout groups (`groups`), best-of-N and majority votes (`bon`), rejection sampling / RAFT
(`rejection`) and preference pairs for DPO (`pairs`)."""

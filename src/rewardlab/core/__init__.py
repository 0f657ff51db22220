"""The data model, the reward contract and the registry."""

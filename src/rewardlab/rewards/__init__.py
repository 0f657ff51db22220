"""Built-in rewards, one module per family. Each module that defines rewards is declared in the
`rewardlab.rewards` entry-point group (pyproject.toml) and registers on the first lookup by name."""

"""Built-in rewards, one module per family. Every module here registers on first lookup."""

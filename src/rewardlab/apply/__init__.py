"""Applying rewards: scoring files (resumable, in chunks), and later best-of-N, rejection
sampling and preference pairs."""

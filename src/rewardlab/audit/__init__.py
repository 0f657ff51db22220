"""Auditing rewards: can a reward be trusted before training on it?

One module per analysis: `pairs` (accuracy on preference pairs), `position` (position
consistency of pairwise judges). Import from the modules; this package re-exports nothing.
"""

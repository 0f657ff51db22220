"""Auditing rewards: can a reward be trusted before training on it?

One module per analysis, each on top of the scoring API (a probe rewrites samples and scores
them again through the Runtime):

- `eval` (accuracy on preference pairs, per subset and rolled up by `aggregate`'s schemes:
  plain, RewardBench, RewardBench 2), `pairs` (pair accuracy), `stats` (Wilson and clustered /
  stratified bootstrap intervals, McNemar, paired differences, agreement, Benjamini-Hochberg,
  minimum detectable effects);
- probes returning `probe.ProbeResult` rows: `length`, `robustness` (over `rewrites`, an open
  registry), `gameability`, `position`, `determinism`, run together by `probes_run`;
- `overopt` (best-of-n curves of proxies against a gold reward), `drift` (a hacking monitor for
  training logs);
- `report` (one self-contained HTML file and the JSON of every figure).

Import from the modules; this package re-exports nothing.
"""

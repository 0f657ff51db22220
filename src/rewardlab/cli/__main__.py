"""``python -m rewardlab.cli``: the same as the ``rewardlab`` command."""

from rewardlab.cli import main

main()

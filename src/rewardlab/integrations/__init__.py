"""Drop-in reward functions for trainers, one module per trainer: `verl`, `openrlhf`,
`verifiers`, `slime`. Each maps rewardlab's score statuses to what its trainer can take, as its
module doc says."""

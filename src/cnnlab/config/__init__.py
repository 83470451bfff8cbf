"""Settings: :class:`TrainConfig`, the one schema of a run, and what is derived from it."""

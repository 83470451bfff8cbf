"""Training: settings, precision policy, recipe, loop and checkpoints."""

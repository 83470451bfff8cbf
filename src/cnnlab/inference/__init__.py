"""Using trained checkpoints outside training: `cnnlab predict` and `cnnlab export`."""

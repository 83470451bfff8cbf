"""The model-input contract and evaluation, shared by training, `evaluate`, `predict` and
`export`: device and precision policy, shaping images for a model, normalisation,
test-time augmentation, batched logits and accuracy. Below train/ so the trainer
evaluates with exactly the code the inference commands use."""

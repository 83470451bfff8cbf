"""Claims: what a study file asserts ([[claim]] tables, parsed and checked) and the
verdicts its runs give them. Torch-free; below the study, which judges them between rounds."""

"""Studies: a TOML file of variants x seeds, run, stored, resumable."""

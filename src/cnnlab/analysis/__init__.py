"""Statistics, plots and reports over finished runs."""

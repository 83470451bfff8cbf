"""The model zoo: builtin models by name (catalogue), models as TOML data (spec, build),
the registry that resolves and builds them, and per-layer summaries. Importing this
package imports no torch: `cnnlab models list` reads the catalogue alone."""

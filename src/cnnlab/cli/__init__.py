"""The `cnnlab` command line: one module per command (parse, call, print), nothing else."""

from cnnlab.cli.app import build_parser, main, run_guarded

__all__ = ["build_parser", "main", "run_guarded"]

"""schoolplan — scenarios, the end-to-end run, finance, targets, reports and the CLI."""

__version__ = "0.1.0"

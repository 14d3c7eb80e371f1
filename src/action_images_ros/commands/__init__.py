"""Subcommands of the ``action-images`` CLI, one module each."""

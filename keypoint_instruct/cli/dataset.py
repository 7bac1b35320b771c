"""Subcommands of this stage (placeholder until the stage lands)."""


def register(subparsers) -> None:
    pass

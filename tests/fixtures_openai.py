"""Fixtures of this stage (filled in by the stage that owns it)."""

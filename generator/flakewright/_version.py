"""flakewright's release: the newest release in CHANGELOG.md and pyproject's version (a test holds them equal)."""
__version__ = "0.1.0"

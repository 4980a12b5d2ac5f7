"""CLI commands of ``edge``: each module declares options and calls one library function."""

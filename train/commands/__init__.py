"""CLI commands of ``train``: each module declares options and calls one library function."""

"""Shared fixtures. Each group lives in its own plugin module under tests/plugins/."""

pytest_plugins = [
    "tests.plugins.azurite",
    "tests.plugins.sandbox",
    "tests.plugins.host",
    "tests.plugins.app",
]

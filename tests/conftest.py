"""Shared fixtures. Each group lives in its own plugin module under tests/plugins/."""

from dev.procs import loopback_skips_proxies

loopback_skips_proxies()  # every server the tests start is on loopback

pytest_plugins = [
    "tests.plugins.budget",
    "tests.plugins.azurite",
    "tests.plugins.sandbox",
    "tests.plugins.host",
    "tests.plugins.app",
]

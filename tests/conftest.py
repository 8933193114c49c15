"""Keep Flower quiet and offline in tests; must run before flwr is imported."""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs a real Ray simulation (seconds to minutes)")

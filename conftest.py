"""Registers the conformance plugin: `pytest cases/` runs the YAML cases as test items."""
pytest_plugins = ["conformance.plugin"]

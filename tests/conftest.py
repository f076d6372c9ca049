pytest_plugins = ["tests.plugins.lab", "tests.plugins.scenario"]

"""Root pytest configuration: fixtures live in tests/fixtures_*.py, one module per stage."""

pytest_plugins = [
    "tests.fixtures_env",
    "tests.fixtures_coco",
    "tests.fixtures_openai",
    "tests.fixtures_model",
    "tests.fixtures_dataset",
]

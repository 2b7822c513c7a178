"""Deploy fixtures: archives made by the real archive functions (the workers' fixture)."""

from tests.workers.conftest import archive_env  # noqa: F401  (a fixture, used by name)

"""A module whose own import fails: it imports a module that does not exist."""

import tricorn_test_no_such_dependency  # noqa: F401

app = None

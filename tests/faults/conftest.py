"""The store tests' throwaway PostgreSQL cluster, for the fault rules read from PostgreSQL."""

from tests.store.conftest import pg_cluster  # noqa: F401

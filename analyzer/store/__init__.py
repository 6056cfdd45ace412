"""The store: one interface (:class:`analyzer.store.base.Store`), SQLite and PostgreSQL backends."""

"""Storage: everything on the streams, durably in PostgreSQL/TimescaleDB."""

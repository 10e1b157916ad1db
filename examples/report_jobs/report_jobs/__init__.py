"""Jobs of the report service, run by taskcast (see README.md)."""

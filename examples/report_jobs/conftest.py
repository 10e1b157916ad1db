"""Makes ``report_jobs`` importable by its tests without installing it (pytest puts this folder on the path)."""

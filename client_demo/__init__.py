"""The browser dashboard: static files that the local stack serves by path (it imports nothing)."""

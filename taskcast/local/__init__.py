"""The local stack: the whole of taskcast on one machine, built from template.yaml."""

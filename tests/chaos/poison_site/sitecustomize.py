"""Loaded at start-up by every Python process that has this folder on its path. The chaos run copies it
into a folder of its own beside a ``poison.json`` (``{"percent", "failures", "ledger"}``) and puts that folder on
the path of the processes that run the stack's functions: there ``streams.consumer.lambda_handler`` is
wrapped with poison records (``tests.chaos.poison``) as soon as it is imported. A file, not the
environment, because a function's process sees only its own function's environment."""

import json
from pathlib import Path

_CONFIG = Path(__file__).with_name("poison.json")

if _CONFIG.exists():
    from tests.chaos.poison_hook import install

    install(**json.loads(_CONFIG.read_text()))

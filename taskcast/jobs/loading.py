"""Users' own jobs: the modules that register them with ``@job``, imported once per process at cold start.

A deployment names them in ``TASKCAST_JOB_MODULES`` (comma-separated module names) or in the entry-point
group ``taskcast.jobs`` of an installed package; importing a module runs its ``@job`` decorators. Anything
that goes wrong fails the cold start with one line naming the module or job: a task type that silently
went missing would only show up as 400s (REST) or failed tasks (worker).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol

from taskcast.jobs.registry import JobNameTaken

ENTRY_POINT_GROUP = "taskcast.jobs"


class EntryPointLike(Protocol):
    """What is used of ``importlib.metadata.EntryPoint``."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


EntryPointSource = Callable[[], Iterable[EntryPointLike]]


class JobModuleError(RuntimeError):
    """A job module could not be loaded; the message is one line naming it (and the job, for a clash)."""


def installed_entry_points() -> Iterable[EntryPointLike]:
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def load_job_modules(
    modules: Sequence[str],
    entry_points: EntryPointSource = installed_entry_points,
    importer: Callable[[str], Any] = importlib.import_module,
) -> list[str]:
    """Import ``modules`` (from the setting), then load every entry point of ``taskcast.jobs``; returns what
    was loaded, as ``module`` or ``entry point name=value``. Raises ``JobModuleError`` on the first failure.

    Python imports a module once per process, so calling this again registers nothing twice.
    """
    loaded: list[str] = []
    for module in modules:
        _guarded(f"job module {module!r} (TASKCAST_JOB_MODULES)", partial(importer, module))
        loaded.append(module)
    for entry_point in entry_points():
        where = f"{entry_point.name}={entry_point.value}"
        _guarded(f"entry point {where!r} (group {ENTRY_POINT_GROUP})", entry_point.load)
        loaded.append(where)
    return loaded


def _guarded(what: str, load: Callable[[], Any]) -> None:
    try:
        load()
    except JobNameTaken as clash:
        raise JobModuleError(f"{what}: {clash}") from clash
    except ImportError as error:
        # ImportError's text names the missing module or attribute, never a value of the environment.
        raise JobModuleError(f"{what} cannot be imported: {type(error).__name__}: {error}") from error
    except Exception as error:
        # Any other failure's text is the user module's own, which may quote its configuration: the type alone
        # here, the whole traceback stays chained to this error.
        raise JobModuleError(f"{what} failed while importing: {type(error).__name__}") from error

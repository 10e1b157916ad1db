"""The registered jobs in ``GET /openapi.json``: each job's input schema, from its pydantic model.

The document gains
- one ``components.schemas`` entry per input model, named ``JobInput.<Model>`` (the prefix keeps a user's
  model called ``Problem`` apart from the API's own), its nested models beside it;
- ``CreateTaskRequest.type`` as an ``enum`` of the job names;
- ``x-taskcast-jobs``: job name → ``{"input": <schema or $ref>, "description"?}``.

The create body stays one schema with ``input`` open rather than a ``oneOf`` per job: a ``oneOf`` would have
fuzzers and generated clients start real (up to 15-minute) jobs, where the API's answer to a bad input is the
same 400 problem either way.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from taskcast.jobs import JobSpec

COMPONENT_PREFIX = "JobInput."
REF_TEMPLATE = "#/components/schemas/{model}"
ANY_INPUT = {"description": "Any JSON: the job declares no input model"}


class _JobInputSchemas(GenerateJsonSchema):
    def normalize_name(self, name: str) -> str:
        return COMPONENT_PREFIX + super().normalize_name(name)


def job_inputs(specs: Sequence[JobSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({job name: its input schema or $ref}, {component name: schema})`` for ``specs``."""
    models = list(dict.fromkeys(spec.input_model for spec in specs if spec.input_model is not None))
    refs: dict[Any, Any] = {}
    components: dict[str, Any] = {}
    if models:
        refs, definitions = models_json_schema(
            [(model, "validation") for model in models], ref_template=REF_TEMPLATE, schema_generator=_JobInputSchemas
        )
        components = definitions.get("$defs", {})
    inputs = {
        spec.name: refs[(spec.input_model, "validation")] if spec.input_model is not None else dict(ANY_INPUT)
        for spec in specs
    }
    return inputs, components


def describe(spec: JobSpec) -> str | None:
    """The first paragraph of the job function's docstring, if it has one."""
    doc = inspect.getdoc(spec.function)
    return doc.split("\n\n", 1)[0].replace("\n", " ") if doc else None


def with_jobs(document: dict[str, Any], specs: Sequence[JobSpec]) -> dict[str, Any]:
    """A copy of ``document`` that lists every job of ``specs`` with its input schema."""
    described = copy.deepcopy(document)
    inputs, components = job_inputs(specs)
    schemas = described.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(components)
    request = schemas.get("CreateTaskRequest", {}).get("properties", {})
    if "type" in request and specs:
        request["type"]["enum"] = [spec.name for spec in specs]
    if "input" in request:
        request["input"]["description"] = (
            "The job's input, checked against the job's input schema (x-taskcast-jobs names it for each type); "
            "a bad input is a 400 problem"
        )
    jobs: dict[str, Any] = {}
    for spec in specs:
        entry: dict[str, Any] = {"input": inputs[spec.name]}
        description = describe(spec)
        if description:
            entry["description"] = description
        jobs[spec.name] = entry
    described["x-taskcast-jobs"] = jobs
    return described

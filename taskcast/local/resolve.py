"""CloudFormation intrinsics resolved to local names, ARNs and URLs.

Every resource of the template gets a local physical name: its explicit name property when it has
one (``TableName``, ``QueueName``, ...), else ``<stack>-<logical id in kebab case without its type
suffix>`` (``TasksTable`` → ``taskcast-tasks``, ``WorkerFunction`` → ``taskcast-worker``), so local
names are readable and stable. ``Ref`` and ``Fn::GetAtt`` then answer what CloudFormation would:
a table's name, a queue's URL, a function's name, an ARN built from region and account. Attributes
known only once a resource exists (a table's ``StreamArn``, a queue's URL) are recorded with
``set_attribute`` by whoever creates it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account

# Type → the suffix dropped from logical ids to form a local name, and the property naming it explicitly.
_NAMING: dict[str, tuple[str, str | None]] = {
    "AWS::DynamoDB::Table": ("Table", "TableName"),
    "AWS::SQS::Queue": ("Queue", "QueueName"),
    "AWS::S3::Bucket": ("Bucket", "BucketName"),
    "AWS::Serverless::Function": ("Function", "FunctionName"),
    "AWS::Lambda::Function": ("Function", "FunctionName"),
}

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """The template uses something the local stack cannot resolve; the message names it."""


def kebab(name: str) -> str:
    """``WebhookDeadLetter`` → ``webhook-dead-letter``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", name)
    return spaced.lower()


def local_id(logical_id: str, length: int = 10) -> str:
    """A stable API-Gateway-like id (``a1b2c3d4e5``) for resources that only have ids."""
    return hashlib.sha256(logical_id.encode()).hexdigest()[:length]


@dataclass
class TemplateResolver:
    """Resolves ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::Select``, ``Fn::Split``,
    ``Fn::If`` and ``Condition`` functions of one template to local values."""

    template: Mapping[str, Any]
    stack_name: str = "taskcast"
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Attributes set once resources exist: {(logical id, attribute): value}; "Ref" overrides Ref.
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = dict(self.template.get("Resources") or {})
        self._names = self._physical_names()

    # ------------------------------------------------------------------ names
    def _physical_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        taken: set[str] = set()
        for logical_id, resource in self.resources.items():
            suffix, name_property = _NAMING.get(resource.get("Type", ""), ("", None))
            explicit = (resource.get("Properties") or {}).get(name_property) if name_property else None
            if explicit is not None:
                continue  # resolved lazily: an explicit name may itself use intrinsics
            has_suffix = suffix and logical_id.endswith(suffix) and logical_id != suffix
            stem = logical_id[: -len(suffix)] if has_suffix else logical_id
            name = f"{self.stack_name}-{kebab(stem)}"
            if name in taken:
                name = f"{self.stack_name}-{kebab(logical_id)}"
            taken.add(name)
            names[logical_id] = name
        return names

    def physical_name(self, logical_id: str) -> str:
        resource = self._resource(logical_id)
        _, name_property = _NAMING.get(resource.get("Type", ""), ("", None))
        properties = resource.get("Properties") or {}
        if name_property and name_property in properties:
            return str(self.resolve(properties[name_property]))
        return self._names.get(logical_id) or local_id(logical_id)

    def set_attribute(self, logical_id: str, attribute: str, value: Any) -> None:
        self.attributes[(logical_id, attribute)] = value

    def _resource(self, logical_id: str) -> dict[str, Any]:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise TemplateError(f"unknown resource or parameter {logical_id!r}") from None

    # ------------------------------------------------------------------ Ref / GetAtt
    def pseudo_parameter(self, name: str) -> Any:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
        }
        if name not in values:
            raise TemplateError(f"unsupported pseudo parameter {name!r}")
        return values[name]

    def parameter(self, name: str) -> str:
        if name in self.parameters:
            return str(self.parameters[name])
        declared = (self.template.get("Parameters") or {}).get(name)
        if declared is None:
            raise TemplateError(f"unknown parameter {name!r}")
        # A parameter without default resolves to "" locally (e.g. a secret ARN the local stack replaces).
        return str(declared.get("Default", ""))

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE  # e.g. the branch an Fn::If chose: the item or property is left out
        if name.startswith("AWS::"):
            return self.pseudo_parameter(name)
        if name in (self.template.get("Parameters") or {}) or name in self.parameters:
            return self.parameter(name)
        if (name, "Ref") in self.attributes:
            return self.attributes[(name, "Ref")]
        resource_type = self._resource(name).get("Type", "")
        if resource_type == "AWS::SQS::Queue":
            return self.get_att(name, "QueueUrl")
        if resource_type in _NAMING:
            return self.physical_name(name)
        return local_id(name)

    def arn(self, logical_id: str) -> str:
        resource_type = self._resource(logical_id).get("Type", "")
        name = self.physical_name(logical_id)
        region, account = self.region, self.account_id
        if resource_type == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        if resource_type == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{region}:{account}:{name}"
        if resource_type == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{name}"
        if resource_type in {"AWS::Serverless::Function", "AWS::Lambda::Function"}:
            return f"arn:aws:lambda:{region}:{account}:function:{name}"
        raise TemplateError(f"no local ARN for {logical_id} ({resource_type})")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        resource_type = self._resource(logical_id).get("Type", "")
        if attribute == "Arn":
            return self.arn(logical_id)
        if resource_type == "AWS::SQS::Queue" and attribute == "QueueName":
            return self.physical_name(logical_id)
        if resource_type == "AWS::SQS::Queue" and attribute == "QueueUrl":
            # The real URL comes from the queue service once created; this is its usual form.
            return f"https://sqs.{self.region}.amazonaws.com/{self.account_id}/{self.physical_name(logical_id)}"
        if resource_type == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/local"
        if resource_type == "AWS::S3::Bucket" and attribute in {"DomainName", "RegionalDomainName"}:
            return f"{self.physical_name(logical_id)}.s3.amazonaws.com"
        if resource_type == "AWS::ApiGatewayV2::Api" and attribute == "ApiEndpoint":
            return f"wss://{local_id(logical_id)}.execute-api.{self.region}.amazonaws.com"
        if attribute in {"ApiId", "RootResourceId", "AuthorizerId", "RouteId", "IntegrationId"}:
            return local_id(logical_id)
        raise TemplateError(f"unsupported attribute {logical_id}.{attribute} ({resource_type})")

    # ------------------------------------------------------------------ functions
    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function replaced by its local value (recursively)."""
        if isinstance(value, list):
            resolved = (self.resolve(item) for item in value if not _is_no_value(item))
            return [item for item in resolved if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Fn::GetAtt":
                logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.get_att(logical_id, attribute)
            if key == "Fn::Sub":
                return self.sub(argument)
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(item) for item in self.resolve(items))
            if key == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
            if key == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            if key.startswith("Fn::") or key == "Condition":
                raise TemplateError(f"unsupported intrinsic function {key}")
        resolved_items = ((key, self.resolve(item)) for key, item in value.items() if not _is_no_value(item))
        return {key: item for key, item in resolved_items if item is not _NO_VALUE}

    def sub(self, argument: str | list[Any]) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {name: self.resolve(v) for name, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"  # ${!Literal} is written as ${Literal}
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expression))

        return _SUB_VARIABLE.sub(replace, text)

    def condition(self, name_or_expression: Any) -> bool:
        if isinstance(name_or_expression, str):
            conditions = self.template.get("Conditions") or {}
            if name_or_expression not in conditions:
                raise TemplateError(f"unknown condition {name_or_expression!r}")
            return self.condition(conditions[name_or_expression])
        (key, argument), = name_or_expression.items()
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in argument)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.condition(argument[0])
        if key == "Fn::And":
            return all(self.condition(item) for item in argument)
        if key == "Fn::Or":
            return any(self.condition(item) for item in argument)
        if key == "Condition":
            return self.condition(argument)
        raise TemplateError(f"unsupported condition function {key}")

    def resource_enabled(self, logical_id: str) -> bool:
        """False when the resource's ``Condition`` is false (CloudFormation does not create it)."""
        condition = self._resource(logical_id).get("Condition")
        return True if condition is None else self.condition(condition)

    def properties(self, logical_id: str) -> dict[str, Any]:
        return self.resolve(self._resource(logical_id).get("Properties") or {})

    def logical_id_for_arn(self, arn: str) -> str | None:
        """The resource whose ``Arn`` (or recorded attribute) is ``arn``."""
        for (logical_id, _), value in self.attributes.items():
            if value == arn:
                return logical_id
        for logical_id, resource in self.resources.items():
            if resource.get("Type") in _NAMING:
                try:
                    if self.arn(logical_id) == arn:
                        return logical_id
                except TemplateError:
                    continue
        return None


# What ``Ref: AWS::NoValue`` resolves to; lists and mappings drop it, as CloudFormation does.
_NO_VALUE = object()


def _is_no_value(value: Any) -> bool:
    return isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}

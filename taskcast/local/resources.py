"""Create what the template declares: every ``AWS::DynamoDB::Table``, ``AWS::SQS::Queue`` and
``AWS::S3::Bucket``, with the properties that change behaviour locally (streams, TTL, visibility
timeout, delay, redrive policy, CORS, a bucket's queue notifications). Properties that only matter on
AWS (encryption, point-in-time recovery, billing) are accepted and ignored.

Whatever exists only after creation (a stream's ARN, a queue's URL) is recorded on the resolver, so
``!GetAtt TasksTable.StreamArn`` and ``!Ref WebhookRetryQueue`` resolve to the real local values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from taskcast.local.resolve import TemplateResolver
from taskcast.local.template import dynamodb_create_table_args, resources_of_type

# Queue properties that are SQS attributes of the same name (the redrive policy is set afterwards).
_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
)


@dataclass
class CreatedResources:
    """Local names of what was created, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)  # logical id → table name
    streams: dict[str, str] = field(default_factory=dict)  # logical id of the table → stream ARN
    queues: dict[str, str] = field(default_factory=dict)  # logical id → queue URL
    queue_arns: dict[str, str] = field(default_factory=dict)  # logical id → queue ARN
    buckets: dict[str, str] = field(default_factory=dict)  # logical id → bucket name

    def describe(self) -> dict[str, Any]:
        return {
            "tables": dict(self.tables),
            "streams": dict(self.streams),
            "queues": dict(self.queues),
            "queue_arns": dict(self.queue_arns),
            "buckets": dict(self.buckets),
        }


def queue_attributes(properties: dict[str, Any]) -> dict[str, str]:
    """``AWS::SQS::Queue`` properties → ``create_queue`` attributes (strings, as SQS wants them)."""
    attributes: dict[str, str] = {}
    for name in _QUEUE_ATTRIBUTES:
        if name in properties:
            value = properties[name]
            attributes[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return attributes


def redrive_policy(properties: dict[str, Any]) -> str | None:
    policy = properties.get("RedrivePolicy")
    if not policy:
        return None
    return json.dumps(
        {"deadLetterTargetArn": policy["deadLetterTargetArn"], "maxReceiveCount": str(policy["maxReceiveCount"])}
    )


def create_resources(resolver: TemplateResolver, dynamodb: Any, sqs: Any, s3: Any) -> CreatedResources:
    created = CreatedResources()
    template = resolver.template
    # Queues first: tables and functions may name them, and redrive targets must exist.
    redrives: dict[str, str] = {}
    for logical_id in resources_of_type(template, "AWS::SQS::Queue"):
        if not resolver.resource_enabled(logical_id):
            continue
        properties = _properties_without(resolver, logical_id, "RedrivePolicy")
        name = resolver.physical_name(logical_id)
        if properties.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        url = sqs.create_queue(QueueName=name, Attributes=queue_attributes(properties))["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created.queues[logical_id], created.queue_arns[logical_id] = url, arn
        resolver.set_attribute(logical_id, "QueueUrl", url)
        resolver.set_attribute(logical_id, "Arn", arn)
        resolver.set_attribute(logical_id, "QueueName", name)
    for logical_id in created.queues:
        policy = redrive_policy(resolver.properties(logical_id))
        if policy:
            redrives[logical_id] = policy
            sqs.set_queue_attributes(QueueUrl=created.queues[logical_id], Attributes={"RedrivePolicy": policy})

    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        if not resolver.resource_enabled(logical_id):
            continue
        properties = resolver.properties(logical_id)
        name = resolver.physical_name(logical_id)
        description = dynamodb.create_table(**dynamodb_create_table_args(name, properties))["TableDescription"]
        created.tables[logical_id] = name
        resolver.set_attribute(logical_id, "Arn", description["TableArn"])
        if description.get("LatestStreamArn"):
            created.streams[logical_id] = description["LatestStreamArn"]
            resolver.set_attribute(logical_id, "StreamArn", description["LatestStreamArn"])
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
            )

    for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
        if not resolver.resource_enabled(logical_id):
            continue
        properties = resolver.properties(logical_id)
        name = resolver.physical_name(logical_id)
        s3.create_bucket(Bucket=name)
        created.buckets[logical_id] = name
        cors = (properties.get("CorsConfiguration") or {}).get("CorsRules")
        if cors:
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(rule) for rule in cors]})
        notifications = bucket_notifications(properties)
        if notifications:
            # moto sends S3's test event, then ObjectCreated events to these queues, as S3 does.
            s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=notifications)
    return created


def bucket_notifications(properties: dict[str, Any]) -> dict[str, Any] | None:
    """CloudFormation's ``NotificationConfiguration.QueueConfigurations`` → S3's API shape."""
    queues = (properties.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []
    converted = []
    for queue in queues:
        entry: dict[str, Any] = {"QueueArn": queue["Queue"], "Events": [queue["Event"]]}
        rules = ((queue.get("Filter") or {}).get("S3Key") or {}).get("Rules")
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": [{"Name": rule["Name"], "Value": rule["Value"]}
                                                       for rule in rules]}}
        converted.append(entry)
    return {"QueueConfigurations": converted} if converted else None


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's CORS rule (``MaxAge``, ``ExposedHeaders``) → S3's API shape (``MaxAgeSeconds``,
    ``ExposeHeaders``)."""
    converted = {key: value for key, value in rule.items() if key not in {"MaxAge", "Id", "ExposedHeaders"}}
    if "MaxAge" in rule:
        converted["MaxAgeSeconds"] = int(rule["MaxAge"])
    if "ExposedHeaders" in rule:
        converted["ExposeHeaders"] = list(rule["ExposedHeaders"])
    return converted


def _properties_without(resolver: TemplateResolver, logical_id: str, *names: str) -> dict[str, Any]:
    raw = dict(resolver.resources[logical_id].get("Properties") or {})
    for name in names:
        raw.pop(name, None)
    return resolver.resolve(raw)

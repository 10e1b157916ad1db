"""The REST API (Powertools ``APIGatewayRestResolver``): routes, problems, long-poll, idempotency."""

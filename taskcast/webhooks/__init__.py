"""Signed webhooks: format, retry policy, jobs and their queue, sending and delivery."""

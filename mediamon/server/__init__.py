"""The HTTP side: the webhook endpoint and the health check."""

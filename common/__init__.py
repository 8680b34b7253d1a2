"""Django-free support code every role uses: backoff, Redis connections, JSON-over-Redis requests."""

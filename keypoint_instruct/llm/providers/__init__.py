"""Providers: send one chat request to an endpoint and translate its answer or error (no retries, no money)."""

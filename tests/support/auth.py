"""The token of the API and dashboard in tests, and what carries it."""

from __future__ import annotations

AUTH_TOKEN = "test-token-of-the-stack-0123456789"
AUTH_HEADERS = {"Authorization": f"Bearer {AUTH_TOKEN}"}

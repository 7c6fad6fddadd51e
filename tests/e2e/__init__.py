"""Browser end-to-end tests: a real Chromium against a live stackvote server."""

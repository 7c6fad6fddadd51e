"""stackvote: real-time team voting on technical decisions."""

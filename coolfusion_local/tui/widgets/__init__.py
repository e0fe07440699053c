"""Widgets of the chat UI: each one shows one thing and knows nothing of the engine."""

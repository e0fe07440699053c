"""Screens of the chat UI: chat (main), compare, models, help and small dialogs."""

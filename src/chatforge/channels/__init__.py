"""Channels: how people reach bots and conversations from outside the web UI (B2)."""

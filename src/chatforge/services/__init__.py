"""Domain services: every rule of chatforge lives here, behind plain Python calls.

Transports (REST, WebSocket, pages, channels, CLI) call these; services never import FastAPI.
"""

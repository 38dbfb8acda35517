"""The REST API under ``/api``: thin adapters from HTTP to the services."""

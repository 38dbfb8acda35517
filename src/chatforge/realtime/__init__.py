"""Real-time delivery: the broker between processes, the hub of this process's sockets, and
the ``/ws`` endpoint. Nothing here decides who may do what; the services do."""

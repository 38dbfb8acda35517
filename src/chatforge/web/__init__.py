"""Server-rendered pages, their templates and static files."""

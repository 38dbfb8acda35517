"""Authentication: password hashing, signed tokens, login throttling, CSRF."""

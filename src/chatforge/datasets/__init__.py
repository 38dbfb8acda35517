"""Training datasets from annotated conversations (N4, N6): records, PII redaction, formats.

Everything here is pure: conversations in, text out, so exports stream and are easy to test.
"""

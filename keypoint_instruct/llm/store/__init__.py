"""The response store: one SQLite file holding answers, failures, in-flight claims and Batch API records.

Every SQL statement of the project and the schema (``schema.sql``) live in this package.
"""

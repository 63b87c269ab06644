"""Domain rules, written once and used by every stage.

Pure functions only: no database, no HTTP. A stage decides where they run.
"""

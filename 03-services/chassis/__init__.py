"""Stage 03's chassis: what every service of this stage is built on.

A "microservice chassis" is the code every service shares for the concerns that are not
its verb: the app factory and its health checks (service.py), typed messages, the broker,
the outbox and the inbox (messaging/), and the registry of running instances
(registry.py). It lives in the stage folder because it *is* this stage's architecture;
04-async has an async chassis of the same shape.
"""

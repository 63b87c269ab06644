"""Stage 04's chassis: what every service of this stage is built on, async.

03-services/chassis ported to the event loop, file for file: the app factory and its
health checks (service.py, on Quart), the broker bridge, the outbox and the inbox
(messaging/), the registry (registry.py, on redis.asyncio), and the Quart twins of
workshop/web (web.py, bodies.py, health.py) and of workshop/queries.py (queries.py).
`workshop diff 03 04` shows each file's step from blocking to async.
"""

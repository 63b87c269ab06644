"""Typed messages between services (stage 03 on): envelopes, the broker, outboxes, consumers."""

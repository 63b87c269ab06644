"""Typed messages between services, on the event loop: the broker bridge, outboxes, inboxes."""

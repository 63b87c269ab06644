"""From stage 03 on: what the services share, and stages 01 and 02 never run.

The broker connection (broker), the typed messages and their versioned schemas (messages,
schemas), the registry of instances and the gateway's admissions (instances), /metrics
(metrics) and the latency knob (latency). How a stage sends and takes messages, or serves
its metrics, is its own chassis's; this package holds what 03 and 04 do alike.
"""

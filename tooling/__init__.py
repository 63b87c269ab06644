"""The workshop's tooling: the `workshop` command, the stage runner, the benchmark, the diff.

None of it runs inside a stage: a service imports from `workshop` (domain rules, data,
contract, store handle, web helpers), never from here.
"""

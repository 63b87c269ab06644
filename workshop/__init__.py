"""The workshop's shared kernel: domain rules, data tools, configuration and the CLI."""

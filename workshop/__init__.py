"""What every stage shares: domain rules, data tools, the contract's checks, config, the store
handle, tokens and web helpers. The tooling (CLI, runner, benchmark) is in tooling/."""

"""Framework-free domain core: entities, rules, ports and use cases (stdlib + attrs only)."""

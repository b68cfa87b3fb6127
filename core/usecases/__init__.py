"""Use cases: one module per capability, each an async verb taking a frozen command and its ports."""

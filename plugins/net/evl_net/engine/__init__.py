"""How the board is driven: plan, execute and render operations; fan-out to several boards."""

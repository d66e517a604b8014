"""THE FLOW (see its docstring)."""

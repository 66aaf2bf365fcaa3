"""Stage reminder rules and the planner: pure functions, no I/O. Imports nothing else of ours."""

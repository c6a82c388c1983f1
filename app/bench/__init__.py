"""The benchmark domain: configs and prompts, costs, summaries; sweeps, hardware
comparison and run bundles (DESIGN.md, layout)."""

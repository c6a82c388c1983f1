"""The arena: blind pairwise votes and the human ranking built from them.

catalog (what a run offers), matchups (which pair a rater sees, tokens, attention checks),
votes (storing a vote) and write_queue (one writer thread), ranking (Bradley-Terry,
bootstrap, Elo, verdicts), leaderboard (the page's data), agreement (metrics vs votes),
vote_export (CSV/JSONL). The web tier renders it; nothing here imports FastAPI.
"""

"""The arena: blind pairwise votes and the human ranking built from them.

catalog (what a run offers), matchups (which pair a rater sees, tokens, attention checks),
votes (storing a vote) and write_queue (one writer thread), vote_counts, bradley_terry,
bootstrap, win_rates, online_elo and verdicts (the ranking), counted_votes and the
leaderboard_* modules (the page's data), agreement (metrics vs votes),
vote_export (CSV/JSONL). The web tier renders it; nothing here imports FastAPI.
"""

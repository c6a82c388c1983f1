"""Arena `/arena`: blind pairwise votes. One matchup at a time (two images of one prompt and
seed, names hidden), a vote, then the reveal (names and latencies) and the next matchup.

The rules (which pair, which votes count) live in app/arena/matchups.py; this package is the
HTTP side: the rater cookie (rater_cookie.py), the vote form's body limits and origin check
(vote_form.py), the vote's route (vote.py), the pages (pages.py), and the three renderings of
every answer: whole page, htmx fragment, JSON (stage.py).

The rater is an anonymous id in a signed cookie, given at the first visit; the rater row is
written at their first vote. A page view writes nothing: the matchup travels as an
encrypted offer (app/arena/matchups.py) in the vote form. A vote must carry an offer made
to that same id, so a cross-site form cannot produce a valid (cookie, token) pair; a POST
whose Origin names another host is refused before anything else.

While a matchup is open its images are served from `/arena/images/{offer}/{side}`, not from
/media: media paths carry the variant's name, and the two sides of an attention check would
share one URL.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.web.arena import pages, vote

# A page, not the API: kept out of the OpenAPI schema (/docs documents the API only).
router = APIRouter(include_in_schema=False)
router.include_router(pages.router)
router.include_router(vote.router)

"""Run bundles (issue 12): a run's rows and image files in one tar, so that results made on a
rented GPU box come home to the team's server without a shared database.

    flux-playground export RUN -o run.tar      (on the GPU box)
    flux-playground import run.tar             (on the server)

A bundle is an uncompressed tar (the PNGs are compressed already) of

    rows/<table>.jsonl      one JSON object per row, a file per bundled table, parents first
    media/<path>            every image file the rows name, at its path in the media folder
    manifest.json           last: the sha256 and size of every other member, the schema
                            version, the row counts, and a checksum of the manifest itself

Generic over the ORM metadata: a run's rows are those of every table that reaches `runs`
through foreign keys, except the arena's (EXCLUDED), so a new table or column travels without
a change here. Import verifies the whole bundle before it writes anything, inserts the rows in
one transaction with new ids (every foreign key among them rewritten), and moves the images
into place only after that transaction committed.

This package's public API, exported here: export_run and import_bundle, their reports, and
BundleError. Its modules: tables.py (which tables and rows), format.py (what both directions
share), export.py (writing), verify.py (reading and checking), importing.py (writing rows and
images into a database).
"""

from app.bench.bundles.export import ExportReport, export_run
from app.bench.bundles.format import BundleError
from app.bench.bundles.importing import ImportReport, import_bundle

__all__ = ["BundleError", "ExportReport", "ImportReport", "export_run", "import_bundle"]

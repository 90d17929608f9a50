"""Parts of the import processor (:mod:`connectors.importer`): value normalisation,
reference resolution and deletion detection."""

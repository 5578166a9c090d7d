"""Storage tiers of the marine VRE: Workspace (replicated, checksummed, compressed,
versioned, shareable; also WebDAV), Dataspace (plain files with a quota, for notebooks) and
Volatile (capability URLs that expire).

Python API for other packages: `storage.tiers.open_tiers(settings, config)`; HTTP routes in
`storage.http`; the purge task in `storage.tasks`; `vre storage check` in `storage.cli`.
"""

"""BDI discovery and access: one connector module per BDI (argo, obis incl. EurOBIS, seadatanet),
the harvest into an indexed store (store.py, harvest.py), pygeoapi providers answering from that
index (index.py: Features and Records, edr.py: EDR), the /bdis table (http.py), `vre harvest`
(cli.py) and the periodic harvest task (tasks.py)."""

"""sandan gateway: the HTTP edge (pages, JSON API, Open311 GeoReport v2, live updates) in front of the services."""

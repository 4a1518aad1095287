"""Identity resolution: identifier edges, hygiene, connected components, stable one_id."""

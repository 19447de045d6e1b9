"""A module that raises ImportError itself while being imported."""

raise ImportError("raising_import refuses to load: optional backend missing")
